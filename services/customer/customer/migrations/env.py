"""Alembic environment of the customer database (called by the kit's ``Database`` at start)."""

from alembic import context
from customer.models import metadata
from sqlalchemy import engine_from_config, pool

config = context.config
target_metadata = metadata
# a table of its own, so the customer database may share a schema with another one
VERSION_TABLE = "customer_alembic_version"


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
