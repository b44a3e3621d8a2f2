"""The gateway's one AMQP connection: multiplexed RPC calls and the live view of instances.

Each gateway process owns one pika connection, driven by one I/O thread.
Request threads never touch it: they hand a publish to the I/O thread
(``add_callback_threadsafe``; the I/O thread takes every waiting publish at each wake-up)
and wait on their own slot, found again by the
reply's correlation id. The calls speak nameko's RPC wire protocol, so a nameko
service needs nothing special. The same connection listens to ``ics.registry``
so that the process knows, within milliseconds, which service has a live
instance — a call to a service with none fails fast instead of waiting in a
durable queue.
"""

from __future__ import annotations

import collections
import json
import os
import threading
import time
import uuid
from logging import getLogger
from typing import Any, Callable

import pika
import pika.exceptions

from invoke_centre import wire

_log = getLogger(__name__)


class BusError(Exception):
    """The call could not be made or answered."""


class Unavailable(BusError):
    """No consumer, no connection: nothing will answer (503)."""


class DeadlinePassed(BusError):
    """No answer before the deadline (504)."""


class _Slot:
    __slots__ = ("event", "reply", "error")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reply: dict | None = None
        self.error: BusError | None = None

    def fail(self, error: BusError) -> None:
        self.error = error
        self.event.set()


