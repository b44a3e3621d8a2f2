"""What the ingest loop does with a batch, without a broker: store once, retry, dead-letter."""

import json
import sys
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "services" / "audit"))

from audit import chain
from audit.ingest import (
    ATTEMPTS_HEADER,
    BatchHandler,
    IngestSettings,
    IngestStats,
    StoreUnavailable,
    topology,
)
from audit.repository import REPOSITORIES

from invoke_centre.kit import UnitOfWork, make_engine, upgrade
from invoke_centre.kit.audit import audit_event

MIGRATIONS = Path(__file__).resolve().parents[3] / "services" / "audit" / "audit" / "migrations"
KEY = b"k"


class FakeMessage:
    def __init__(self, body, headers=None):
        self.body = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.headers = headers or {}
        self.properties = {"content_type": "application/json"}
        self.delivery_info = {"routing_key": "login.centre"}


class FakeOutbox:
    def __init__(self):
        self.retried, self.dead_lettered = [], []

    def retry(self, message, attempts, reason):
        self.retried.append((message, attempts, reason))

    def dead(self, message, attempts, reason):
        self.dead_lettered.append((message, attempts, reason))


@pytest.fixture
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'audit.db'}"
    engine = make_engine(uri)
    upgrade(uri, MIGRATIONS, engine=engine)
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    policy = chain.PolicyCache()

    def append(entries):
        with UnitOfWork(sessions, REPOSITORIES) as uow:
            return chain.append(uow, entries, key=KEY, policy=policy)

    def count():
        with UnitOfWork(sessions, REPOSITORIES) as uow:
            return uow.records.count()

    append.count = count
    yield append
    engine.dispose()


def handler(store, outbox, **kw):
    kw.setdefault("reachable", lambda: True)
    return BatchHandler(store=store, outbox=outbox, max_attempts=3, stats=IngestStats(), **kw)


def test_a_batch_is_stored_once_even_when_delivered_again(store):
    events = [audit_event("login", source="centre") for _ in range(5)]
    h = handler(store, FakeOutbox())
    h.handle([FakeMessage(e) for e in events])
    h.handle([FakeMessage(e) for e in events[:3]] + [FakeMessage(events[0])])
    assert store.count() == 5
    assert (h.stats.stored, h.stats.duplicates, h.stats.received) == (5, 4, 9)


def test_optional_kinds_the_policy_does_not_keep_are_dropped_not_failed(store):
    outbox = FakeOutbox()
    h = handler(store, outbox)
    h.handle([FakeMessage(audit_event("data_read", source="policy")),
              FakeMessage(audit_event("sensitive_read", source="customer"))])
    assert store.count() == 1 and h.stats.dropped == 1 and not outbox.dead_lettered


def test_what_is_not_an_audit_event_is_dead_lettered_with_the_reason(store):
    outbox = FakeOutbox()
    h = handler(store, outbox)
    good = audit_event("login", source="centre")
    h.handle([FakeMessage(b"not json"), FakeMessage(good),
              FakeMessage({**good, "event_id": "x y"})])
    assert store.count() == 1
    assert [d[2].split(":")[0] for d in outbox.dead_lettered] == ["invalid", "invalid"]
    assert "not JSON" in outbox.dead_lettered[0][2] and "event_id" in outbox.dead_lettered[1][2]


def test_an_event_the_database_refuses_is_retried_then_dead_lettered(store):
    outbox = FakeOutbox()
    poison = audit_event("login", source="centre")

    def picky(entries):
        if any(e.event_id == poison["event_id"] for e in entries):
            raise ValueError("refused")
        return store(entries)

    h = handler(picky, outbox)
    others = [audit_event("login", source="centre") for _ in range(3)]
    h.handle([FakeMessage(others[0]), FakeMessage(poison)] +
             [FakeMessage(e) for e in others[1:]])
    # the rest of the batch is stored one by one; the poison goes round again
    assert store.count() == 3
    assert [(a, r) for _, a, r in outbox.retried] == [(1, "ValueError: refused")]
    h.handle([FakeMessage(poison, {ATTEMPTS_HEADER: 1})])
    h.handle([FakeMessage(poison, {ATTEMPTS_HEADER: 2})])
    assert [a for _, a, _ in outbox.retried] == [1, 2]
    assert [a for _, a, _ in outbox.dead_lettered] == [3]
    assert (h.stats.retried, h.stats.dead_lettered) == (2, 1)


def test_when_the_database_is_down_nothing_is_counted_against_the_events(store):
    outbox = FakeOutbox()

    def down(entries):
        raise OSError("connection refused")

    h = handler(down, outbox, reachable=lambda: False)
    with pytest.raises(StoreUnavailable):
        h.handle([FakeMessage(audit_event("login", source="centre"))])
    assert not outbox.retried and not outbox.dead_lettered


def test_the_topology_dead_letters_into_a_queue_the_bus_view_counts():
    from invoke_centre.busview import is_dead_letter_queue

    _, queues = topology(IngestSettings())
    by_name = {q.name: q for q in queues}
    ingest = by_name["audit.ingest"]
    assert ingest.routing_key == "#" and ingest.exchange.name == "ics.audit"
    assert ingest.queue_arguments["x-dead-letter-exchange"] == "audit.dead"
    assert by_name["audit.ingest.retry"].queue_arguments["x-dead-letter-routing-key"] \
        == "audit.ingest"
    assert is_dead_letter_queue("audit.ingest.dlq") and by_name["audit.ingest.dlq"].durable
    quorum = topology(IngestSettings(queue_type="quorum"))[1]
    assert all(q.queue_arguments["x-queue-type"] == "quorum" for q in quorum)


def test_settings_come_from_config_strings():
    s = IngestSettings.from_config({"AUDIT_INGEST": "false", "AUDIT_BATCH": "200",
                                    "AUDIT_BATCH_WAIT_MS": "20", "AUDIT_MAX_ATTEMPTS": "7"})
    assert (s.enabled, s.batch, s.batch_wait_s, s.max_attempts) == (False, 200, 0.02, 7)
    assert IngestSettings.from_config({}).enabled is True
