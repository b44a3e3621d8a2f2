"""Helpers of the customer service's integration tests: the tests' identities (a tokens file
for the centre), a vhost of a module's own, and calling named requests."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import meshkit as ics
import requests

# who calls, as the tokens file gives them to the centre
BRANCH = "530102"


def _who(user: str, branch: str, scope: str, perms: tuple[str, ...]) -> dict:
    return {"user_id": user, "roles": ["agent"], "branch": branch,
            "permissions": [f"customer:{p}" for p in perms],
            "grants": [f"customer:{p}@{scope}" for p in perms]}


AGENT_PERMS = ("read", "write")
MANAGER_PERMS = ("read", "write", "analyse", "import", "export")
TOKENS = {
    "agent": _who("agent-1", BRANCH, BRANCH, AGENT_PERMS),
    "agent-pii": _who("agent-1", BRANCH, BRANCH, (*AGENT_PERMS, "pii")),
    "agent-other": _who("agent-2", "530103", "530103", AGENT_PERMS),
    "agent-other-pii": _who("agent-2", "530103", "530103", (*AGENT_PERMS, "pii")),
    "agent-own": _who("agent-3", BRANCH, "self", AGENT_PERMS),
    "agent-own-pii": _who("agent-3", BRANCH, "self", (*AGENT_PERMS, "pii")),
    "manager": _who("mgr-1", "5301", "5301", MANAGER_PERMS),
    "manager-pii": _who("mgr-1", "5301", "5301", (*MANAGER_PERMS, "pii")),
    "operator-nopii": _who("op-2", "53", "*", MANAGER_PERMS),
    # holds customer:read (so the centre lets it through) but no grant that scopes it
    "agent-nogrant": {"user_id": "agent-5", "roles": ["agent"], "branch": BRANCH,
                      "permissions": ["customer:read"], "grants": ["customer:write@530102"]},
    # sees the subtree, may change only the customers assigned to them
    "reader": {**_who("mgr-2", "5301", "5301", ("read",)),
               "permissions": ["customer:read", "customer:write"],
               "grants": ["customer:read@5301", "customer:write@self"]},
}
OPERATOR = ics.OPERATOR_TOKEN  # *@*, with customer:pii


def vhost() -> tuple[str, str]:
    name = f"ics-test-cust-{uuid.uuid4().hex[:8]}"
    url = f"{ics.MGMT}/api/vhosts/{quote(name, safe='')}"
    requests.put(url, auth=ics.MGMT_AUTH, timeout=10).raise_for_status()
    requests.put(f"{ics.MGMT}/api/permissions/{quote(name, safe='')}/guest", auth=ics.MGMT_AUTH,
                 json={"configure": ".*", "write": ".*", "read": ".*"},
                 timeout=10).raise_for_status()
    return url, f"amqp://guest:guest@{ics.RABBIT_HOST}:5672/{quote(name, safe='')}"


def call(mesh, name: str, params=None, token: str = OPERATOR, mutating: bool | None = None):
    """Invoke a named request; mutating ones get a fresh Idempotency-Key."""
    if mutating is None:
        mutating = name.split(".")[1] in ("create", "update", "relate", "unrelate", "locate",
                                          "import")
    headers = {"Idempotency-Key": uuid.uuid4().hex} if mutating else None
    return mesh.invoke(name, params or {}, token=token, headers=headers, timeout=30)
