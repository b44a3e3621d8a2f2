"""Who is calling: bearer tokens to principals.

Until the security issue brings users, terminals and JWTs, a principal comes
from one of two configured sources: the operator token (``ICS_OPERATOR_TOKEN``,
all permissions, may use the admin API) and an optional JSON file of
development tokens (``ICS_TOKENS_FILE``)::

    {"<token>": {"user_id": "u1", "roles": ["agent"], "branch": "530102",
                 "permissions": ["customer:read"], "grants": ["customer:read@530102"]}}

(``grants`` default to each permission everywhere.)

Tokens are compared in constant time; nothing is open without one.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from pathlib import Path

ADMIN_PERMISSION = "ics:admin"


@dataclass(frozen=True)
class Principal:
    user_id: str
    roles: tuple[str, ...] = ()
    branch: str | None = None
    terminal_id: str | None = None
    permissions: frozenset[str] = field(default_factory=frozenset)
    # "permission@scope[/line]" strings, see invoke_centre.kit.context.Grant
    grants: tuple[str, ...] = ()

    def may(self, permission: str) -> bool:
        return "*" in self.permissions or permission in self.permissions

    @property
    def is_admin(self) -> bool:
        return self.may(ADMIN_PERMISSION)


class Authenticator:
    def __init__(self, operator_token: str = "", tokens_file: str = "") -> None:
        self._tokens: list[tuple[bytes, Principal]] = []
        if operator_token:
            self._tokens.append((operator_token.encode(), Principal(
                user_id="operator", roles=("operator",), permissions=frozenset({"*"}),
                grants=("*@*",))))
        if tokens_file:
            for token, p in json.loads(Path(tokens_file).read_text()).items():
                self._tokens.append((token.encode(), Principal(
                    user_id=str(p["user_id"]), roles=tuple(p.get("roles", ())),
                    branch=p.get("branch"), terminal_id=p.get("terminal_id"),
                    permissions=frozenset(p.get("permissions", ())),
                    grants=tuple(p.get("grants") or (f"{perm}@*" for perm in
                                                      p.get("permissions", ()))))))

    def authenticate(self, authorization: str | None) -> Principal | None:
        if not authorization or not authorization.startswith("Bearer "):
            return None
        given = authorization[7:].strip().encode()
        found = None
        for token, principal in self._tokens:  # no early exit: same time for every token
            if hmac.compare_digest(token, given):
                found = principal
        return found
