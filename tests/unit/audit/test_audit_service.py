"""The audit service's named requests, with a real SQLite database and no broker."""

import csv
import io
import json
import sys
from pathlib import Path

import pytest
from nameko.testing.services import worker_factory
from sqlalchemy.orm import sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "services" / "audit"))

from audit import chain, domain
from audit.checkpoints import CheckpointLog, load_or_create_key
from audit.repository import REPOSITORIES
from audit.service import MIGRATIONS, AuditService

from invoke_centre import wire
from invoke_centre.kit import (
    CallerContext,
    Conflict,
    Forbidden,
    NotFound,
    UnitOfWork,
    ValidationError,
    build_manifest,
    make_engine,
    upgrade,
)
from invoke_centre.kit.audit import audit_event
from invoke_centre.kit.membership import MemberInfo

KEY = b"service-test-key"
AUDITOR = CallerContext(request_id="req-a", user_id="auditor-1", roles=("auditor",),
                        permissions=frozenset({"audit:read"}), named_request="audit.search")
ADMIN = CallerContext(request_id="req-b", user_id="admin-1", roles=("admin",),
                      permissions=frozenset({"audit:read", "audit:admin"}),
                      named_request="audit.policy.set")
AGENT = CallerContext(request_id="req-c", user_id="agent-7", roles=("agent",),
                      permissions=frozenset({"customer:read"}), named_request="audit.search")


class FakeTrail:
    def __init__(self, engine, log):
        self.engine, self.log, self.key = engine, log, KEY

    def appended(self, result):
        self.log.note(result.head_seq, result.head_mac)
        self.log.flush()

    def verify(self, since_seq=None):
        return chain.verify(self.engine, key=KEY, checkpoints=self.log, since_seq=since_seq)

    def ingest_stats(self):
        return None


@pytest.fixture
def db(tmp_path):
    uri = f"sqlite:///{tmp_path / 'audit.db'}"
    engine = make_engine(uri)
    upgrade(uri, MIGRATIONS, engine=engine)
    yield engine, sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


@pytest.fixture
def trail(db, tmp_path):
    return FakeTrail(db[0], CheckpointLog(tmp_path / "cp.jsonl",
                                          load_or_create_key(tmp_path / "sk")))


def uow_of(db):
    return UnitOfWork(db[1], REPOSITORIES)


def service(db, trail, caller=AUDITOR):
    return worker_factory(AuditService, uow=uow_of(db), trail=trail, caller=caller,
                          member=MemberInfo("audit", "audit-test", "1.0.0"))


def store(db, trail, *events):
    with uow_of(db) as uow:
        result = chain.append(uow, [domain.parse_event(e) for e in events], key=KEY)
    trail.appended(result)
    return result


@pytest.fixture
def filled(db, trail):
    """40 records: logins and sensitive reads of 4 users over 4 hours."""
    events = []
    for i in range(40):
        e = audit_event("login" if i % 2 else "sensitive_read", source="centre",
                        who={"user_id": f"agent-{i % 4}", "roles": ["agent"]},
                        where={"request_id": f"req-{i}",
                               "named_request": "customer.get" if i % 2 == 0 else None},
                        object_="=cmd|' /C calc'!A0" if i == 0 else f"customer:{i}",
                        outcome="failure" if i % 5 == 0 else "success",
                        params={"mobile": "13812345678"})
        e["at"] = f"2026-11-27T{8 + i // 10:02d}:{i:02d}:00.000Z"
        events.append(e)
    store(db, trail, *events)
    return events


def test_the_manifest_is_valid_and_readers_are_auditors():
    m = build_manifest(AuditService, version="1", instance="a-1", heartbeat_s=5)
    by_name = {r["name"]: r for r in m["requests"]}
    assert set(by_name) == {"audit.search", "audit.get", "audit.export", "audit.verify",
                            "audit.status", "audit.policy.get", "audit.policy.set"}
    assert by_name["audit.policy.set"]["permission"] == "audit:admin"
    assert by_name["audit.policy.set"]["mutating"] is True
    assert {r["permission"] for n, r in by_name.items() if n != "audit.policy.set"} \
        == {"audit:read"}


def test_search_filters_by_user_type_time_request_and_outcome(db, trail, filled):
    s = service(db, trail)
    found = s.search_records({"user_id": "agent-1", "limit": 500})["items"]
    assert {r["who"]["user_id"] for r in found} == {"agent-1"} and len(found) == 10
    assert [r["seq"] for r in found] == sorted((r["seq"] for r in found), reverse=True)
    logins = s.search_records({"type": "login", "limit": 500})["items"]
    assert len(logins) == 20 and {r["type"] for r in logins} == {"login"}
    both = s.search_records({"type": ["login", "sensitive_read"], "limit": 500})["items"]
    assert len(both) == 40
    window = s.search_records({"from": "2026-11-27T17:00:00+08:00",
                               "to": "2026-11-27T10:00:00Z", "limit": 500})["items"]
    assert {r["at"][:13] for r in window} == {"2026-11-27T09"} and len(window) == 10
    (one,) = s.search_records({"request_id": "req-7"})["items"]
    assert one["where"]["request_id"] == "req-7" and one["params"] == {"mobile": "138****5678"}
    named = s.search_records({"named_request": "customer.get", "limit": 500})["items"]
    assert len(named) == 20
    failed = s.search_records({"outcome": "failure", "limit": 500})["items"]
    assert len(failed) == 8


