"""The audit service in the mesh: its named requests through the centre, the policy taking
effect at once, clear errors, auditors only, and poison messages set aside where ops see them."""

import json
import subprocess
import uuid

import pika
import pytest
from audit_kit import Publisher, audit_env
from meshkit import AGENT_TOKEN, BIN, wait_for
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy

from invoke_centre.kit.audit import audit_event

pytestmark = pytest.mark.integration
AUDITOR = "test-auditor-token"
ADMIN = "test-audit-admin-token"
TOKENS = {
    AUDITOR: {"user_id": "auditor-1", "roles": ["auditor"], "permissions": ["audit:read"]},
    ADMIN: {"user_id": "admin-1", "roles": ["admin"],
            "permissions": ["audit:read", "audit:admin"]},
}


@pytest.fixture
def audit_mesh(mesh_factory, databases, db_kind, tmp_path):
    mesh = mesh_factory(tokens=TOKENS)
    mesh.start_centre()
    mesh.start_service("audit", DB_URI=databases.new(db_kind, "audit"), **audit_env(tmp_path))
    mesh.wait_callable("audit.policy.get", {})
    return mesh


def invoke(mesh, name, params=None, token=AUDITOR, **kw):
    return mesh.invoke(name, params or {}, token=token, **kw)


def search(mesh, **params):
    r = invoke(mesh, "audit.search", {"limit": 500, **params})
    assert r.status_code == 200, r.text
    return r.json()["data"]["items"]


def set_policy(mesh, rules, token=ADMIN):
    return invoke(mesh, "audit.policy.set", {"rules": rules}, token=token,
                  headers={"Idempotency-Key": uuid.uuid4().hex})


def wait_stored(mesh, request_id):
    return wait_for(lambda: search(mesh, request_id=request_id), 15, 0.1,
                    f"the event of request {request_id}")


