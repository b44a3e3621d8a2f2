"""Collecting audit events off the bus: batches, at least once, retries, a dead-letter queue.

Topology (declared here, durable, idempotently on every start)::

    ics.audit (topic) --#--> audit.ingest ----(x-dead-letter-exchange)----+
                                  ^   |                                    v
          (per-message TTL, then  |   +--retry--> audit.ingest.retry    audit.dead (fanout)
           dead-lettered back) ---+                                        |
                                                                           v
                                                                   audit.ingest.dlq

The loop takes up to ``prefetch`` unacknowledged messages, appends a batch (``batch`` events or
whatever came within ``batch_wait_s``) in one transaction, then acknowledges the batch: a crash
before the commit loses nothing (RabbitMQ redelivers), a crash after it stores nothing twice
(``event_id`` is unique; duplicates are skipped). A message that is not an audit event goes
to ``audit.ingest.dlq`` at once, with the reason in the ``x-audit-error`` header. A batch the
database refuses is split, and an event that fails on its own is republished to
``audit.ingest.retry`` with ``x-audit-attempts`` one higher, to come back after
``retry_delay_s``; after ``max_attempts`` it is dead-lettered. When the database does not
answer at all, nothing is counted against the events: the loop keeps the batch (unacknowledged)
and tries again until the database is back.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from logging import getLogger
from typing import Any, Protocol

from kombu import Connection, Consumer, Exchange, Producer, Queue

from audit import domain
from invoke_centre import wire

_log = getLogger(__name__)

INGEST_QUEUE = "audit.ingest"
RETRY_QUEUE = "audit.ingest.retry"
DEAD_EXCHANGE = "audit.dead"
DEAD_QUEUE = "audit.ingest.dlq"
ATTEMPTS_HEADER = "x-audit-attempts"
ERROR_HEADER = "x-audit-error"


@dataclass(frozen=True)
class IngestSettings:
    enabled: bool = True
    batch: int = 500
    batch_wait_s: float = 0.05
    prefetch: int = 1000
    max_attempts: int = 5
    retry_delay_s: float = 1.0
    queue_type: str = "classic"       # "quorum" on a RabbitMQ cluster
    heartbeat_s: int = 20

    @classmethod
    def from_config(cls, config: dict) -> IngestSettings:
        def get(key, default, kind):
            value = config.get(key)
            return default if value in (None, "") else kind(value)

        def flag(value) -> bool:
            return str(value).strip().lower() not in ("0", "false", "no", "off")

        return cls(enabled=get("AUDIT_INGEST", True, flag),
                   batch=max(1, get("AUDIT_BATCH", 500, int)),
                   batch_wait_s=get("AUDIT_BATCH_WAIT_MS", 50, float) / 1000,
                   prefetch=max(1, get("AUDIT_PREFETCH", 1000, int)),
                   max_attempts=max(1, get("AUDIT_MAX_ATTEMPTS", 5, int)),
                   retry_delay_s=get("AUDIT_RETRY_DELAY_MS", 1000, float) / 1000,
                   queue_type=get("AUDIT_QUEUE_TYPE", "classic", str))


def topology(settings: IngestSettings) -> tuple[list[Exchange], list[Queue]]:
    audit = Exchange(wire.AUDIT_EXCHANGE, type="topic", durable=True)
    dead = Exchange(DEAD_EXCHANGE, type="fanout", durable=True)
    typed = {"x-queue-type": settings.queue_type} if settings.queue_type != "classic" else {}
    ingest = Queue(INGEST_QUEUE, exchange=audit, routing_key="#", durable=True,
                   queue_arguments={"x-dead-letter-exchange": DEAD_EXCHANGE, **typed})
    retry = Queue(RETRY_QUEUE, durable=True,
                  queue_arguments={"x-dead-letter-exchange": "",
                                   "x-dead-letter-routing-key": INGEST_QUEUE, **typed})
    dlq = Queue(DEAD_QUEUE, exchange=dead, routing_key="", durable=True,
                queue_arguments=dict(typed))
    return [audit, dead], [ingest, retry, dlq]


def declare(channel, settings: IngestSettings) -> Queue:
    """Declare the exchanges and queues (idempotent); the ingest queue, bound to ``channel``."""
    exchanges, queues = topology(settings)
    for x in exchanges:
        x(channel).declare()
    bound = [q(channel) for q in queues]
    for q in bound:
        q.declare()
    return bound[0]


class Message(Protocol):
    body: bytes
    headers: dict
    properties: dict
    delivery_info: dict

    def ack(self, multiple: bool = False) -> None: ...


class Outbox(Protocol):
    def retry(self, message: Message, attempts: int, reason: str) -> None: ...
    def dead(self, message: Message, attempts: int, reason: str) -> None: ...


class StoreUnavailable(Exception):
    """The database does not answer: keep the batch and try again later."""


@dataclass
class IngestStats:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    dropped: int = 0
    retried: int = 0
    dead_lettered: int = 0
    batches: int = 0
    last_error: str | None = None
    head_seq: int = 0
    since: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "since"}


def attempts_of(message: Message) -> int:
    try:
        return int((message.headers or {}).get(ATTEMPTS_HEADER) or 0)
    except (TypeError, ValueError):
        return 0


class BatchHandler:
    """What happens to one batch of messages, broker and database given as callables."""

    def __init__(self, *, store: Callable[[list[domain.Entry]], Any],
                 reachable: Callable[[], bool], outbox: Outbox, max_attempts: int,
                 stats: IngestStats, on_appended: Callable[[Any], None] = lambda r: None):
        self.store, self.reachable, self.outbox = store, reachable, outbox
        self.max_attempts, self.stats, self.on_appended = max_attempts, stats, on_appended

    def handle(self, messages: list[Message]) -> None:
        """Store, retry or dead-letter every message; StoreUnavailable leaves them all as
        they were (none acknowledged, none republished)."""
        parsed: list[tuple[Message, domain.Entry]] = []
        invalid: list[tuple[Message, str]] = []
        for m in messages:
            try:
                parsed.append((m, domain.decode_event(m.body)))
            except domain.InvalidEvent as exc:
                invalid.append((m, str(exc)))
        if parsed:
            try:
                self._stored(self.store([e for _, e in parsed]))
            except Exception as exc:
                if not self.reachable():
                    raise StoreUnavailable(str(exc)) from exc
                _log.warning("a batch of %d failed (%s); storing one by one", len(parsed), exc)
                self._one_by_one(parsed)
        for m, reason in invalid:
            _log.warning("dead-lettering a message that is not an audit event: %s", reason)
            self.outbox.dead(m, attempts_of(m) + 1, f"invalid: {reason}")
            self.stats.dead_lettered += 1
        self.stats.received += len(messages)
        self.stats.batches += 1

    def _stored(self, result) -> None:
        self.stats.stored += result.stored
        self.stats.duplicates += result.duplicates
        self.stats.dropped += result.dropped
        self.stats.head_seq = result.head_seq
        self.on_appended(result)

    def _one_by_one(self, parsed: list[tuple[Message, domain.Entry]]) -> None:
        for m, e in parsed:
            try:
                self._stored(self.store([e]))
            except Exception as exc:
                if not self.reachable():
                    raise StoreUnavailable(str(exc)) from exc
                attempts = attempts_of(m) + 1
                reason = f"{type(exc).__name__}: {exc}"[:500]
                self.stats.last_error = reason
                if attempts >= self.max_attempts:
                    _log.error("dead-lettering event %s after %d attempts: %s", e.event_id,
                               attempts, reason)
                    self.outbox.dead(m, attempts, reason)
                    self.stats.dead_lettered += 1
                else:
                    _log.warning("event %s failed (attempt %d of %d), retrying: %s",
                                 e.event_id, attempts, self.max_attempts, reason)
                    self.outbox.retry(m, attempts, reason)
                    self.stats.retried += 1


class KombuOutbox:
    """Republishes through a connection of its own, with publisher confirms."""

    def __init__(self, amqp_uri: str, retry_delay_s: float) -> None:
        self.amqp_uri, self.retry_delay_s = amqp_uri, retry_delay_s
        self._conn: Connection | None = None

    def _producer(self) -> Producer:
        if self._conn is None:
            self._conn = Connection(self.amqp_uri, transport_options={"confirm_publish": True})
        return Producer(self._conn.default_channel)

    def _publish(self, message: Message, *, exchange: str, routing_key: str, attempts: int,
                 reason: str, expiration: float | None = None) -> None:
        props = message.properties or {}
        headers = {**(message.headers or {}), ATTEMPTS_HEADER: attempts, ERROR_HEADER: reason,
                   "x-audit-routing-key": (message.delivery_info or {}).get("routing_key")}
        try:
            self._producer().publish(
                message.body, exchange=exchange, routing_key=routing_key, headers=headers,
                content_type=props.get("content_type") or "application/octet-stream",
                content_encoding=props.get("content_encoding") or "binary",
                message_id=props.get("message_id"), delivery_mode=2, expiration=expiration,
                retry=True, retry_policy={"max_retries": 3})
        except Exception:
            self.close()
            raise

    def retry(self, message: Message, attempts: int, reason: str) -> None:
        self._publish(message, exchange="", routing_key=RETRY_QUEUE, attempts=attempts,
                      reason=reason, expiration=self.retry_delay_s)

    def dead(self, message: Message, attempts: int, reason: str) -> None:
        self._publish(message, exchange=DEAD_EXCHANGE, routing_key="", attempts=attempts,
                      reason=reason)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.release()
            finally:
                self._conn = None


class IngestLoop:
    """Consumes ``audit.ingest`` until ``stop()``; run it in a (green) thread of its own."""

    def __init__(self, amqp_uri: str, settings: IngestSettings, handler: BatchHandler,
                 outbox: KombuOutbox, *, tick: Callable[[], None] = lambda: None) -> None:
        self.amqp_uri, self.settings, self.handler = amqp_uri, settings, handler
        self.outbox, self.tick = outbox, tick
        self.stopping = False
        self.consuming = False
        self._batch: list = []
        self._first_at = 0.0
        self._logged = (0, 0, 0, 0, 0)
        self._log_at = time.monotonic()

    def stop(self) -> None:
        self.stopping = True

    def run(self) -> None:
        while not self.stopping:
            try:
                with Connection(self.amqp_uri, heartbeat=self.settings.heartbeat_s) as conn:
                    conn.connect()
                    channel = conn.channel()
                    queue = declare(channel, self.settings)
                    channel.basic_qos(0, self.settings.prefetch, False)
                    consumer = Consumer(channel, queues=[queue], on_message=self._received,
                                        no_ack=False, auto_declare=False)
                    consumer.consume()
                    self.consuming = True
                    _log.info("consuming %s (batch %d, prefetch %d)", INGEST_QUEUE,
                              self.settings.batch, self.settings.prefetch)
                    self._pump(conn)
                    with contextlib.suppress(*conn.recoverable_connection_errors,
                                             *conn.recoverable_channel_errors):
                        consumer.cancel()   # the channel closes next anyway
            except Exception as exc:  # noqa: BLE001 - whatever broke, reconnect and go on
                self.consuming = False
                self._batch = []      # unacknowledged: RabbitMQ delivers them again
                if self.stopping:
                    break
                _log.warning("audit ingest lost its connection (%s); reconnecting", exc)
                time.sleep(1)
        self.consuming = False
        self.outbox.close()

    def _received(self, message) -> None:
        if not self._batch:
            self._first_at = time.monotonic()
        self._batch.append(message)

    def _pump(self, conn: Connection) -> None:
        s = self.settings
        while not self.stopping:
            if self._batch:
                wait = max(0.001, self._first_at + s.batch_wait_s - time.monotonic())
            else:
                wait = 0.25
            try:
                conn.drain_events(timeout=wait)
            except TimeoutError:
                pass
            if self._batch and (len(self._batch) >= s.batch
                                or time.monotonic() - self._first_at >= s.batch_wait_s):
                self._flush(conn)
            if not self._batch:
                conn.heartbeat_check()
                self.tick()
                self._log_progress()
        if self._batch:
            self._flush(conn)

    def _flush(self, conn: Connection) -> None:
        batch, self._batch = self._batch, []
        delay = 0.5
        while True:
            try:
                self.handler.handle(batch)
                break
            except StoreUnavailable as exc:
                self.handler.stats.last_error = f"database unavailable: {exc}"[:500]
                _log.error("audit database unavailable (%s); holding %d events, retrying in "
                           "%.1f s", exc, len(batch), delay)
                if self.stopping:
                    return      # unacknowledged: delivered again after a restart
                end = time.monotonic() + delay
                while time.monotonic() < end and not self.stopping:
                    conn.heartbeat_check()
                    time.sleep(0.25)
                delay = min(delay * 2, 10.0)
        # everything in the batch is stored, skipped, retried or dead-lettered: one ack
        batch[-1].ack(multiple=True)

    def _log_progress(self) -> None:
        st = self.handler.stats
        now = time.monotonic()
        figures = (st.stored, st.duplicates, st.dropped, st.retried, st.dead_lettered)
        if figures != self._logged and now - self._log_at >= 30:
            _log.info("ingest: stored %d, duplicates %d, dropped by policy %d, retried %d, "
                      "dead-lettered %d", *figures)
            self._logged, self._log_at = figures, now
