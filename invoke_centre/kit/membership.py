"""Joining the mesh: declare named requests, announce them, keep the centre informed.

``@serves("weather.forecast", permission="weather:read", ...)`` on a method makes it
a nameko RPC entrypoint and records the named request it serves. ``Member()``
on the service class builds the manifest from those records and, following
``docs/wire-contract.md``, announces it on ``ics.registry`` once the service
consumes its RPC queue, sends a heartbeat every ``heartbeat_s``, answers every
``rollcall`` with a fresh announcement and says goodbye on a clean stop.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from logging import getLogger
from typing import Any, Callable, NamedTuple

import eventlet
import eventlet.event
from kombu import Connection, Exchange, Queue
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.extensions import DependencyProvider
from nameko.rpc import Rpc

from invoke_centre import wire
from invoke_centre.kit.errors import TYPED_ERRORS

_log = getLogger(__name__)

_ATTR = "__ics_requests__"


def serves(
    name: str,
    *,
    permission: str,
    sensitivity: str = "normal",
    timeout_ms: int = wire.DEFAULT_TIMEOUT_MS,
    mutating: bool = False,
    input_schema: dict[str, Any] | None = None,
    summary: str = "",
    expected_exceptions: tuple[type[Exception], ...] = (),
) -> Callable:
    """Declare that a method serves the named request ``name`` (and expose it over RPC).

    Typed errors (ValidationError, NotFound …) are expected exceptions: a
    caller's mistake is answered, not logged as a crash.
    """

    def decorate(fn):
        first = not hasattr(fn, _ATTR)
        if first:
            setattr(fn, _ATTR, [])
        getattr(fn, _ATTR).append(
            {
                "name": name,
                "method": fn.__name__,
                "permission": permission,
                "sensitivity": sensitivity,
                "timeout_ms": timeout_ms,
                "mutating": mutating,
                "input_schema": input_schema or {"type": "object"},
                "summary": summary or (fn.__doc__ or "").strip().split("\n")[0],
            }
        )
        if first:
            fn = _MemberRpc.decorator(
                expected_exceptions=TYPED_ERRORS + tuple(expected_exceptions))(fn)
        return fn

    return decorate


class _MemberRpc(Rpc):
    """nameko's RPC entrypoint that, when the service stops, first says goodbye and keeps
    consuming a moment longer: calls sent before the gateways heard the goodbye are still
    answered, instead of waiting in the queue for their deadline."""

    def stop(self):
        for dep in self.container.dependencies:
            if isinstance(dep, Member):
                dep.say_goodbye()
        super().stop()


def requests_of(service_cls: type) -> list[dict[str, Any]]:
    """The named requests a service class declares with ``@serves``."""
    found = []
    for attr in sorted(dir(service_cls)):
        found.extend(getattr(getattr(service_cls, attr, None), _ATTR, ()))
    return found


def build_manifest(service_cls: type, *, version: str, instance: str, heartbeat_s: float) -> dict:
    manifest = {
        "service": service_cls.name,
        "version": version,
        "instance": instance,
        "heartbeat_s": heartbeat_s,
        "requests": requests_of(service_cls),
    }
    return wire.check_manifest(manifest)


class MemberInfo(NamedTuple):
    """What a worker sees of its service's membership (``self.member``)."""

    service: str
    instance: str
    version: str


