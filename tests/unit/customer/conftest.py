"""Fixtures of the customer service's unit tests: a worker whose unit of work is a real SQLite
file (no broker); events and audit are mocks."""

from __future__ import annotations

import pytest
from customer_testing import CallerContext


@pytest.fixture
def session_factory(tmp_path):
    from customer.service import MIGRATIONS
    from sqlalchemy.orm import sessionmaker

    from invoke_centre.kit import make_engine, upgrade

    uri = f"sqlite:///{tmp_path / 'customer.db'}"
    engine = make_engine(uri)
    upgrade(uri, MIGRATIONS, engine=engine)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


@pytest.fixture
def worker(session_factory):
    """``worker(caller)``: a CustomerService worker acting for ``caller`` (``w.dispatch`` and
    ``w.audit`` record their calls)."""
    from customer.repository import CustomerRepository
    from customer.service import CustomerService
    from nameko.testing.services import worker_factory

    from invoke_centre.kit import UnitOfWork as Work

    def make(who: CallerContext):
        return worker_factory(CustomerService, caller=who,
                              uow=Work(session_factory, {"customers": CustomerRepository}))

    return make
