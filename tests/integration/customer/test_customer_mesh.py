"""The customer service through the centre, as a phone uses it, on SQLite and on PostgreSQL:
create, find, edit, relate, locate, analyse, import and export; events and audit events on the
bus."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import date

import pytest
from customer_mesh import OPERATOR, call, ics
from kombu import Connection, Exchange, Queue

pytestmark = pytest.mark.integration


def rid(born: date, order: int, area: str = "530102") -> str:
    import sys

    sys.path.insert(0, str(ics.ROOT / "services" / "customer"))
    from customer.domain import make_resident_id

    return make_resident_id(area, born, order)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def mesh(request, customer_mesh_factory):
    return customer_mesh_factory(request.param)


@pytest.fixture
def tag():
    """Orders codes unique to one test, so tests in a shared database keep apart."""
    return uuid.uuid4().int % 400


class Listener:
    """A queue of the test's own bound to an exchange: what the service published."""

    def __init__(self, amqp: str, exchange: str, key: str) -> None:
        self.conn = Connection(amqp)
        self.queue = Queue(f"test-{uuid.uuid4().hex[:8]}", Exchange(exchange, type="topic",
                                                                    durable=True),
                           routing_key=key, auto_delete=True)
        self.queue(self.conn.default_channel).declare()
        self.got: list[dict] = []

    def wait(self, check, timeout: float = 10) -> dict:
        def find():
            msg = self.queue(self.conn.default_channel).get(no_ack=True)
            while msg is not None:
                self.got.append(json.loads(msg.body))
                msg = self.queue(self.conn.default_channel).get(no_ack=True)
            return next((m for m in self.got if check(m)), None)

        return ics.wait_for(find, timeout, 0.05, "a message")

    def close(self) -> None:
        self.conn.release()


def _create(mesh, name: str, number: str, token: str = OPERATOR, **kw):
    if token == OPERATOR:  # the operator has no branch of their own to default to
        kw.setdefault("branch", "530102")
    r = call(mesh, "customer.create", {"name": name, "id_number": number, **kw}, token)
    assert r.status_code == 200, r.text
    return r.json()["data"]


def test_create_find_and_edit_a_customer_from_the_phone(mesh, tag):
    events = Listener(mesh.amqp_uri, "customer.events", "#")
    born = date(1984, 2, 3)
    number = rid(born, 2 * tag + 1)
    c = _create(mesh, "张三", number, "agent", mobile="13812345678", region_code="530102",
                occupation_code="0001001")
    assert c["id_number"] == f"{number[:6]}********{number[-4:]}"
    assert c["mobile"] == "138****5678" and c["branch"] == "530102"
    assert c["address"]["county"] == "五华区" and c["age"] >= 40
    created = events.wait(lambda m: m.get("id") == c["id"])
    assert created["branch"] == "530102" and "id_number" not in created

    # one record per person: the same ID number again is a 409 naming the first
    again = call(mesh, "customer.create", {"name": "张叁", "id_number": number}, "agent")
    assert again.status_code == 409
    assert again.json()["error"]["fields"]["existing_id"] == [str(c["id"])]

    found = call(mesh, "customer.search", {"q": number}, "agent").json()["data"]["items"]
    assert [x["id"] for x in found] == [c["id"]]
    by_initials = call(mesh, "customer.search", {"q": "zs", "limit": 100},
                       "agent").json()["data"]["items"]
    assert c["id"] in [x["id"] for x in by_initials]

    changed = call(mesh, "customer.update", {"id": c["id"], "version": 1,
                                             "street": "人民中路 8 号"}, "agent")
    assert changed.status_code == 200 and changed.json()["data"]["version"] == 2
    events.wait(lambda m: m.get("id") == c["id"] and "street" in m.get("changed", []))
    stale = call(mesh, "customer.update", {"id": c["id"], "version": 1, "email": "z@s.cn"},
                 "agent")
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "conflict"

    fix = call(mesh, "customer.locate", {"id": c["id"], "latitude": 25.04, "longitude": 102.71},
               "agent")
    assert fix.status_code == 200 and fix.json()["data"]["location"]["source"] == "gps"
    events.close()


def test_wrong_input_is_a_400_with_fields(mesh, tag):
    bad = rid(date(1990, 1, 1), 2 * tag + 1)
    bad = bad[:-1] + ("0" if bad[-1] != "0" else "1")
    r = call(mesh, "customer.create", {"name": "李四", "id_number": bad})
    assert r.status_code == 400 and "id_number" in r.json()["error"]["fields"]
    r = call(mesh, "customer.create", {"name": "李四"})  # the centre checks the schema
    assert r.status_code == 400 and r.json()["error"]["fields"] == {"id_number": ["is required"]}
    r = call(mesh, "customer.search", {"sort": "colour"})
    assert r.status_code == 400