class Member(DependencyProvider):
    """Membership of the mesh: announcement, heartbeats, rollcall answers, goodbye.

    Config: ``AMQP_URI``; ``ICS_HEARTBEAT_S`` (default 5) overrides the
    heartbeat period and ``ICS_SERVICE_VERSION`` overrides ``version`` — each
    read from the service config, else from the environment.
    """

    def __init__(self, version: str = "0", heartbeat_s: float | None = None):
        self.version = version
        self.heartbeat_s = heartbeat_s
        self.manifest: dict | None = None
        self.instance: str | None = None
        self._goodbye: eventlet.event.Event | None = None
        self._stopping = False
        self._connection: Connection | None = None

    def setup(self):
        config = self.container.config
        self.amqp_uri = config[AMQP_URI_CONFIG_KEY]
        heartbeat = (config.get("ICS_HEARTBEAT_S") or os.environ.get("ICS_HEARTBEAT_S")
                     or self.heartbeat_s or wire.DEFAULT_HEARTBEAT_S)
        version = str(config.get("ICS_SERVICE_VERSION") or os.environ.get("ICS_SERVICE_VERSION")
                      or self.version)
        name = self.container.service_name
        instance = f"{name}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.manifest = build_manifest(
            self.container.service_cls,
            version=version,
            instance=instance,
            heartbeat_s=float(heartbeat),
        )
        self.instance = instance
        self.goodbye_grace_s = float(config.get("ICS_GOODBYE_GRACE_S")
                                     or os.environ.get("ICS_GOODBYE_GRACE_S") or 0.2)
        self.exchange = Exchange(wire.REGISTRY_EXCHANGE, type="topic", durable=True)

    def get_dependency(self, worker_ctx) -> "MemberInfo":
        return MemberInfo(self.manifest["service"], self.instance, self.manifest["version"])

    def start(self):
        self._stopping = False
        self._goodbye = None
        self.container.spawn_managed_thread(self._run)

    def say_goodbye(self) -> None:
        """Tell the mesh this instance leaves, then wait ``ICS_GOODBYE_GRACE_S`` (0.2 s) for
        the gateways to stop routing to it. Once per stop, whoever asks first."""
        if self._goodbye is not None:
            self._goodbye.wait()
            return
        self._goodbye = eventlet.event.Event()
        self._stopping = True  # no heartbeat or rollcall answer may follow the goodbye
        try:
            with Connection(self.amqp_uri) as conn:
                self._publish(conn, wire.GOODBYE, {"service": self.manifest["service"],
                                                   "instance": self.instance})
            eventlet.sleep(self.goodbye_grace_s)
        except Exception:  # the broker may be gone; heartbeats stopping says the same
            _log.warning("could not say goodbye", exc_info=True)
        finally:
            self._goodbye.send(True)

    def stop(self):
        self.say_goodbye()  # already said when the RPC entrypoints stopped

    def kill(self):
        self._stopping = True

    def _wait_until_consuming(self):
        """Announce only once the RPC queue is consumed, so no call finds it missing."""
        for ext in self.container.extensions:
            ready = getattr(ext, "_consumers_ready", None)
            if ready is not None:
                with eventlet.Timeout(30, False):
                    ready.wait()

    def _publish(self, conn: Connection, kind: str, body: dict) -> None:
        conn.Producer().publish(
            json.dumps(body).encode(),
            exchange=self.exchange,
            routing_key=f"{kind}.{self.manifest['service']}",
            content_type="application/json",
            content_encoding="utf-8",
            declare=[self.exchange],
            retry=True,
            retry_policy={"max_retries": 3},
        )

    def _run(self):
        self._wait_until_consuming()
        beat = {"service": self.manifest["service"], "instance": self.instance,
                "heartbeat_s": self.manifest["heartbeat_s"]}
        while not self._stopping:
            try:
                with Connection(self.amqp_uri, heartbeat=0) as conn:
                    queue = Queue(
                        f"ics.rollcall.{self.instance}",
                        exchange=self.exchange,
                        routing_key=wire.ROLLCALL,
                        exclusive=True,
                        auto_delete=True,
                    )
                    self._publish(conn, wire.ANNOUNCE, self.manifest)
                    _log.info("announced %s as %s", self.manifest["service"], self.instance)

                    def on_rollcall(body, message):
                        message.ack()
                        self._publish(conn, wire.ANNOUNCE, self.manifest)

                    accept = ["json", "text/plain"]
                    with conn.Consumer(queue, callbacks=[on_rollcall], accept=accept):
                        self._beat_loop(conn, beat)
            except Exception:
                if self._stopping:
                    return
                _log.warning("registry connection lost; reconnecting", exc_info=True)
                eventlet.sleep(1)

    def _beat_loop(self, conn: Connection, beat: dict) -> None:
        period = self.manifest["heartbeat_s"]
        next_beat = eventlet.hubs.get_hub().clock() + period
        while not self._stopping:
            now = eventlet.hubs.get_hub().clock()
            if now >= next_beat:
                self._publish(conn, wire.HEARTBEAT, beat)
                next_beat = now + period
            try:
                conn.drain_events(timeout=max(0.05, min(0.5, next_beat - now)))
            except socket.timeout:
                pass
