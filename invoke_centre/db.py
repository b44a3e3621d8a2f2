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


def run_migrations(target_metadata: Any, *, version_table: str = "alembic_version") -> None:
    """The body of every Alembic ``env.py`` in the mesh: on the connection ``upgrade`` hands
    over, else on ``sqlalchemy.url``; batch mode so SQLite can alter tables. A service gives
    its own ``version_table`` so its tables may share a database with another part's."""
    from alembic import context
    from sqlalchemy import engine_from_config, pool

    config = context.config

    def migrate(connection) -> None:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=True, version_table=version_table)
        with context.begin_transaction():
            context.run_migrations()

    connection = config.attributes.get("connection")
    if connection is not None:
        migrate(connection)
        return
    engine = engine_from_config(config.get_section(config.config_ini_section, {}),
                                prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as conn:
        migrate(conn)