def test_an_unmasked_answer_is_an_audit_event(mesh, tag):
    audit = Listener(mesh.amqp_uri, "ics.audit", "sensitive_read.customer")
    c = _create(mesh, "王五", rid(date(1977, 7, 7), 2 * tag + 1))
    plain = call(mesh, "customer.get", {"id": c["id"]}, "agent-pii").json()["data"]
    assert plain["pii_masked"] is False and "*" not in plain["id_number"]
    event = audit.wait(lambda m: m["object"] == f"customer:{c['id']}"
                       and m["who"]["user_id"] == "agent-1")
    assert event["detail"]["fields"] == ["id_number", "mobile"]
    masked = call(mesh, "customer.get", {"id": c["id"]}, "agent").json()["data"]
    assert masked["pii_masked"] is True
    audit.close()


def test_a_household_with_relations_and_pages_of_results(mesh, tag):
    head = _create(mesh, "欧阳德", rid(date(1970, 1, 1), 2 * tag + 1, "532901"),
                   branch="53290101")
    kids = [_create(mesh, f"欧阳{n}", rid(date(2000 + i, 1, 1), 2 * tag + 1, "532901"),
                    branch="53290101") for i, n in enumerate("甲乙丙丁")]
    for kid in kids:
        r = call(mesh, "customer.relate", {"customer_id": head["id"], "related_id": kid["id"],
                                           "kind": "child"})
        assert r.status_code == 200 and r.json()["data"]["added"] is True
    got = call(mesh, "customer.get", {"id": kids[0]["id"]}).json()["data"]
    assert [(x["kind"], x["id"]) for x in got["relations"]] == [("parent", head["id"])]

    ids, cursor = [], None
    while True:
        params = {"branch": "53290101", "name": "欧阳", "limit": 2}
        page = call(mesh, "customer.search", {**params, **({"cursor": cursor} if cursor
                                                           else {})}).json()["data"]
        ids += [x["id"] for x in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(ids) == sorted([head["id"], *(k["id"] for k in kids)])
    r = call(mesh, "customer.unrelate", {"customer_id": head["id"], "related_id": kids[0]["id"]})
    assert r.json()["data"]["removed"] == 2


def test_analysis_by_prefecture(mesh, tag):
    _create(mesh, "段一", rid(date(1960, 1, 1), 2 * tag + 1, "533102"), branch="53310201",
            region_code="533102")
    data = call(mesh, "customer.analysis", {"by": "prefecture", "branch": "533102"}).json()["data"]
    assert data["total"] >= 1
    assert {g["label"] for g in data["groups"]} == {"德宏傣族景颇族自治州"}
    assert sum(data["groups"][0]["age"].values()) == data["groups"][0]["total"]


def test_import_with_bad_rows_then_export(mesh, tag):
    branch = f"5325{tag % 100:02d}99"
    good = [rid(date(1980 + i, 3, 3), 2 * tag + 1, "532501") for i in range(3)]
    bad_check = good[0][:-1] + ("0" if good[0][-1] != "0" else "1")
    lines = ["name,id_number,mobile,occupation_code,branch",
             f"赵一,{good[0]},13900000001,0001001,{branch}",
             f"赵二,{bad_check},13900000002,,{branch}",
             f"赵三,{good[1]},13900000003,1234567,{branch}",
             f"赵四,{good[0]},13900000004,,{branch}",
             f"赵五,{good[2]},13900000005,0006002,{branch}"]
    content = base64.b64encode("\n".join(lines).encode()).decode()
    r = call(mesh, "customer.import", {"format": "csv", "content_base64": content})
    report = r.json()["data"]
    assert (report["stored"], [e["row"] for e in report["errors"]]) == (0, [3, 4, 5])
    assert call(mesh, "customer.search", {"branch": branch}).json()["data"]["items"] == []
    r = call(mesh, "customer.import", {"format": "csv", "content_base64": content,
                                       "mode": "valid_rows"})
    assert r.json()["data"]["stored"] == 2

    out = call(mesh, "customer.export", {"format": "csv", "branch": branch}).json()["data"]
    text = base64.b64decode(out["content_base64"]).decode("utf-8-sig")
    assert out["rows"] == 2 and good[0] in text and good[2] in text
    masked = call(mesh, "customer.export", {"format": "xlsx", "branch": branch},
                  "operator-nopii").json()["data"]
    assert masked["rows"] == 2 and masked["filename"].endswith(".xlsx")
