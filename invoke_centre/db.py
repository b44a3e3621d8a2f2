"""Database engines and migrations, the one place that knows SQLite and PostgreSQL.

SQLite is the one-machine default (WAL, a busy timeout, ``StaticPool`` for an
in-memory database); PostgreSQL is production. Used by the centre and, through
``invoke_centre.kit``, by every service.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool


def make_engine(uri: str, *, pre_ping: bool = True, **kwargs: Any) -> Engine:
    """An engine with the settings the mesh relies on, for SQLite or PostgreSQL."""
    if uri.startswith("sqlite"):
        memory = uri in ("sqlite://", "sqlite:///:memory:")
        if not memory:
            path = uri.split("///", 1)[-1]
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            uri,
            connect_args={"check_same_thread": False, "timeout": 30},
            poolclass=StaticPool if memory else None,
            **kwargs,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(uri, pool_pre_ping=pre_ping, **kwargs)


def upgrade(uri: str, script_location: str | Path, engine: Engine | None = None) -> None:
    """Bring the database at ``uri`` to the newest Alembic revision in ``script_location``."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("sqlalchemy.url", uri.replace("%", "%%"))
    if engine is not None:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    else:
        command.upgrade(cfg, "head")
