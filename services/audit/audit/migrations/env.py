"""Alembic environment of the audit database (run by ``invoke_centre.kit.upgrade`` at start).

Its own version table, so the audit tables may share a database with another part."""

from audit.models import Base

from invoke_centre.kit import run_migrations

run_migrations(Base.metadata, version_table="audit_alembic_version")
