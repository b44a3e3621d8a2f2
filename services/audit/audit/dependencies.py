"""Dependencies of the audit service beyond the kit's.

``Trail``: the chain key, the checkpoint log and the ingest loop of one audit instance. Workers
get a ``TrailAccess``: the key to append with, ``appended()`` to tell the checkpoint log about a
commit, ``verify()`` (run in a native thread so that a long walk does not stall the instance's
heartbeats and ingest) and the ingest figures.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from logging import getLogger
from pathlib import Path
from typing import Any

import eventlet
from eventlet import tpool
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.extensions import DependencyProvider
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from audit import chain
from audit.checkpoints import CheckpointLog, load_or_create_key
from audit.ingest import (
    BatchHandler,
    IngestLoop,
    IngestSettings,
    IngestStats,
    KombuOutbox,
)
from audit.repository import REPOSITORIES
from invoke_centre.kit import UnitOfWork, make_engine

_log = getLogger(__name__)

DEV_CHAIN_KEY = "dev-only-audit-chain-key-change-me"


@dataclass(frozen=True)
class TrailSettings:
    chain_key: bytes
    checkpoints: Path
    signing_key: Path
    checkpoint_every: int
    checkpoint_s: float

    @classmethod
    def from_config(cls, config: dict) -> TrailSettings:
        key = str(config.get("AUDIT_CHAIN_KEY") or os.environ.get("AUDIT_CHAIN_KEY")
                  or DEV_CHAIN_KEY)
        if key == DEV_CHAIN_KEY:
            _log.warning("AUDIT_CHAIN_KEY is the development default: set a secret of your own "
                         "in production (anyone with the key can recompute the chain)")
        return cls(chain_key=key.encode(),
                   checkpoints=Path(str(config.get("AUDIT_CHECKPOINTS")
                                        or "var/audit-checkpoints.jsonl")),
                   signing_key=Path(str(config.get("AUDIT_SIGNING_KEY")
                                        or "var/audit-signing.key")),
                   checkpoint_every=int(config.get("AUDIT_CHECKPOINT_EVERY") or 1000),
                   checkpoint_s=float(config.get("AUDIT_CHECKPOINT_S") or 1.0))


def _offload(fn, *args, **kwargs):
    """Run ``fn`` in a native thread when eventlet rules the process, else here."""
    if eventlet.patcher.is_monkey_patched("thread"):
        return tpool.execute(fn, *args, **kwargs)
    return fn(*args, **kwargs)


class TrailAccess:
    def __init__(self, trail: Trail) -> None:
        self._trail = trail
        self.key = trail.settings.chain_key

    def appended(self, result: chain.Appended) -> None:
        self._trail.appended(result)

    def verify(self, since_seq: int | None = None) -> dict[str, Any]:
        t = self._trail
        return _offload(chain.verify, t.engine, key=t.settings.chain_key,
                        checkpoints=t.checkpoints, since_seq=since_seq)

    def ingest_stats(self) -> dict[str, Any] | None:
        t = self._trail
        if t.loop is None:
            return None
        return {**t.stats.as_dict(), "consuming": t.loop.consuming}


class Trail(DependencyProvider):
    """``trail = Trail()``: config ``DB_URI``, ``AUDIT_*`` (see ``config.yaml``)."""

    def setup(self) -> None:
        config = self.container.config
        self.settings = TrailSettings.from_config(config)
        self.ingest_settings = IngestSettings.from_config(config)
        self.amqp_uri = config[AMQP_URI_CONFIG_KEY]
        self.checkpoints = CheckpointLog(
            self.settings.checkpoints, load_or_create_key(self.settings.signing_key),
            every=self.settings.checkpoint_every, period_s=self.settings.checkpoint_s)
        self.engine = make_engine(config["DB_URI"])
        self.sessions = sessionmaker(bind=self.engine, expire_on_commit=False)
        self.stats = IngestStats()
        self.policy = chain.PolicyCache()
        self.loop: IngestLoop | None = None
        self._thread = None

    def start(self) -> None:
        if not self.ingest_settings.enabled:
            _log.info("AUDIT_INGEST is off: this instance serves named requests only")
            return
        outbox = KombuOutbox(self.amqp_uri, self.ingest_settings.retry_delay_s)
        handler = BatchHandler(store=self._store, reachable=self._reachable, outbox=outbox,
                               max_attempts=self.ingest_settings.max_attempts,
                               stats=self.stats, on_appended=self.appended)
        self.loop = IngestLoop(self.amqp_uri, self.ingest_settings, handler, outbox,
                               tick=self.checkpoints.tick)
        self._thread = self.container.spawn_managed_thread(self.loop.run)

    def stop(self) -> None:
        if self.loop is not None:
            self.loop.stop()
            if self._thread is not None:
                with eventlet.Timeout(10, False):
                    self._thread.wait()
        self.checkpoints.flush()
        self.engine.dispose()

    def kill(self) -> None:
        if self.loop is not None:
            self.loop.stop()
        self.engine.dispose()

    def get_dependency(self, worker_ctx) -> TrailAccess:
        return TrailAccess(self)

    # --- for the ingest loop -------------------------------------------------------------
    def _store(self, entries) -> chain.Appended:
        with UnitOfWork(self.sessions, REPOSITORIES) as uow:
            return chain.append(uow, entries, key=self.settings.chain_key, policy=self.policy)

    def _reachable(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - any failure to answer means "not reachable"
            return False

    def appended(self, result: chain.Appended) -> None:
        if result.stored:
            self.checkpoints.note(result.head_seq, result.head_mac)
