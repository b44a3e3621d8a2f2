"""Pieces of the gateway that need no broker: liveness, field errors, error mapping, tokens,
idempotency, queue naming."""

import json

import jsonschema
import pytest
from nameko.exceptions import serialize
from sqlalchemy.orm import sessionmaker

from invoke_centre.amqp import LiveView
from invoke_centre.auth import Authenticator
from invoke_centre.busview import describe_queue, vhost_of
from invoke_centre.db import make_engine
from invoke_centre.gateway import _remote_error, field_errors
from invoke_centre.idempotency import IdempotencyStore
from invoke_centre.kit import Conflict, Forbidden, NotFound, Unprocessable, ValidationError
from invoke_centre.models import Base


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_an_instance_leaves_after_three_missed_heartbeats():
    clock = Clock()
    live = LiveView(clock)
    live.seen("weather", "w1", 2.0)
    clock.now += 5.9
    assert live.is_live("weather")
    clock.now += 0.2
    assert not live.is_live("weather")
    live.seen("weather", "w1", 2.0)
    live.gone("weather", "w1")
    assert not live.is_live("weather") and live.instances("weather") == []


def test_field_errors_are_per_field():
    schema = {"type": "object", "required": ["a", "b"], "additionalProperties": False,
              "properties": {"a": {"type": "integer"}, "b": {"type": "object",
                             "properties": {"c": {"type": "string"}}}}}
    v = jsonschema.Draft202012Validator(schema)
    assert field_errors(v, {"a": "x", "b": {"c": 1}, "z": 0}) == {
        "a": ["'x' is not of type 'integer'"], "b.c": ["1 is not of type 'string'"],
        "z": ["is not allowed"]}
    assert field_errors(v, {}) == {"a": ["is required"], "b": ["is required"]}


@pytest.mark.parametrize("exc, status, code", [
    (ValidationError("bad", {"f": ["wrong"]}), 400, "invalid_input"),
    (NotFound("none"), 404, "not_found"),
    (Forbidden("no"), 403, "forbidden"),
    (Conflict("stale", {"version": ["is 3"]}), 409, "conflict"),
    (Unprocessable("rule"), 422, "unprocessable"),
    (RuntimeError("secret"), 500, "service_error"),
])
def test_typed_errors_cross_the_wire(exc, status, code):
    wire_form = json.loads(json.dumps(serialize(exc)))  # exactly what nameko sends
    err = _remote_error(wire_form)
    assert (err.status, err.code) == (status, code)
    if isinstance(exc, (ValidationError, Conflict)):
        assert err.fields == exc.fields and err.message == exc.message
    if status == 500:
        assert "secret" not in err.message


def test_a_foreign_service_may_send_fields_at_the_top():
    err = _remote_error({"exc_type": "ValidationError", "value": "bad", "fields": {"x": ["y"]}})
    assert err.status == 400 and err.fields == {"x": ["y"]}


def test_tokens(tmp_path):
    f = tmp_path / "t.json"
    f.write_text(json.dumps({"tok": {"user_id": "u1", "roles": ["agent"],
                                     "permissions": ["a:read"]},
                             "op": {"user_id": "op", "permissions": ["*"]}}))
    auth = Authenticator(str(f))
    assert auth.authenticate("Bearer op").may("ics:admin")
    agent = auth.authenticate("Bearer tok")
    assert agent.user_id == "u1" and agent.may("a:read") and not agent.may("a:write")
    assert not agent.may("ics:admin")
    assert auth.authenticate("Bearer nope") is None and auth.authenticate("op") is None
    assert auth.authenticate(None) is None


def test_idempotency_store_semantics():
    engine = make_engine("sqlite://")
    Base.metadata.create_all(engine)
    store = IdempotencyStore(sessionmaker(bind=engine), ttl_s=60)
    assert store.begin("u", "k", "n.a", "d1").kind == "new"
    assert store.begin("u", "k", "n.a", "d1").kind == "running"
    assert store.begin("u", "k", "n.a", "d2").kind == "mismatch"
    store.finish("u", "k", 200, '{"ok": true}')
    replay = store.begin("u", "k", "n.a", "d1")
    assert (replay.kind, replay.status, replay.response) == ("replay", 200, '{"ok": true}')
    assert store.begin("other", "k", "n.a", "d1").kind == "new"
    store.finish("other", "k", 504, "{}")  # nothing sure was done: the key is free again
    assert store.begin("other", "k", "n.a", "d1").kind == "new"


def test_idempotency_records_expire():
    engine = make_engine("sqlite://")
    Base.metadata.create_all(engine)
    store = IdempotencyStore(sessionmaker(bind=engine), ttl_s=0)
    store.begin("u", "k", "n.a", "d1")
    store.finish("u", "k", 200, "{}")
    assert store.begin("u", "k", "n.a", "d2").kind == "new"


@pytest.mark.parametrize("name, role, service", [
    ("rpc-customer", "rpc", "customer"),
    ("evt-policy-policy_submitted--billing.handle_policy_submitted", "event-handler",
     "billing"),
    ("ics.reply.ics-gateway-abc", "gateway-reply", "invoke_centre"),
    ("audit.dlq", "dead-letter", None),
    ("something", "other", None),
])
def test_queue_roles(name, role, service):
    d = describe_queue(name)
    assert d["role"] == role and d["service"] == service


def test_vhost_of():
    assert vhost_of("amqp://g:g@h:5672/") == "/"
    assert vhost_of("amqp://g:g@h:5672/ics%2Ftest") == "ics/test"


def test_housekeeping_forgets_what_expired(tmp_path):
    from datetime import timedelta

    from invoke_centre.config import Settings
    from invoke_centre.models import IdempotencyRecord, LoginNonce
    from invoke_centre.registrar import Registrar
    from invoke_centre.registry import utcnow

    r = Registrar(Settings(db_uri=f"sqlite:///{tmp_path / 'h.db'}"))
    Base.metadata.create_all(r.engine)
    old = utcnow() - timedelta(seconds=1)
    with r.sessions() as s:
        s.add(IdempotencyRecord(principal="u", key="old", name="n.a", body_digest="d",
                                state="done", created_at=old, expires_at=old))
        s.add(IdempotencyRecord(principal="u", key="new", name="n.a", body_digest="d",
                                state="done", created_at=old, expires_at=utcnow() +
                                timedelta(hours=24)))
        s.add(LoginNonce(nonce="n1", terminal_id="t", expires_at=old))
        s.commit()
    r.housekeeping()
    with r.sessions() as s:
        assert [x.key for x in s.query(IdempotencyRecord)] == ["new"]
        assert s.query(LoginNonce).count() == 0


def test_a_heartbeat_after_goodbye_does_not_bring_an_instance_back():
    clock = Clock()
    live = LiveView(clock)
    live.seen("weather", "w1", 1.0)
    live.gone("weather", "w1")
    live.seen("weather", "w1", 1.0)
    assert not live.is_live("weather")
    live.seen("weather", "w2", 1.0)  # a new process has a new id
    assert live.instances("weather") == ["w2"]
