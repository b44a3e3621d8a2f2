"""Operators change routes at run time; every gateway process sees it within a second."""

import time

from meshkit import wait_for


def _everywhere(mesh, check, n=12):
    """The check holds on every answer (the gateway runs two worker processes)."""
    return all(check() for _ in range(n))


def test_disable_enable_timeout_permission_alias_are_versioned(quotes_mesh):
    m = quotes_mesh
    v0 = m.admin("GET", "/v1/admin/routes").json()["data"]["version"]

    t = time.monotonic()
    assert m.admin("PATCH", "/v1/admin/routes/quote.price", {"enabled": False}).status_code == 200
    wait_for(lambda: _everywhere(m, lambda: m.invoke("quote.price", {"sum_insured": 1})
                                 .status_code == 404), 1.0, what="disabled everywhere")
    assert time.monotonic() - t <= 1.0

    m.admin("PATCH", "/v1/admin/routes/quote.price", {"enabled": True})
    wait_for(lambda: _everywhere(m, lambda: m.invoke("quote.price", {"sum_insured": 1})
                                 .status_code == 200), 1.0, what="enabled everywhere")

    m.admin("PATCH", "/v1/admin/routes/quote.slow", {"timeout_ms": 150})
    wait_for(lambda: _everywhere(m, lambda: m.invoke("quote.slow", {"seconds": 1})
                                 .elapsed.total_seconds() < 0.4), 2, what="new timeout")

    m.admin("PATCH", "/v1/admin/routes/quote.find", {"permission": "quote:secret"})
    from meshkit import AGENT_TOKEN
    wait_for(lambda: _everywhere(m, lambda: m.invoke("quote.find", {}, token=AGENT_TOKEN)
                                 .status_code == 403), 1.0, what="new permission")

    assert m.admin("PUT", "/v1/admin/aliases/quote.cost", {"target": "quote.price"}) \
        .status_code == 200
    r = wait_for(lambda: (x := m.invoke("quote.cost", {"sum_insured": 2000})).status_code == 200
                 and x, 1.0)
    assert r.json()["data"]["premium_fen"] == 600

    changes = m.admin("GET", f"/v1/admin/changes?since={v0}").json()["data"]
    assert [(c["kind"], c["target"]) for c in changes] == [
        ("route", "quote.price"), ("route", "quote.price"), ("route", "quote.slow"),
        ("route", "quote.find"), ("alias", "quote.cost")]
    assert all(c["actor"] == "operator" for c in changes)
    assert [c["version"] for c in changes] == sorted(c["version"] for c in changes)


def test_operator_settings_survive_a_new_announcement(quotes_mesh):
    m = quotes_mesh
    m.admin("PATCH", "/v1/admin/routes/quote.price", {"timeout_ms": 1234})
    m.start_outsider("quotes-v2", ICS_SERVICE_VERSION="2.0.0")
    route = wait_for(lambda: next((r for r in m.admin("GET", "/v1/admin/routes")
                                   .json()["data"]["routes"]
                                   if r["name"] == "quote.price"
                                   and r["service_version"] == "2.0.0"), None), 20)
    assert route["timeout_ms"] == 1234


def test_register_a_service_that_does_not_announce_itself(quotes_mesh):
    m = quotes_mesh
    manifest = {"service": "legacy", "version": "7", "requests": [
        {"name": "legacy.lookup", "method": "lookup", "permission": "legacy:read",
         "timeout_ms": 200, "summary": "Old system lookup"}]}
    assert m.admin("POST", "/v1/admin/manifests", manifest).status_code == 201
    assert m.admin("POST", "/v1/admin/manifests", manifest).json()["data"]["changed"] is False
    catalog = wait_for(lambda: [r for r in m.get("/v1/catalog").json()["data"]["requests"]
                                if r["name"] == "legacy.lookup"], 1.0)
    assert catalog[0]["summary"] == "Old system lookup"
    services = {s["name"]: s for s in m.admin("GET", "/v1/admin/services").json()["data"]}
    assert services["legacy"]["source"] == "operator"


def test_an_operator_manifest_cannot_take_over_an_announcing_service(quotes_mesh):
    manifest = {"service": "quotes", "version": "9", "requests": [
        {"name": "quote.other", "method": "other", "permission": "quote:read"}]}
    r = quotes_mesh.admin("POST", "/v1/admin/manifests", manifest)
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    assert quotes_mesh.invoke("quote.price", {"sum_insured": 1}).status_code == 200