class LiveView:
    """Which instances of which services are alive, from announcements and heartbeats."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._expiry: dict[str, dict[str, float]] = {}
        self._gone: dict[str, float] = {}
        self._lock = threading.Lock()

    def seen(self, service: str, instance: str, heartbeat_s: float) -> None:
        with self._lock:
            if instance in self._gone:
                return  # a late heartbeat that crossed its goodbye: the instance is leaving
            self._expiry.setdefault(service, {})[instance] = (
                self._clock() + heartbeat_s * wire.MISSED_HEARTBEATS)

    def gone(self, service: str, instance: str) -> None:
        with self._lock:
            self._expiry.get(service, {}).pop(instance, None)
            now = self._clock()
            # instance ids are unique per process start: one that said goodbye never returns
            self._gone = {i: t for i, t in self._gone.items() if t > now}
            self._gone[instance] = now + 60

    def clear(self) -> None:
        with self._lock:
            self._expiry.clear()

    def instances(self, service: str) -> list[str]:
        now = self._clock()
        return [i for i, exp in self._expiry.get(service, {}).copy().items() if exp > now]

    def wait_live(self, service: str, until: float) -> bool:
        """Whether ``service`` is live, waiting until the monotonic time ``until`` at most."""
        while not self.is_live(service):
            if self._clock() >= until:
                return False
            time.sleep(0.005)
        return True

    def is_live(self, service: str) -> bool:
        now = self._clock()
        return any(exp > now for exp in self._expiry.get(service, {}).copy().values())

    def snapshot(self) -> dict[str, list[str]]:
        return {s: self.instances(s) for s in list(self._expiry)}


class Bus:
    """One connection per process; ``call`` is safe from any number of threads."""

    def __init__(self, amqp_uri: str, live: LiveView | None = None,
                 on_registry: Callable[[str, dict], None] | None = None) -> None:
        self.amqp_uri = amqp_uri
        self.live = live or LiveView()
        self.on_registry = on_registry
        self._pending: dict[str, _Slot] = {}
        self._reply_key = f"ics-gateway-{uuid.uuid4().hex}"
        self.instance = f"gateway-{os.getpid()}-{self._reply_key[-6:]}"
        self._conn: pika.BlockingConnection | None = None
        self._ch = None
        self._ready = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None
        self.connected_at = 0.0
        # publishes wait here for the I/O thread, which takes them all at each wake-up: under
        # load many calls share one wake instead of paying one each
        self._outbox: collections.deque[Callable[[], None]] = collections.deque()
        self._wake_pending = False
        self._outbox_lock = threading.Lock()

    # --- life cycle -------------------------------------------------------
    def start(self, wait_s: float = 5.0) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ics-bus", daemon=True)
            self._thread.start()
        self._ready.wait(wait_s)

    def close(self) -> None:
        self._closing = True
        conn = self._conn
        if conn is not None and conn.is_open:
            try:
                conn.add_callback_threadsafe(conn.close)
            except Exception:
                pass
        if self._thread is not None:
            self._thread.join(5)

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    def _run(self) -> None:
        while not self._closing:
            try:
                self._connect()
                while not self._closing and self._conn.is_open:
                    self._conn.process_data_events(time_limit=1)
            except Exception as exc:  # connection lost: fail what waits, then reconnect
                if self._closing:
                    break
                _log.warning("AMQP connection lost (%s); reconnecting", exc)
            self._ready.clear()
            self.live.clear()
            with self._outbox_lock:
                self._outbox.clear()
                self._wake_pending = False
            for corr in list(self._pending):
                slot = self._pending.pop(corr, None)
                if slot is not None:
                    slot.fail(Unavailable("message bus connection lost"))
            if not self._closing:
                time.sleep(0.5)

    def _connect(self) -> None:
        params = pika.URLParameters(self.amqp_uri)
        params.heartbeat = 30
        params.blocked_connection_timeout = 10
        conn = pika.BlockingConnection(params)
        ch = conn.channel()
        ch.exchange_declare(wire.RPC_EXCHANGE, "topic", durable=True)
        ch.exchange_declare(wire.REGISTRY_EXCHANGE, "topic", durable=True)
        ch.exchange_declare(wire.AUDIT_EXCHANGE, "topic", durable=True)
        reply_q = f"ics.reply.{self._reply_key}"
        ch.queue_declare(reply_q, exclusive=True, auto_delete=True)
        ch.queue_bind(reply_q, wire.RPC_EXCHANGE, routing_key=self._reply_key)
        ch.basic_consume(reply_q, self._on_reply, auto_ack=True)
        reg_q = f"ics.live.{self._reply_key}"
        ch.queue_declare(reg_q, exclusive=True, auto_delete=True)
        for kind in (wire.ANNOUNCE, wire.HEARTBEAT, wire.GOODBYE):
            ch.queue_bind(reg_q, wire.REGISTRY_EXCHANGE, routing_key=f"{kind}.*")
        ch.basic_consume(reg_q, self._on_registry, auto_ack=True)
        ch.add_on_return_callback(self._on_return)
        self._conn, self._ch = conn, ch
        self._rollcall()
        self.connected_at = time.monotonic()
        self._ready.set()
        _log.info("AMQP connected; reply key %s", self._reply_key)

    # --- callbacks on the I/O thread ------------------------------------
    def _on_reply(self, _ch, _method, props, body: bytes) -> None:
        slot = self._pending.pop(props.correlation_id, None)
        if slot is None:
            return  # its caller gave up at the deadline
        try:
            slot.reply = json.loads(body)
        except ValueError:
            slot.error = BusError("unreadable answer from the service")
        slot.event.set()

    def _on_return(self, _ch, method, props, body: bytes) -> None:
        if method.exchange == wire.AUDIT_EXCHANGE:
            _log.error("audit event not delivered, no queue takes it: %s", body.decode())
            return
        slot = self._pending.pop(props.correlation_id, None)
        if slot is not None:
            slot.fail(Unavailable("no queue for this service"))

    def _on_registry(self, _ch, method, _props, body: bytes) -> None:
        kind = method.routing_key.split(".", 1)[0]
        try:
            msg = json.loads(body)
            service, instance = msg["service"], msg["instance"]
        except (ValueError, KeyError, TypeError):
            _log.warning("ignored a malformed %s on %s", kind, wire.REGISTRY_EXCHANGE)
            return
        if kind == wire.GOODBYE:
            self.live.gone(service, instance)
        else:
            try:
                hb = float(msg.get("heartbeat_s") or wire.DEFAULT_HEARTBEAT_S)
            except (TypeError, ValueError):
                hb = wire.DEFAULT_HEARTBEAT_S
            self.live.seen(service, instance, hb)
        if self.on_registry is not None:
            self.on_registry(kind, msg)

    def _drain(self) -> None:
        with self._outbox_lock:
            jobs = list(self._outbox)
            self._outbox.clear()
            self._wake_pending = False
        for job in jobs:
            job()

    def _submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` on the I/O thread soon; raises when there is no connection."""
        conn = self._conn
        if not self._ready.is_set() or conn is None:
            raise Unavailable("message bus not connected")
        with self._outbox_lock:
            self._outbox.append(job)
            if self._wake_pending:
                return
            self._wake_pending = True
        try:
            conn.add_callback_threadsafe(self._drain)
        except Exception as exc:
            with self._outbox_lock:
                self._wake_pending = False
            raise Unavailable("message bus not connected") from exc

    # --- used by request threads ------------------------------------------
    def _rollcall(self) -> None:
        """Ask every live instance to announce itself (on the I/O thread, at connect)."""
        self._ch.basic_publish(
            wire.REGISTRY_EXCHANGE, wire.ROLLCALL, json.dumps({"from": self._reply_key}).encode(),
            pika.BasicProperties(content_type="application/json", content_encoding="utf-8"))

    def publish_audit(self, event: dict) -> None:
        """Hand an audit event to the bus (persistent); logged in full if the bus is down."""
        body = json.dumps(event, ensure_ascii=False).encode()

        def publish() -> None:
            try:
                self._ch.basic_publish(
                    wire.AUDIT_EXCHANGE, f"{event['type']}.{event['source']}", body,
                    pika.BasicProperties(content_type="application/json",
                                         content_encoding="utf-8", delivery_mode=2,
                                         message_id=event["event_id"]), mandatory=True)
            except Exception:
                _log.error("audit event not published: %s", body.decode())

        try:
            self._submit(publish)
        except Unavailable:
            _log.error("audit event not published (bus down): %s", body.decode())

    def call(self, service: str, method: str, params: Any, *, headers: dict[str, Any],
             timeout_s: float) -> Any:
        """Call ``service.method(params)``; return nameko's answer ``{"result", "error"}``."""
        ch = self._ch
        if not self._ready.is_set() or ch is None:
            raise Unavailable("message bus not connected")
        corr = uuid.uuid4().hex
        slot = _Slot()
        self._pending[corr] = slot
        body = json.dumps({"args": [params], "kwargs": {}}, ensure_ascii=False).encode()
        props = pika.BasicProperties(
            content_type="application/json",
            content_encoding="utf-8",
            reply_to=self._reply_key,
            correlation_id=corr,
            expiration=str(max(1, int(timeout_s * 1000))),
            headers=headers,
            delivery_mode=1,
        )
        key = f"{service}.{method}"

        def publish() -> None:
            try:
                ch.basic_publish(wire.RPC_EXCHANGE, key, body, props, mandatory=True)
            except Exception as exc:
                s = self._pending.pop(corr, None)
                if s is not None:
                    s.fail(Unavailable(f"publish failed: {exc}"))

        try:
            self._submit(publish)
        except Unavailable:
            self._pending.pop(corr, None)
            raise
        if not slot.event.wait(timeout_s):
            self._pending.pop(corr, None)
            raise DeadlinePassed(f"no answer from {service} within {timeout_s:.3f}s")
        if slot.error is not None:
            raise slot.error
        return slot.reply
