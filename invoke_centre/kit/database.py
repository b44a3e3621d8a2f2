"""A database dependency with unit-of-work semantics.

``Database`` hands each nameko worker a
``UnitOfWork`` factory: ``with self.uow as uow: ...; uow.commit()`` — anything
not committed is rolled back as a whole. Migrations are Alembic's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from nameko.extensions import DependencyProvider
from sqlalchemy.orm import Session, sessionmaker

from invoke_centre.db import make_engine, upgrade


class UnitOfWork:
    """One transaction: repositories share its session; leaving without commit rolls back.

    ``read()`` gives a unit of work for reading only: on PostgreSQL outside any transaction
    (autocommit), so a lookup is one round trip with no BEGIN or ROLLBACK around it.
    """

    def __init__(self, session_factory: Callable[[], Session], repositories: dict[str, type],
                 read_factory: Callable[[], Session] | None = None):
        self._session_factory = session_factory
        self._repositories = repositories
        self._read_factory = read_factory or session_factory
        self.session: Session | None = None

    def read(self) -> "UnitOfWork":
        return UnitOfWork(self._read_factory, self._repositories)

    def __enter__(self) -> "UnitOfWork":
        self.session = self._session_factory()
        for name, repo_cls in self._repositories.items():
            setattr(self, name, repo_cls(self.session))
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            self.session.rollback()
        finally:
            self.session.close()
            self.session = None

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()


class Database(DependencyProvider):
    """``uow = Database(migrations=..., repositories={"policies": PolicyRepository})``.

    Reads ``DB_URI`` from the service config; runs the Alembic migrations in
    ``migrations`` at start (or ``metadata.create_all`` when none are given).
    """

    def __init__(self, *, migrations: str | Path | None = None, metadata=None,
                 repositories: dict[str, type] | None = None):
        self.migrations = migrations
        self.metadata = metadata
        self.repositories = repositories or {}

    def setup(self):
        config = self.container.config
        uri = config["DB_URI"]
        sqlite = uri.startswith("sqlite")
        # as many pooled connections as the service has workers: SQLAlchemy's default of 5
        # would open and close a connection around most calls under load
        workers = int(config.get("max_workers") or 10)
        pool = {} if sqlite else {"pool_size": workers, "max_overflow": 2}
        self.engine = make_engine(uri, **pool)
        if self.migrations:
            upgrade(uri, self.migrations, engine=self.engine)
        elif self.metadata is not None:
            self.metadata.create_all(self.engine)
        self.session_factory = sessionmaker(bind=self.engine, expire_on_commit=False)
        # reads in autocommit without pre-ping: a lookup is one round trip; a connection that
        # died with the server fails one call and the pool renews it
        self.read_engine = None if sqlite else make_engine(
            uri, isolation_level="AUTOCOMMIT", pool_recycle=1800, pre_ping=False, **pool)
        self.read_factory = (sessionmaker(bind=self.read_engine, expire_on_commit=False)
                             if self.read_engine is not None else self.session_factory)

    def stop(self):
        self.engine.dispose()
        if self.read_engine is not None:
            self.read_engine.dispose()

    kill = stop

    def get_dependency(self, worker_ctx):
        return UnitOfWork(self.session_factory, self.repositories, self.read_factory)
