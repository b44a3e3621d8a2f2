"""Bad input on every endpoint: the documented 4xx with a message, never a 500 or a trace."""

import json
import threading
import time

import pytest
from meshkit import AGENT_TOKEN, READER_TOKEN


def _error(r, status, code):
    assert r.status_code == status, r.text
    body = r.json()
    assert body["ok"] is False and body["error"]["code"] == code and body["error"]["message"]
    assert body["request_id"] and "Traceback" not in r.text
    return body["error"]


@pytest.mark.parametrize("data, code", [
    (b"{not json", "invalid_json"),
    (b"[1, 2]", "invalid_json"),
    (b'"text"', "invalid_json"),
    (b"\xff\xfe", "invalid_json"),
])
def test_malformed_bodies(quotes_mesh, data, code):
    _error(quotes_mesh.invoke("quote.price", data=data), 400, code)


def test_wrong_types_name_each_field(quotes_mesh):
    err = _error(quotes_mesh.invoke("quote.price", {"sum_insured": "lots", "colour": "red"}),
                 400, "invalid_input")
    assert set(err["fields"]) == {"sum_insured", "colour"}
    err = _error(quotes_mesh.invoke("quote.price", {}), 400, "invalid_input")
    assert err["fields"] == {"sum_insured": ["is required"]}


def test_the_service_own_validation_crosses_as_fields(quotes_mesh):
    err = _error(quotes_mesh.invoke("quote.price", {"sum_insured": 20_000_000}), 400,
                 "invalid_input")
    assert err["fields"] == {"sum_insured": ["at most 10000000"]}


def test_typed_remote_errors_map_to_statuses(quotes_mesh):
    _error(quotes_mesh.invoke("quote.find", {"quote_no": "Q1"}), 404, "not_found")
    err = _error(quotes_mesh.invoke("quote.accept", {"quote_no": "taken"},
                                    headers={"Idempotency-Key": "k-taken"}), 409, "conflict")
    assert err["fields"] == {"quote_no": ["taken"]}


def test_a_crash_hides_its_details(quotes_mesh):
    r = quotes_mesh.invoke("quote.crash", {})
    _error(r, 500, "service_error")
    assert "secret" not in r.text


def test_body_over_the_limit(quotes_mesh):
    big = json.dumps({"sum_insured": 1, "pad": "x" * 70_000}).encode()
    _error(quotes_mesh.invoke("quote.price", data=big), 413, "too_large")


def test_unknown_names_and_paths(quotes_mesh):
    _error(quotes_mesh.invoke("quote.nothing", {}), 404, "unknown_request")
    _error(quotes_mesh.get("/v1/nowhere"), 404, "not_found")
    _error(quotes_mesh.get("/v1/invoke/quote.price"), 405, "method_not_allowed")


def test_tokens(quotes_mesh):
    _error(quotes_mesh.invoke("quote.price", {"sum_insured": 1}, token=None), 401,
           "unauthenticated")
    _error(quotes_mesh.invoke("quote.price", {"sum_insured": 1}, token="forged"), 401,
           "unauthenticated")
    _error(quotes_mesh.get("/v1/catalog", token=None), 401, "unauthenticated")
    _error(quotes_mesh.invoke("quote.accept", {"quote_no": "1"}, token=READER_TOKEN,
                              headers={"Idempotency-Key": "k1"}), 403, "forbidden")
    names = {r["name"] for r in quotes_mesh.get("/v1/catalog", token=READER_TOKEN)
             .json()["data"]["requests"]}
    assert "quote.price" in names and "quote.accept" not in names


def test_bad_timeout_header(quotes_mesh):
    _error(quotes_mesh.invoke("quote.price", {"sum_insured": 1},
                              headers={"X-Timeout-Ms": "soon"}), 400, "invalid_header")


def test_idempotency_keys(quotes_mesh):
    mesh = quotes_mesh
    _error(mesh.invoke("quote.accept", {"quote_no": "A1"}), 400, "idempotency_key_required")
    first = mesh.invoke("quote.accept", {"quote_no": "A1"}, headers={"Idempotency-Key": "a1"})
    assert first.status_code == 200 and first.json()["data"]["runs"] == 1
    again = mesh.invoke("quote.accept", {"quote_no": "A1"}, headers={"Idempotency-Key": "a1"})
    assert again.status_code == 200 and again.json()["data"] == first.json()["data"]
    assert again.headers["Idempotent-Replayed"] == "true"
    _error(mesh.invoke("quote.accept", {"quote_no": "B2"}, headers={"Idempotency-Key": "a1"}),
           422, "idempotency_key_reused")
    # keys belong to their caller: another user's same key is another request
    other = mesh.invoke("quote.accept", {"quote_no": "A1"}, token=AGENT_TOKEN,
                        headers={"Idempotency-Key": "a1"})
    assert other.status_code == 200 and other.json()["data"]["runs"] == 2
    # the failure answer is kept too: the same conflict, not a second run
    c1 = mesh.invoke("quote.accept", {"quote_no": "taken"}, headers={"Idempotency-Key": "t"})
    c2 = mesh.invoke("quote.accept", {"quote_no": "taken"}, headers={"Idempotency-Key": "t"})
    assert c1.status_code == c2.status_code == 409 and c2.headers["Idempotent-Replayed"]


def test_idempotency_key_while_the_first_still_runs(quotes_mesh):
    results = {}

    def first():
        results["first"] = quotes_mesh.invoke("quote.hold", {"seconds": 1.0},
                                              headers={"Idempotency-Key": "hold-1"})

    t = threading.Thread(target=first)
    t.start()
    time.sleep(0.3)
    _error(quotes_mesh.invoke("quote.hold", {"seconds": 1.0},
                              headers={"Idempotency-Key": "hold-1"}), 409,
           "idempotency_key_in_use")
    t.join(10)
    assert results["first"].status_code == 200
    replay = quotes_mesh.invoke("quote.hold", {"seconds": 1.0},
                                headers={"Idempotency-Key": "hold-1"})
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"


def test_admin_input(quotes_mesh):
    m = quotes_mesh
    _error(m.admin("GET", "/v1/admin/routes", token=AGENT_TOKEN), 403, "forbidden")
    _error(m.admin("POST", "/v1/admin/manifests", {"service": "Bad Name", "requests": "no"}),
           400, "invalid_manifest")
    _error(m.admin("PATCH", "/v1/admin/routes/quote.price", {"timeout_ms": -5}), 400,
           "invalid_change")
    _error(m.admin("PATCH", "/v1/admin/routes/quote.price", {"colour": "red"}), 400,
           "invalid_change")
    _error(m.admin("PATCH", "/v1/admin/routes/quote.none", {"enabled": False}), 404,
           "not_found")
    _error(m.admin("PUT", "/v1/admin/aliases/quote.cost", {"target": "quote.none"}), 404,
           "not_found")
    _error(m.admin("PUT", "/v1/admin/aliases/quote.cost", {}), 400, "invalid_change")
    _error(m.admin("GET", "/v1/admin/changes?since=abc"), 400, "invalid_query")
