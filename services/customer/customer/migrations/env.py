"""Alembic environment of the customer database (called by the kit's ``Database`` at start).

Its own version table, so the customer database may share a schema with another one."""

from customer.models import metadata

from invoke_centre.kit import run_migrations

run_migrations(metadata, version_table="customer_alembic_version")
