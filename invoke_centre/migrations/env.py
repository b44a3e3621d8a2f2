"""Alembic environment of the centre's database (called by ``invoke_centre.db.upgrade``)."""

from invoke_centre.db import run_migrations
from invoke_centre.models import Base

run_migrations(Base.metadata)
