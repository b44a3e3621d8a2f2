"""The registrar: keeps the routing table in the centre's database from the services' own words.

It consumes ``announce`` / ``heartbeat`` / ``goodbye`` on ``ics.registry``
(one shared queue: several registrars are competing consumers), asks every
live instance for an announcement with a ``rollcall`` when it starts, stores
new manifests as new versions of the routing table, and records instances for
the admin views. Gateways route by what it stores; they track liveness
themselves from the same exchange.

Run: ``python -m invoke_centre.registrar``.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from pathlib import Path

import pika
from sqlalchemy.orm import sessionmaker

from invoke_centre import registry, wire
from invoke_centre.config import Settings
from invoke_centre.db import make_engine, upgrade

_log = logging.getLogger(__name__)

QUEUE = "ics.registrar"
HOUSEKEEPING_S = 60
MIGRATIONS = Path(__file__).parent / "migrations"


def prepare_database(uri: str, engine) -> None:
    """Migrate, and make sure the centre has its keys and terminal classes."""
    from invoke_centre import terminals, tokens

    upgrade(uri, MIGRATIONS, engine=engine)
    with sessionmaker(bind=engine)() as session:
        tokens.ensure_keys(session)
        terminals.ensure_default_classes(session)
        session.commit()


class Registrar:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings.db_uri)
        self.sessions = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._beats: dict[str, dict] = {}
        self._stopping = False
        self._conn: pika.BlockingConnection | None = None

    def handle(self, kind: str, body: bytes) -> None:
        try:
            msg = json.loads(body)
        except ValueError:
            _log.warning("ignored a %s that is not JSON", kind)
            return
        if not isinstance(msg, dict) or not isinstance(msg.get("service"), str) \
                or not isinstance(msg.get("instance"), str):
            _log.warning("ignored a %s without service and instance", kind)
            return
        if kind == wire.HEARTBEAT:
            self._beats[msg["instance"]] = msg  # written in batches, see flush()
            return
        with self.sessions() as session:
            if kind == wire.ANNOUNCE:
                try:
                    changed = registry.accept_manifest(session, msg, source="announced",
                                                       actor=msg["instance"])
                except wire.ManifestError as err:
                    _log.warning("refused the manifest of %s: %s", msg["instance"], err.fields)
                    return
                registry.seen_instance(session, msg, announce=True)
                if changed:
                    _log.info("%s %s announced new routes", msg["service"],
                              msg.get("version"))
            elif kind == wire.GOODBYE:
                registry.instance_gone(session, msg["instance"])
                _log.info("%s said goodbye", msg["instance"])
            session.commit()

    def housekeeping(self) -> None:
        """Forget what has expired: idempotency records, login nonces, replay ids."""
        from invoke_centre import login
        from invoke_centre.models import IdempotencyRecord

        with self.sessions() as session:
            session.query(IdempotencyRecord).filter(
                IdempotencyRecord.expires_at < registry.utcnow()).delete()
            login.purge(session)
            session.commit()

    def flush(self) -> None:
        beats, self._beats = self._beats, {}
        with self.sessions() as session:
            for beat in beats.values():
                registry.seen_instance(session, beat, announce=False)
            swept = registry.sweep_instances(session)
            session.commit()
        if swept:
            _log.info("%d instance(s) stopped beating", swept)

    def run(self) -> None:
        prepare_database(self.settings.db_uri, self.engine)
        while not self._stopping:
            try:
                self._consume()
            except pika.exceptions.AMQPError as exc:
                if self._stopping:
                    break
                _log.warning("AMQP connection lost (%s); reconnecting", exc)
                time.sleep(1)

    def _consume(self) -> None:
        params = pika.URLParameters(self.settings.amqp_uri)
        params.heartbeat = 30
        self._conn = conn = pika.BlockingConnection(params)
        ch = conn.channel()
        ch.exchange_declare(wire.REGISTRY_EXCHANGE, "topic", durable=True)
        ch.queue_declare(QUEUE, durable=True, arguments={"x-message-ttl": 60000})
        for kind in (wire.ANNOUNCE, wire.HEARTBEAT, wire.GOODBYE):
            ch.queue_bind(QUEUE, wire.REGISTRY_EXCHANGE, routing_key=f"{kind}.*")
        ch.basic_qos(prefetch_count=200)

        def on_message(channel, method, _props, body):
            try:
                self.handle(method.routing_key.split(".", 1)[0], body)
            except Exception:
                _log.exception("could not record a registry message; requeued once")
                channel.basic_nack(method.delivery_tag, requeue=not method.redelivered)
                return
            channel.basic_ack(method.delivery_tag)

        ch.basic_consume(QUEUE, on_message)
        ch.basic_publish(wire.REGISTRY_EXCHANGE, wire.ROLLCALL, b'{"from": "registrar"}',
                         pika.BasicProperties(content_type="application/json"))
        _log.info("registrar consuming %s; rollcall sent", QUEUE)
        next_housekeeping = 0.0
        while not self._stopping:
            conn.process_data_events(time_limit=1)
            self.flush()
            if time.monotonic() >= next_housekeeping:
                self.housekeeping()
                next_housekeeping = time.monotonic() + HOUSEKEEPING_S
        conn.close()

    def stop(self, *_args) -> None:
        self._stopping = True


def main() -> None:
    from invoke_centre.gateway import configure_logging

    configure_logging()  # ICS_LOG_LEVEL
    registrar = Registrar(Settings())
    signal.signal(signal.SIGTERM, registrar.stop)
    signal.signal(signal.SIGINT, registrar.stop)
    registrar.run()


if __name__ == "__main__":
    main()
