"""A running mesh per test module for the customer service's integration tests: the centre
(registrar + gateway under gunicorn) and ``services/customer`` under ``nameko run``, on a RabbitMQ
vhost of the module's own and on SQLite or PostgreSQL. Starting a mesh takes seconds, so a module
shares one; tests make customers of their own and do not depend on each other's."""

from __future__ import annotations

import os

import pytest
import requests
from customer_mesh import TOKENS, ics, vhost


@pytest.fixture(scope="module")
def customer_mesh_factory(rabbit, tmp_path_factory):
    """``make(db_kind, sensitivity)``: a running centre and customer service for this module;
    ``sensitivity`` caps the levels the service declares (``normal``: plain JSON throughout)."""
    made: list[tuple] = []

    def make(db_kind: str = "sqlite", sensitivity: str = "normal") -> ics.Mesh:
        workdir = tmp_path_factory.mktemp(f"customer-{db_kind}")
        dbs = ics.Databases(workdir)
        service_db = dbs.new(db_kind, "customer")  # skips without ICS_TEST_PG_DSN
        vhost_url, amqp = vhost()
        mesh = ics.Mesh(amqp, f"sqlite:///{workdir / 'ics.db'}", workdir, TOKENS)
        made.append((mesh, dbs, vhost_url))
        mesh.start_centre()
        # dev tokens have no device keys to sign or seal with: plain JSON for every request
        # (unless a test asks for the declared levels); the checkout's own invoke_centre first
        mesh.start_service("customer", DB_URI=service_db, CUSTOMER_MAX_SENSITIVITY=sensitivity,
                           PYTHONPATH=os.pathsep.join([str(ics.ROOT / "services" / "customer"),
                                                       str(ics.ROOT)]))
        mesh.wait_callable("customer.dictionaries", {})
        return mesh

    yield make
    for mesh, dbs, vhost_url in made:
        mesh.close()
        dbs.drop_all()
        requests.delete(vhost_url, auth=ics.MGMT_AUTH, timeout=30)
