"""The customer service's declared sensitivities reach the centre: without the development cap,
personal data is read only sealed and changed only signed, so a caller without a device key is
refused before the service is called; the code lists stay plain."""

from __future__ import annotations

import pytest
from customer_mesh import call

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mesh(customer_mesh_factory):
    return customer_mesh_factory("sqlite", sensitivity="sealed")


def test_declared_levels_are_in_the_catalogue(mesh):
    catalog = {r["name"]: r for r in mesh.get("/v1/catalog").json()["data"]["requests"]}
    assert {n: catalog[n]["sensitivity"] for n in ("customer.search", "customer.get",
                                                   "customer.export", "customer.create",
                                                   "customer.update", "customer.dictionaries")} \
        == {"customer.search": "sealed", "customer.get": "sealed", "customer.export": "sealed",
            "customer.create": "signed", "customer.update": "signed",
            "customer.dictionaries": "normal"}


def test_plain_json_is_refused_where_protection_is_declared(mesh):
    for name, params in (("customer.search", {"q": "zs"}), ("customer.get", {"id": 1}),
                         ("customer.create", {"name": "张三", "id_number": "11010519491231002X",
                                              "branch": "530102"})):
        r = call(mesh, name, params)
        assert r.status_code == 401, (name, r.text)
        assert r.json()["error"]["code"] == "protection_required"
    assert call(mesh, "customer.dictionaries", {}).status_code == 200