def test_the_trail_through_the_centre(audit_mesh, tmp_path):
    mesh = audit_mesh
    pub = Publisher(mesh.amqp_uri)

    # --- a policy change takes effect for the very next event, and is itself audited -----
    r = set_policy(mesh, [{"types": ["data_read"], "users": ["agent-9"]}])
    assert r.status_code == 200, r.text
    assert r.json()["data"]["version"] == 1

    def read_by(user, rid):
        pub.publish(audit_event("data_read", source="policy", who={"user_id": user},
                                where={"request_id": rid, "named_request": "policy.get"}))

    read_by("agent-9", "kept-1")
    read_by("agent-8", "dropped-1")
    pub.publish(audit_event("login", source="centre", where={"request_id": "mark-1"}))
    wait_stored(mesh, "mark-1")     # in order: what came before it has been judged
    assert [x["where"]["request_id"] for x in search(mesh, type="data_read")] == ["kept-1"]

    assert set_policy(mesh, []).status_code == 200
    read_by("agent-9", "dropped-2")
    pub.publish(audit_event("login", source="centre", where={"request_id": "mark-2"}))
    wait_stored(mesh, "mark-2")
    assert [x["where"]["request_id"] for x in search(mesh, type="data_read")] == ["kept-1"]
    changes = search(mesh, type="audit_policy_change", order="asc")
    assert [c["detail"]["version"] for c in changes] == [1, 2]
    assert changes[0]["who"]["user_id"] == "admin-1"
    assert changes[0]["params"]["rules"] == [{"types": ["data_read"], "users": ["agent-9"]}]
    policy = invoke(mesh, "audit.policy.get").json()["data"]
    assert policy["version"] == 2 and policy["rules"] == []

    # --- search, get, export, verify -----------------------------------------------------
    for i in range(5):
        pub.publish(audit_event("over_privilege", source="customer", outcome="refused",
                                who={"user_id": "agent-3"},
                                where={"request_id": f"op-{i}",
                                       "named_request": "customer.get"},
                                params={"id_number": "530102199001011234"}))
    wait_stored(mesh, "op-4")
    page = invoke(mesh, "audit.search", {"user_id": "agent-3", "limit": 2}).json()["data"]
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = search(mesh, user_id="agent-3", cursor=page["next_cursor"])
    assert len(rest) == 3
    record = page["items"][0]
    assert record["params"] == {"id_number": "530102********1234"}
    assert record["outcome"] == "refused" and record["where"]["named_request"] == "customer.get"
    got = invoke(mesh, "audit.get", {"event_id": record["event_id"]}).json()["data"]
    assert got == record
    export = invoke(mesh, "audit.export", {"type": "over_privilege",
                                           "named_request": "customer.get"}).json()["data"]
    assert export["rows"] == 5 and export["csv"].startswith("seq,event_id,type,at")
    report = invoke(mesh, "audit.verify").json()["data"]
    assert report["ok"] and report["first_bad"] is None and report["records"] >= 10

    # --- the same through the ics tool ---------------------------------------------------
    env = {**mesh.env, "ICS_URL": mesh.url, "ICS_TOKEN": ADMIN}
    out = subprocess.run([BIN / "ics", "audit", "verify"], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out.startswith("ok: records 1..")
    out = subprocess.run([BIN / "ics", "--json", "audit", "search", "--type", "over_privilege"],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert len(json.loads(out)["items"]) == 5
    csv_file = tmp_path / "trail.csv"
    subprocess.run([BIN / "ics", "audit", "export", "--out", str(csv_file)], env=env,
                   check=True, capture_output=True)
    assert csv_file.read_text().startswith("seq,event_id,type,at")

    # --- clear errors, auditors only -----------------------------------------------------
    r = invoke(mesh, "audit.search", {"type": "coffee"})
    assert r.status_code == 400 and "type" in r.json()["error"]["fields"]
    r = invoke(mesh, "audit.search", {"from": "2026-11-27"})
    assert r.status_code == 400
    assert "no time zone" in r.json()["error"]["fields"]["from"][0]
    r = invoke(mesh, "audit.search", {"from": "2026-11-27T10:00:00Z",
                                      "to": "2026-11-27T09:00:00Z"})
    assert r.status_code == 400 and r.json()["error"]["fields"]["to"] == [
        "must be later than from"]
    r = invoke(mesh, "audit.get", {"seq": 999999})
    assert r.status_code == 404 and "999999" in r.json()["error"]["message"]
    r = set_policy(mesh, [{}])
    assert r.status_code == 400 and "empty rule" in r.json()["error"]["fields"]["rules.0"][0]
    assert invoke(mesh, "audit.search", token=AGENT_TOKEN).status_code == 403
    assert set_policy(mesh, [], token=AUDITOR).status_code == 403
    # the centre's refusal is an over-privilege event in the trail
    wait_for(lambda: any(x["source"] == "invoke_centre" and x["operation"] == "audit.search"
                         for x in search(mesh, type="over_privilege", user_id="agent-7")),
             15, 0.2, "the centre's over_privilege event")
    # and so is the service's own, for a caller that reaches it without the permission
    intruder = {"user_id": "intruder", "permissions": "customer:read",
                "request_id": "intrude-1", "named_request": "audit.search"}
    with ClusterRpcProxy({"AMQP_URI": mesh.amqp_uri}, context_data=intruder) as rpc, \
            pytest.raises(RemoteError) as info:
        rpc.audit.search_records({})
    assert info.value.exc_type == "Forbidden"
    (refused,) = wait_stored(mesh, "intrude-1")
    assert (refused["type"], refused["source"], refused["outcome"]) == (
        "over_privilege", "audit", "refused")

    # --- a message that is not an audit event lands in the DLQ, and /metrics counts it ----
    conn = pika.BlockingConnection(pika.URLParameters(mesh.amqp_uri))
    conn.channel().basic_publish("ics.audit", "login.somebody", b"this is not json",
                                 pika.BasicProperties(delivery_mode=2))
    conn.close()
    line = 'ics_dead_letters{queue="audit.ingest.dlq"} 1.0'
    wait_for(lambda: line in mesh.get("/metrics", token=None).text, 30, 0.5,
             "the dead letter in /metrics")
    pub.publish(audit_event("login", source="centre", where={"request_id": "after-poison"}))
    wait_stored(mesh, "after-poison")   # the poison did not stop the stream
    pub.close()
    dead = _dead_letter(mesh)
    assert dead["body"] == b"this is not json"
    assert dead["headers"]["x-audit-error"].startswith("invalid: not JSON")


def _dead_letter(mesh):
    conn = pika.BlockingConnection(pika.URLParameters(mesh.amqp_uri))
    try:
        _, props, body = conn.channel().basic_get("audit.ingest.dlq", auto_ack=False)
        return {"body": body, "headers": props.headers or {}}
    finally:
        conn.close()

