"""Who may do what to whom, through the centre, over every customer request.

Three customers: A in branch 53010201 assigned to agent-3, B in 53010301 assigned to agent-2,
C in Dali (53290101). The callers: an agent of branch 530102, an agent of another branch
(530103), an agent who may touch only the customers assigned to them, a manager of the Kunming
subtree (5301), an operator, each with and without ``customer:pii``; and a reader who sees the
subtree but may change only their own customers. Out of reach is 404 to read (existence is not
revealed), 403 to change what one may see; ID and mobile numbers are masked without
``customer:pii``.
"""

from __future__ import annotations

import base64
import sys
from datetime import date

import pytest
from customer_mesh import OPERATOR, call, ics

pytestmark = pytest.mark.integration

sys.path.insert(0, str(ics.ROOT / "services" / "customer"))
from customer.domain import make_resident_id  # noqa: E402

PLACES = {"A": ("53010201", "agent-3"), "B": ("53010301", "agent-2"), "C": ("53290101", "cm-1")}
# caller → (customers seen, customers changeable, holds analyse/import/export)
REACH = {
    "agent": ("A", "A", False),
    "agent-other": ("B", "B", False),
    "agent-own": ("A", "A", False),
    "manager": ("AB", "AB", True),
    "operator-nopii": ("ABC", "ABC", True),
    "reader": ("AB", "", False),
}
CALLERS = [*REACH, *(f"{k}-pii" for k in ("agent", "agent-other", "agent-own", "manager")),
           OPERATOR]


def reach(token: str) -> tuple[str, str, bool, bool]:
    if token == OPERATOR:
        return "ABC", "ABC", True, True
    pii = token.endswith("-pii")
    seen, changeable, office = REACH[token.removesuffix("-pii")]
    return seen, changeable, office, pii


@pytest.fixture(scope="module")
def mesh(customer_mesh_factory):
    m = customer_mesh_factory("sqlite")
    m.people = {}
    for i, (key, (branch, manager)) in enumerate(PLACES.items()):
        number = make_resident_id("530102", date(1980, 1, 1 + i), 11 + 2 * i)
        r = call(m, "customer.create", {"name": f"矩阵{key}", "id_number": number,
                                        "mobile": f"1380000000{i}", "branch": branch,
                                        "manager_id": manager})
        assert r.status_code == 200, r.text
        m.people[key] = r.json()["data"]["id"]
    return m


def _version(mesh, cid: int) -> int:
    return call(mesh, "customer.get", {"id": cid}).json()["data"]["version"]


def _expect_change(key: str, seen: str, changeable: str) -> int:
    return 200 if key in changeable else 403 if key in seen else 404


@pytest.mark.parametrize("token", CALLERS)
def test_reading(mesh, token):
    seen, _, _, pii = reach(token)
    for key, cid in mesh.people.items():
        r = call(mesh, "customer.get", {"id": cid}, token)
        assert r.status_code == (200 if key in seen else 404), (token, key, r.text)
        if r.status_code == 200:
            c = r.json()["data"]
            assert ("*" in c["id_number"] and "*" in c["mobile"]) is (not pii), (token, key)
    found = call(mesh, "customer.search", {"name": "矩阵", "limit": 100}, token)
    assert found.status_code == 200
    items = found.json()["data"]["items"]
    assert sorted(x["name"][-1] for x in items) == sorted(seen), token
    assert all(("*" in x["id_number"]) is (not pii) for x in items)
    assert call(mesh, "customer.dictionaries", {}, token).status_code == 200


@pytest.mark.parametrize("token", CALLERS)
def test_changing(mesh, token):
    seen, changeable, _, _ = reach(token)
    for key, cid in mesh.people.items():
        want = _expect_change(key, seen, changeable)
        r = call(mesh, "customer.update", {"id": cid, "version": _version(mesh, cid),
                                           "employer": f"by {token}"[:100]}, token)
        assert r.status_code == want, (token, key, r.text)
        r = call(mesh, "customer.locate", {"id": cid, "latitude": 25.0, "longitude": 102.7},
                 token)
        assert r.status_code == want, (token, key, r.text)
    a, b = mesh.people["A"], mesh.people["B"]
    want = (404 if "A" not in seen else 403 if "A" not in changeable
            else 404 if "B" not in seen else 200)
    r = call(mesh, "customer.relate", {"customer_id": a, "related_id": b, "kind": "sibling"},
             token)
    assert r.status_code == want, (token, r.text)
    r = call(mesh, "customer.unrelate", {"customer_id": a, "related_id": b}, token)
    assert r.status_code == want, (token, r.text)


@pytest.mark.parametrize("token", CALLERS)
def test_creating(mesh, token):
    n = CALLERS.index(token)
    number = make_resident_id("530102", date(1990, 1, 1 + n), 101 + 2 * n)
    r = call(mesh, "customer.create", {"name": "新客", "id_number": number,
                                       "branch": "53010201"}, token)
    # the new customer is assigned to its creator, in branch 53010201
    assert r.status_code == (403 if token.startswith("agent-other") else 200), (token, r.text)


@pytest.mark.parametrize("token", CALLERS)
def test_analysing_importing_exporting(mesh, token):
    seen, _, office, pii = reach(token)
    r = call(mesh, "customer.analysis", {"by": "branch"}, token)
    assert r.status_code == (200 if office else 403), (token, r.text)
    if office:
        branches = {g["group"][:6] for g in r.json()["data"]["groups"]}
        assert ("532901" in branches) is ("C" in seen)

    r = call(mesh, "customer.export", {"format": "csv", "name": "矩阵"}, token)
    assert r.status_code == (200 if office else 403), (token, r.text)
    if office:
        text = base64.b64decode(r.json()["data"]["content_base64"]).decode("utf-8-sig")
        assert sorted(line.split(",")[1][-1] for line in text.splitlines()[1:]) == sorted(seen)
        assert ("********" in text) is (not pii)

    n = CALLERS.index(token)
    rows = ["name,id_number,branch",
            f"导入甲,{make_resident_id('530102', date(1970, 2, 1 + n), 201 + 2 * n)},53010299",
            f"导入乙,{make_resident_id('532901', date(1970, 3, 1 + n), 201 + 2 * n)},53290199"]
    r = call(mesh, "customer.import", {"format": "csv", "mode": "valid_rows",
                                       "content_base64": base64.b64encode(
                                           "\n".join(rows).encode()).decode()}, token)
    assert r.status_code == (200 if office else 403), (token, r.text)
    if office:
        report = r.json()["data"]
        assert report["stored"] == (2 if "C" in seen else 1)
        assert [e["row"] for e in report["errors"]] == ([] if "C" in seen else [3])


def test_no_grant_at_all_is_refused_by_the_service_itself(mesh):
    """The centre lets a permission through; the service still finds no grant for it."""
    r = call(mesh, "customer.search", {"q": "zs"}, "agent-nogrant")
    assert r.status_code == 403
    r = call(mesh, "customer.get", {"id": mesh.people["A"]}, "agent-nogrant")
    assert r.status_code == 404
