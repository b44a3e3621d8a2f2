"""The customer service's database dependency: the kit's, with a pool sized to the workers and a
read path outside transactions.
"""

from __future__ import annotations

from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from invoke_centre.kit import Database as KitDatabase
from invoke_centre.kit import UnitOfWork, make_engine, upgrade


class Work(UnitOfWork):
    """The kit's unit of work, plus ``read()``: one for reading only."""

    def __init__(self, session_factory, repositories, read_factory=None) -> None:
        super().__init__(session_factory, repositories)
        self._read_factory = read_factory or session_factory

    def read(self) -> UnitOfWork:
        """A unit of work outside any transaction (on PostgreSQL: autocommit, so a lookup is one
        round trip — no BEGIN before it, no ROLLBACK after). Nothing read this way is written."""
        return UnitOfWork(self._read_factory, self._repositories)


class Database(KitDatabase):
    """The kit's ``Database`` with a connection pool as large as the service's worker pool, and a
    second engine in autocommit, without pre-ping, for reads (``self.uow.read()``).

    SQLAlchemy's default pool keeps 5 connections; with nameko's 10 workers the other 5 are
    opened and closed around every call under load — a new PostgreSQL backend per lookup.
    """

    def setup(self) -> None:
        config = self.container.config
        uri = config["DB_URI"]
        workers = int(config.get("max_workers") or 10)
        sqlite = uri.startswith("sqlite")
        pool = {} if sqlite else {"pool_size": workers, "max_overflow": 2}
        self.engine = make_engine(uri, **pool)
        if self.migrations:
            upgrade(uri, self.migrations, engine=self.engine)
        self.session_factory = sessionmaker(bind=self.engine, expire_on_commit=False)
        # no pre-ping on the read path: it would double the round trips of a lookup; a
        # connection that died with the server fails one call and the pool is renewed
        self.read_engine = None if sqlite else create_engine(
            uri, isolation_level="AUTOCOMMIT", pool_recycle=1800, **pool)
        self.read_factory = (sessionmaker(bind=self.read_engine, expire_on_commit=False)
                             if self.read_engine is not None else self.session_factory)

    def stop(self) -> None:
        super().stop()
        if self.read_engine is not None:
            self.read_engine.dispose()

    kill = stop

    def get_dependency(self, worker_ctx) -> Work:
        return Work(self.session_factory, self.repositories, self.read_factory)
