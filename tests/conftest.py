"""Fixtures shared by every test layer.

Integration tests run the mesh as it runs in production — the registrar, the
gateway under gunicorn and each service under ``nameko run``, as separate
processes — against the real RabbitMQ, each test in a vhost of its own, and
against SQLite or PostgreSQL (a database of its own, when ``ICS_TEST_PG_DSN``
is set). Helpers live in ``meshkit.py``.
"""

from __future__ import annotations

import os
import uuid
from urllib.parse import quote

import pytest
import requests
from meshkit import MGMT, MGMT_AUTH, RABBIT_HOST, Databases, Mesh, _rabbit_problem


@pytest.fixture(scope="session")
def rabbit() -> str:
    problem = _rabbit_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    return MGMT


@pytest.fixture
def vhost(rabbit) -> str:
    """A RabbitMQ vhost of this test's own; its AMQP URI."""
    name = f"ics-test-{uuid.uuid4().hex[:10]}"
    url = f"{MGMT}/api/vhosts/{quote(name, safe='')}"
    requests.put(url, auth=MGMT_AUTH, timeout=10).raise_for_status()
    requests.put(f"{MGMT}/api/permissions/{quote(name, safe='')}/guest", auth=MGMT_AUTH,
                 json={"configure": ".*", "write": ".*", "read": ".*"},
                 timeout=10).raise_for_status()
    yield f"amqp://guest:guest@{RABBIT_HOST}:5672/{quote(name, safe='')}"
    requests.delete(url, auth=MGMT_AUTH, timeout=30)


@pytest.fixture
def databases(tmp_path) -> Databases:
    dbs = Databases(tmp_path)
    yield dbs
    dbs.drop_all()


@pytest.fixture(params=["sqlite", "postgres"])
def db_kind(request) -> str:
    """Run the test on SQLite and on PostgreSQL."""
    return request.param


@pytest.fixture
def db_uri(databases, db_kind) -> str:
    """The centre's database: an SQLite file, or a PostgreSQL database of this test's own."""
    return databases.new(db_kind)


@pytest.fixture
def sqlite_uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'ics.db'}"


@pytest.fixture
def mesh_factory(vhost, tmp_path, databases):
    # after ``databases`` in set-up, so before it in tear-down: no process of the mesh is
    # still connected when a test's databases are dropped
    meshes: list[Mesh] = []

    def make(db_uri: str | None = None, tokens: dict[str, dict] | None = None) -> Mesh:
        mesh = Mesh(vhost, db_uri or f"sqlite:///{tmp_path / 'ics.db'}", tmp_path, tokens)
        meshes.append(mesh)
        return mesh

    yield make
    for mesh in meshes:
        mesh.close()


@pytest.fixture
def mesh(mesh_factory, db_uri) -> Mesh:
    """A running centre on SQLite and on PostgreSQL, with no services yet."""
    m = mesh_factory(db_uri)
    m.start_centre()
    return m


@pytest.fixture
def quotes_mesh(mesh_factory, sqlite_uri) -> Mesh:
    """A running centre (SQLite) with one instance of the outsider service, callable."""
    m = mesh_factory(sqlite_uri)
    m.start_centre()
    m.start_outsider()
    m.wait_callable()
    return m