def test_search_pages_with_a_cursor_in_either_order(db, trail, filled):
    s = service(db, trail)
    for order in ("desc", "asc"):
        seqs, cursor = [], None
        while True:
            page = s.search_records({"limit": 15, "order": order,
                                     **({"cursor": cursor} if cursor else {})})
            seqs += [r["seq"] for r in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert seqs == sorted(range(1, 41), reverse=order == "desc")


@pytest.mark.parametrize("params, field, says", [
    ({"type": "coffee"}, "type", "unknown type coffee"),
    ({"from": "2026-11-27"}, "from", "no time zone"),
    ({"from": "yesterday"}, "from", "not an ISO 8601"),
    ({"from": "2026-11-27T10:00:00Z", "to": "2026-11-27T09:00:00Z"}, "to", "later than"),
    ({"limit": 0}, "limit", "1 to 500"),
    ({"cursor": "abc"}, "cursor", "next_cursor"),
    ({"outcome": "maybe"}, "outcome", "Must be one of"),
    ({"user": "agent-1"}, "user", "allowed: "),
])
def test_bad_queries_get_clear_field_errors(db, trail, params, field, says):
    with pytest.raises(ValidationError) as info:
        service(db, trail).search_records(params)
    assert says in " ".join(info.value.fields[field]), info.value.fields


def test_get_by_seq_or_event_id(db, trail, filled):
    s = service(db, trail)
    assert s.get_record({"seq": 3})["event_id"] == filled[2]["event_id"]
    assert s.get_record({"event_id": filled[5]["event_id"]})["seq"] == 6
    with pytest.raises(NotFound, match="no audit record with seq 99"):
        s.get_record({"seq": 99})
    with pytest.raises(ValidationError) as info:
        s.get_record({})
    assert info.value.fields == {"seq": ["give seq or event_id (one of them)"]}


def test_export_is_csv_a_spreadsheet_cannot_run(db, trail, filled):
    out = service(db, trail).export_records({"user_id": "agent-0"})
    assert out["content_type"].startswith("text/csv") and out["rows"] == 10
    rows = list(csv.DictReader(io.StringIO(out["csv"])))
    assert [int(r["seq"]) for r in rows] == sorted(int(r["seq"]) for r in rows)
    assert rows[0]["object"].startswith("'=")
    assert json.loads(rows[1]["params"]) == {"mobile": "138****5678"}


def test_only_auditors_and_administrators_read_and_a_refusal_is_audited(db, trail, filled):
    s = service(db, trail, caller=AGENT)
    with pytest.raises(Forbidden, match="audit:read"):
        s.search_records({})
    (call,) = s.audit.record.call_args_list
    assert call.args == ("over_privilege",) and call.kwargs["outcome"] == "refused"
    with pytest.raises(Forbidden, match="audit:admin"):
        service(db, trail).set_policy({"rules": []})


def test_a_policy_change_is_versioned_and_recorded_in_the_chain(db, trail, filled):
    admin = service(db, trail, caller=ADMIN)
    before = admin.get_policy({})
    assert before["version"] == 0 and before["rules"] == [
        {"types": ["sensitive_read", "data_change"]}]
    assert before["always_audited"] == list(wire.ALWAYS_AUDITED)
    rules = [{"users": ["agent-7"]}, {"types": ["data_read"], "operations": ["policy.*"]}]
    after = admin.set_policy({"rules": rules, "note": "watch agent-7",
                              "expected_version": 0})
    assert after["version"] == 1 and after["rules"] == rules and after["set_by"] == "admin-1"
    assert admin.get_policy({})["rules"] == rules
    record = admin.get_record({"seq": after["record_seq"]})
    assert record["type"] == "audit_policy_change" and record["who"]["user_id"] == "admin-1"
    assert record["params"]["rules"] == rules and record["detail"]["previous_version"] == 0
    assert record["where"]["request_id"] == "req-b"
    with pytest.raises(Conflict) as info:
        admin.set_policy({"rules": rules, "expected_version": 0})
    assert info.value.fields == {"expected_version": ["is 1 now"]}
    with pytest.raises(ValidationError) as info:
        admin.set_policy({"rules": [{"types": ["coffee"]}]})
    assert "unknown types coffee" in info.value.fields["rules.0.types"][0]
    assert admin.verify_trail({})["ok"]


def test_verify_reports_the_first_bad_record_and_raises_the_alarm(db, trail, filled):
    s = service(db, trail)
    report = s.verify_trail({})
    assert report["ok"] and report["records"] == 40 and report["last_checkpoint"] == 40
    with db[0].begin() as conn:
        conn.exec_driver_sql("UPDATE audit_records SET outcome = 'success' WHERE seq = 11")
    report = s.verify_trail({})
    assert not report["ok"] and report["first_bad"]["seq"] == 11
    (call,) = s.audit.record.call_args_list
    assert call.args == ("abnormal",) and call.kwargs["detail"]["first_bad"]["seq"] == 11


def test_status_tells_the_head_and_the_policy(db, trail, filled):
    status = service(db, trail).get_status({})
    assert status["records"] == 40 and status["head_seq"] == 40 and status["policy_version"] == 0
