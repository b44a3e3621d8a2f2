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
    """One transaction: repositories share its session; leaving without commit rolls back."""

    def __init__(self, session_factory: Callable[[], Session], repositories: dict[str, type]):
        self._session_factory = session_factory
        self._repositories = repositories
        self.session: Session | None = None

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
        uri = self.container.config["DB_URI"]
        self.engine = make_engine(uri)
        if self.migrations:
            upgrade(uri, self.migrations, engine=self.engine)
        elif self.metadata is not None:
            self.metadata.create_all(self.engine)
        self.session_factory = sessionmaker(bind=self.engine, expire_on_commit=False)

    def stop(self):
        self.engine.dispose()

    def kill(self):
        self.engine.dispose()

    def get_dependency(self, worker_ctx):
        return UnitOfWork(self.session_factory, self.repositories)
