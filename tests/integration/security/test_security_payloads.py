"""Signed and sealed requests (P2): verified, kept, never replayed; and the permission matrix."""

import json
import time
import uuid

from meshkit import wait_for
from security_fixtures import key, org, tap  # noqa: F401


def _require(org, level: str) -> None:
    org.ok("PUT", "/v1/admin/terminal-classes/phone",
           {"login_items": ["pin", "password", "device"], "min_sensitivity": level})
    time.sleep(0.5)  # every gateway process re-reads within ICS_POLL_S


def test_signed_requests(org, tap):
    agent = org.agent()
    _require(org, "signed")
    c = agent.client
    plain = c.invoke("quote.price", {"sum_insured": 1000}, protection="normal")
    assert plain.status == 401 and plain.error["code"] == "protection_required"
    signed = c.invoke("quote.price", {"sum_insured": 1000}, protection="signed")
    assert signed.status == 200 and signed.data["premium_fen"] == 300

    jws = c.sign("quote.price", {"sum_insured": 1000})
    headers = {"Content-Type": "application/jose"}
    first = c.request("POST", "/v1/invoke/quote.price", raw=jws.encode(), headers=headers)
    replay = c.request("POST", "/v1/invoke/quote.price", raw=jws.encode(), headers=headers)
    assert first.status == 200 and replay.status == 401
    assert "replayed" in replay.error["message"]

    head, payload, sig = c.sign("quote.price", {"sum_insured": 1000}).split(".")
    import base64
    forged = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged["params"]["sum_insured"] = 9
    tampered = ".".join([head, base64.urlsafe_b64encode(json.dumps(forged).encode()).decode()
                         .rstrip("="), sig])
    bad = c.request("POST", "/v1/invoke/quote.price", raw=tampered.encode(), headers=headers)
    assert bad.status == 401 and bad.error["code"] == "protection_failed"

    other_name = c.sign("quote.whoami", {})
    r = c.request("POST", "/v1/invoke/quote.price", raw=other_name.encode(), headers=headers)
    assert r.status == 401

    old = c.device.sign({"name": "quote.price", "params": {"sum_insured": 1},
                         "jti": uuid.uuid4().hex, "iat": int(time.time()) - 3600})
    r = c.request("POST", "/v1/invoke/quote.price", raw=old.encode(), headers=headers)
    assert r.status == 401 and "too old" in r.error["message"]
    # tampered, wrong name, too old: each an abnormal event
    wait_for(lambda: len(tap.of("abnormal")) >= 3, 5, what="abnormal events")


def test_sealed_requests_and_answers(org):
    agent = org.agent(curve="P-256")
    _require(org, "sealed")
    c = agent.client
    signed_only = c.invoke("quote.price", {"sum_insured": 1000}, protection="signed")
    assert signed_only.status == 401 and signed_only.error["code"] == "protection_required"
    sealed = c.invoke("quote.price", {"sum_insured": 2000}, protection="sealed")
    assert sealed.status == 200 and sealed.data["premium_fen"] == 600
    assert sealed.headers["Content-Type"].startswith("application/jose")

    body = c.seal(c.sign("quote.price", {"sum_insured": 1}))
    parts = body.split(".")
    parts[3] = parts[3][:-4] + ("AAAA" if parts[3][-4:] != "AAAA" else "BBBB")
    broken = c.request("POST", "/v1/invoke/quote.price", raw=".".join(parts).encode(),
                       headers={"Content-Type": "application/jose"})
    assert broken.status == 401
    k = key()
    ok = c.invoke("quote.accept", {"quote_no": "Q-sealed"}, protection="sealed",
                  idempotency_key=k)
    assert ok.status == 200 and ok.data["quote_no"] == "Q-sealed"
    again = c.invoke("quote.accept", {"quote_no": "Q-sealed"}, protection="sealed",
                     idempotency_key=k)  # re-signed (new jti), same key: the first answer
    assert again.status == 200 and again.data == ok.data
    assert again.headers["Idempotent-Replayed"] == "true"


def test_device_key_rotation(org):
    agent = org.agent()
    _require(org, "signed")
    old = agent.client.device
    assert agent.client.rotate_keys()["key_version"] == 2
    assert agent.client.invoke("quote.price", {"sum_insured": 1}).status == 200
    agent.client.device = old
    assert agent.client.invoke("quote.price", {"sum_insured": 1}, protection="signed") \
        .status == 401


def test_permission_matrix_over_the_live_catalogue(org, tap):
    """Every named request the mesh serves now — including ones added later — refuses a
    caller without its permission and admits one with it."""
    routes = [r for r in org.admin.request("GET", "/v1/admin/routes").data["routes"]
              if r["enabled"] and not r["alias_of"]]
    assert routes
    perms = sorted({r["permission"] for r in routes})
    for perm in perms:
        org.ok("POST", "/v1/admin/roles", {"name": f"only-{perm.replace(':', '-')}",
                                           "permissions": [perm]})
    holders = {perm: org.agent(role=f"only-{perm.replace(':', '-')}") for perm in perms}
    for route in routes:
        for perm, agent in holders.items():
            answer = agent.client.invoke(route["name"], {}, idempotency_key=key(),
                                         protection="normal", headers={"X-Timeout-Ms": "300"})
            if perm == route["permission"]:
                assert answer.status not in (401, 403), (route["name"], perm, answer.body)
            else:
                assert answer.status == 403, (route["name"], perm, answer.body)
                assert answer.error["code"] == "forbidden"
    wait_for(lambda: tap.of("over_privilege"), 5, what="over-privilege events")
