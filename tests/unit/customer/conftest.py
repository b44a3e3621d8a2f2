"""Fixtures of the customer service's unit tests: the service's package on the path, callers
with grants, and a worker whose unit of work is a real SQLite file (no broker)."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import pytest

SERVICE_ROOT = Path(__file__).resolve().parents[3] / "services" / "customer"
if str(SERVICE_ROOT) not in sys.path:
    sys.path.insert(0, str(SERVICE_ROOT))

from invoke_centre.kit import CallerContext  # noqa: E402


def caller(user_id: str = "agent-1", branch: str = "530102", *grants: str) -> CallerContext:
    perms = sorted({g.partition("@")[0] for g in grants})
    return CallerContext.from_data({"user_id": user_id, "branch": branch, "roles": "agent",
                                    "permissions": ",".join(perms), "grants": ",".join(grants)})


@pytest.fixture
def make_caller():
    return caller


@pytest.fixture
def session_factory(tmp_path):
    from sqlalchemy.orm import sessionmaker

    from customer.service import MIGRATIONS
    from invoke_centre.kit import make_engine, upgrade

    uri = f"sqlite:///{tmp_path / 'customer.db'}"
    engine = make_engine(uri)
    upgrade(uri, MIGRATIONS, engine=engine)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


@pytest.fixture
def worker(session_factory):
    """``worker(caller)``: a CustomerService worker acting for ``caller`` (mocks for events and
    audit: ``w.dispatch`` and ``w.audit`` record their calls)."""
    from nameko.testing.services import worker_factory

    from customer.repository import CustomerRepository
    from customer.service import CustomerService
    from invoke_centre.kit import UnitOfWork

    def make(who: CallerContext):
        return worker_factory(CustomerService, caller=who,
                              uow=UnitOfWork(session_factory, {"customers": CustomerRepository}))

    return make


def resident(area: str = "530102", born: date = date(1985, 3, 4), order: int = 123) -> str:
    from customer.domain import make_resident_id

    return make_resident_id(area, born, order)


@pytest.fixture
def rid():
    return resident
