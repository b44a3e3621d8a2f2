"""Alembic environment of the audit database (run by ``invoke_centre.kit.upgrade`` at start).

Its own version table, so the audit tables may share a database with another part."""

from alembic import context
from audit.models import Base
from sqlalchemy import engine_from_config, pool

config = context.config
target_metadata = Base.metadata
VERSION_TABLE = "audit_alembic_version"


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=True, version_table=VERSION_TABLE)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(config.get_section(config.config_ini_section, {}),
                                prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True,
                          version_table=VERSION_TABLE)
        with context.begin_transaction():
            context.run_migrations()


run()
