"""Collecting audit events over the real bus: at least once, duplicates stored once.

The audit service runs as in production (``nameko run``) on a vhost of the test's own and on
SQLite or PostgreSQL; it is killed with SIGKILL in the middle of a stream and started again.
Nothing may be lost, nothing stored twice, and the chain must still verify.
"""

import signal
import sys
import threading
from pathlib import Path

import pika
import pytest
from audit_kit import KEY, Publisher, start_audit
from meshkit import wait_for
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "services" / "audit"))

from audit import chain
from audit.checkpoints import CheckpointLog, load_or_create_key
from audit.ingest import IngestSettings, KombuOutbox, declare

from invoke_centre.kit import make_engine
from invoke_centre.kit.audit import audit_event

pytestmark = pytest.mark.integration


def stored(engine):
    with engine.connect() as c:
        total, distinct = c.execute(text(
            "SELECT count(*), count(DISTINCT event_id) FROM audit_records")).one()
    return int(total), int(distinct)


def test_killed_mid_stream_nothing_is_lost_and_nothing_is_stored_twice(
        mesh_factory, databases, db_kind, tmp_path):
    db = databases.new(db_kind, "audit")
    mesh = mesh_factory()
    start_audit(mesh, db, tmp_path, AUDIT_BATCH="200")
    engine = make_engine(db)
    n = 4000
    events = [audit_event("login", source="centre", who={"user_id": f"agent-{i % 50}"},
                          where={"request_id": f"r-{i}"}, params={"mobile": "13812345678"})
              for i in range(n)]
    pub = Publisher(mesh.amqp_uri)
    # duplicates on the wire from the start: the same event published twice
    for e in events[:100]:
        pub.publish(e)

    def publish_rest():
        p = Publisher(mesh.amqp_uri)
        for e in events[100:]:
            p.publish(e)
        p.close()

    sender = threading.Thread(target=publish_rest)
    sender.start()
    wait_for(lambda: stored(engine)[0] >= 600, 60, 0.01, "some events to be stored")
    mesh.stop("audit", sig=signal.SIGKILL)
    at_kill = stored(engine)[0]
    sender.join(120)
    assert at_kill < n, "the stream should still have been running when the service died"

    start_audit(mesh, db, tmp_path, AUDIT_BATCH="200")
    for e in events[:100]:     # and once more after the restart
        pub.publish(e)
    pub.close()
    wait_for(lambda: stored(engine) == (n, n), 90, 0.1, f"{n} events after the restart")
    # the repeated publishes came in last: once they are through, nothing more arrives
    wait_for(lambda: _queue_empty(mesh), 30, 0.2, "the queue to drain")
    assert stored(engine) == (n, n)
    with engine.connect() as c:
        seqs = [r[0] for r in c.execute(text("SELECT seq FROM audit_records ORDER BY seq"))]
    assert seqs == list(range(1, n + 1))
    mesh.stop("audit")      # a clean stop writes a last checkpoint
    log = CheckpointLog(tmp_path / "checkpoints.jsonl",
                        load_or_create_key(tmp_path / "signing.key"))
    report = chain.verify(engine, key=KEY.encode(), checkpoints=log)
    assert report["ok"] and report["records"] == n and report["last_checkpoint"] == n, report
    engine.dispose()


def _queue_empty(mesh):
    conn = pika.BlockingConnection(pika.URLParameters(mesh.amqp_uri))
    try:
        q = conn.channel().queue_declare("audit.ingest", passive=True)
        return q.method.message_count == 0
    finally:
        conn.close()


class _Received:
    """What the loop holds of a delivered message."""

    def __init__(self, body, headers=None):
        self.body, self.headers = body, headers or {}
        self.properties = {"content_type": "application/json", "content_encoding": "utf-8",
                           "message_id": "m-1"}
        self.delivery_info = {"routing_key": "login.centre"}


def test_a_retried_event_comes_back_and_a_dead_one_waits_in_the_dlq(vhost):
    """The retry queue hands a message back to audit.ingest after its delay, with its count;
    the dead-letter exchange puts one in audit.ingest.dlq with its reason."""
    from kombu import Connection

    with Connection(vhost) as conn:
        declare(conn.channel(), IngestSettings())
    outbox = KombuOutbox(vhost, retry_delay_s=0.2)
    outbox.retry(_Received(b'{"event_id": "e-1"}'), 1, "ValueError: refused")
    outbox.dead(_Received(b"not json"), 1, "invalid: not JSON")
    outbox.close()

    conn = pika.BlockingConnection(pika.URLParameters(vhost))
    ch = conn.channel()

    def get(queue):
        method, props, body = ch.basic_get(queue, auto_ack=True)
        return method and (body, props.headers, props.message_id)

    body, headers, message_id = wait_for(lambda: get("audit.ingest"), 10, 0.05, "the retry")
    assert body == b'{"event_id": "e-1"}' and message_id == "m-1"
    assert headers["x-audit-attempts"] == 1 and headers["x-audit-error"] == "ValueError: refused"
    body, headers, _ = get("audit.ingest.dlq")
    assert body == b"not json" and headers["x-audit-error"] == "invalid: not JSON"
    assert headers["x-audit-routing-key"] == "login.centre"
    conn.close()
