"""The audit service's pure rules: events in, the chain, verification, the policy."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "services" / "audit"))

from audit import domain

from invoke_centre import wire
from invoke_centre.kit.audit import audit_event

KEY = b"test-key"


def event(type_="login", **kw):
    kw.setdefault("source", "centre")
    return audit_event(type_, **kw)


# --- events -----------------------------------------------------------------------------

def test_a_kit_event_becomes_an_entry_with_every_part():
    e = domain.parse_event(event(
        "sensitive_read", source="customer",
        who={"user_id": "agent-7", "roles": ["agent", "manager"], "branch": "530102",
             "terminal_id": "T-9"},
        where={"request_id": "r-1", "named_request": "customer.get", "service": "customer",
               "instance": "customer-a"},
        object_="customer:42", params={"id_number": "530102199001011234", "name": "Zhang"},
        detail={"fields": ["mobile", "id_number"]}))
    assert (e.type, e.source, e.user_id, e.roles, e.branch, e.terminal_id) == (
        "sensitive_read", "customer", "agent-7", "agent,manager", "530102", "T-9")
    assert (e.request_id, e.named_request, e.service, e.instance, e.object) == (
        "r-1", "customer.get", "customer", "customer-a", "customer:42")
    assert e.operation == "" and e.outcome == "success"
    assert json.loads(e.params) == {"id_number": "530102********1234", "name": "Zhang"}
    assert sorted(e.fields) == ["id_number", "mobile"]
    assert e.at.endswith("Z") and len(e.at) == 24


def test_personal_data_is_masked_again_whoever_sent_it():
    body = event(params=None)
    body["params"] = {"mobile": "13812345678", "nested": [{"pin": "1234"}]}
    e = domain.parse_event(body)
    assert json.loads(e.params) == {"mobile": "138****5678", "nested": [{"pin": "***"}]}


def test_times_are_stored_in_utc():
    body = event()
    body["at"] = "2026-11-27T16:00:00.5+08:00"
    assert domain.parse_event(body).at == "2026-11-27T08:00:00.500Z"


def test_control_characters_are_escaped_so_the_canonical_join_is_unambiguous():
    body = event(object_="a\x1fb\nc")
    e = domain.parse_event(body)
    assert e.object == "a\\u001fb\\u000ac" and domain.SEP not in e.object


@pytest.mark.parametrize("change, reason", [
    (lambda b: b.pop("event_id"), "event_id"),
    (lambda b: b.update(event_id="has space"), "event_id"),
    (lambda b: b.update(type="coffee_break"), "unknown type"),
    (lambda b: b.update(outcome="maybe"), "unknown outcome"),
    (lambda b: b.update(at="yesterday"), "at"),
    (lambda b: b.update(at="2026-11-27T08:00:00"), "no time zone"),
    (lambda b: b.update(source=""), "source"),
    (lambda b: b.update(who=["x"]), "who must be an object"),
    (lambda b: b.update(who={"user_id": {"a": 1}}), "who.user_id"),
    (lambda b: b.update(who={"user_id": "u" * 201}), "longer than"),
])
def test_what_is_not_an_audit_event_says_why(change, reason):
    body = event()
    change(body)
    with pytest.raises(domain.InvalidEvent, match=reason):
        domain.parse_event(body)


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'{"a": NaN}', b"\xff\xfe",
                                 b" " * (domain.MAX_EVENT_BYTES + 1)])
def test_undecodable_messages_are_invalid(raw):
    with pytest.raises(domain.InvalidEvent):
        domain.decode_event(raw)


# --- the chain --------------------------------------------------------------------------

def entries(n, type_="login"):
    return [domain.parse_event(event(type_, who={"user_id": f"u{i}"})) for i in range(n)]


def rows_of(records):
    return [(r["seq"], domain.canonical(r), r["mac"]) for r in records]


def test_link_continues_from_the_head_and_verify_accepts_it():
    first = domain.link(entries(3), head_seq=0, head_mac=domain.GENESIS, key=KEY,
                        received_at="2026-11-27T08:00:00.000Z")
    more = domain.link(entries(2), head_seq=3, head_mac=bytes.fromhex(first[-1]["mac"]),
                       key=KEY, received_at="2026-11-27T08:00:01.000Z")
    records = first + more
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
    report = domain.verify_chain(rows_of(records), key=KEY, head_seq=5,
                                 checkpoints=[domain.Checkpoint(3, first[-1]["mac"], "t")])
    assert report.ok and report.records == 5 and report.head_mac == records[-1]["mac"]


def test_the_canonical_form_covers_every_column():
    (r,) = domain.link(entries(1), head_seq=0, head_mac=domain.GENESIS, key=KEY,
                       received_at="2026-11-27T08:00:00.000Z")
    for column in domain.CHAIN_COLUMNS[1:]:
        changed = {**r, column: r[column] + "x"}
        assert domain.canonical(changed) != domain.canonical(r), column


def test_a_different_key_fails_at_the_first_record():
    records = domain.link(entries(3), head_seq=0, head_mac=domain.GENESIS, key=KEY,
                          received_at="t")
    report = domain.verify_chain(rows_of(records), key=b"other")
    assert not report.ok and report.first_bad.seq == 1 and report.first_bad.kind == "altered"


def test_a_chain_recomputed_with_the_key_breaks_a_signed_checkpoint():
    records = domain.link(entries(6), head_seq=0, head_mac=domain.GENESIS, key=KEY,
                          received_at="t")
    cps = [domain.Checkpoint(2, records[1]["mac"], "t"), domain.Checkpoint(5, records[4]["mac"],
                                                                           "t")]
    forged = [dict(r) for r in records]
    forged[3]["user_id"] = "someone-else"
    forged[3:] = domain.link(
        [domain.Entry(**{k: forged[i][k] for k in domain.Entry.__dataclass_fields__
                         if k != "fields"}) for i in range(3, 6)],
        head_seq=3, head_mac=bytes.fromhex(records[2]["mac"]), key=KEY, received_at="t")
    report = domain.verify_chain(rows_of(forged), key=KEY, checkpoints=cps)
    assert report.first_bad.kind == "rewritten" and report.first_bad.seq == 3


def test_incremental_verification_starts_after_the_last_checkpoint_before():
    cps = [domain.Checkpoint(10, "aa" * 32, "t"), domain.Checkpoint(20, "bb" * 32, "t")]
    assert domain.start_point(cps, None) == (1, domain.GENESIS)
    assert domain.start_point(cps, 15) == (11, bytes.fromhex("aa" * 32))
    assert domain.start_point(cps, 5) == (1, domain.GENESIS)


def test_a_bad_checkpoint_alone_fails_verification():
    records = domain.link(entries(2), head_seq=0, head_mac=domain.GENESIS, key=KEY,
                          received_at="t")
    report = domain.verify_chain(rows_of(records), key=KEY, checkpoint_problems=[
        domain.Problem(1, "bad_checkpoint", "checkpoint line 1 has a bad signature")])
    assert not report.ok and report.first_bad.kind == "bad_checkpoint"


# --- the policy ---------------------------------------------------------------------------

def entry(type_, **kw):
    return domain.parse_event(event(type_, **kw))


def test_always_audited_kinds_are_kept_whatever_the_policy():
    nothing = domain.Policy(version=1, rules=())
    for t in wire.ALWAYS_AUDITED:
        assert nothing.keeps(entry(t))
    for t in domain.OPTIONAL_TYPES:
        assert not nothing.keeps(entry(t))


def test_the_default_policy_keeps_sensitive_reads_and_data_changes():
    p = domain.default_policy()
    assert p.keeps(entry("sensitive_read")) and p.keeps(entry("data_change"))
    assert not p.keeps(entry("data_read")) and not p.keeps(entry("token_refresh"))


def test_rules_match_by_user_operation_object_field_role_and_branch():
    p = domain.Policy(version=2, rules=domain.parse_rules([
        {"users": ["agent-7"]},
        {"types": ["data_read"], "operations": ["policy.*"]},
        {"objects": ["customer:9*"], "fields": ["id_number"]},
        {"roles": ["auditor"], "branches": ["5301"]},
    ]))
    assert p.keeps(entry("token_refresh", who={"user_id": "agent-7"}))
    assert not p.keeps(entry("token_refresh", who={"user_id": "agent-8"}))
    assert p.keeps(entry("data_read", where={"named_request": "policy.get"}))
    assert p.keeps(entry("data_read", operation="policy.search"))
    assert not p.keeps(entry("data_change", operation="policy.search"))
    assert p.keeps(entry("sensitive_read", object_="customer:91",
                         detail={"fields": ["id_number"]}))
    assert not p.keeps(entry("sensitive_read", object_="customer:91",
                             detail={"fields": ["mobile"]}))
    assert p.keeps(entry("data_read", who={"roles": ["auditor"], "branch": "530102"}))
    assert not p.keeps(entry("data_read", who={"roles": ["auditor"], "branch": "5302"}))


@pytest.mark.parametrize("rules, where, says", [
    ("all", "rules", "list"),
    ([{}], "rules.0", "empty rule"),
    ([{"colour": ["red"]}], "rules.0", "unknown keys colour"),
    ([{"types": ["coffee"]}], "rules.0.types", "unknown types coffee"),
    ([{"users": "agent-7"}], "rules.0.users", "list"),
    ([{"users": [""]}], "rules.0.users", "non-empty"),
])
def test_a_policy_that_makes_no_sense_is_refused_field_by_field(rules, where, says):
    with pytest.raises(domain.PolicyError) as info:
        domain.parse_rules(rules)
    assert says in " ".join(info.value.fields[where])


def test_instants_need_a_zone():
    assert domain.parse_instant("2026-11-27T08:00:00Z") == "2026-11-27T08:00:00.000Z"
    for bad in ("2026-11-27", "2026-11-27T08:00:00", "soon", 5):
        with pytest.raises(ValueError):
            domain.parse_instant(bad)


def test_csv_cells_do_not_become_formulas():
    assert domain.csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert domain.csv_cell("agent-7") == "agent-7" and domain.csv_cell(None) == ""
