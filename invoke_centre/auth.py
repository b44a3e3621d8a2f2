"""Who is calling: bearer tokens to principals.

A principal comes from an access token (a JWT issued at login, see ``tokens.py``) or, for
machine clients and tests, from a static token in the file named by ``ICS_TOKENS_FILE``
(off unless set)::

    {"<token>": {"user_id": "u1", "roles": ["agent"], "branch": "530102",
                 "permissions": ["customer:read"], "grants": ["customer:read@530102"]}}

(``grants`` default to each permission everywhere.) Static tokens are compared in constant
time; nothing is open without a token.
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from invoke_centre.grants import Grant, may_at

_log = logging.getLogger(__name__)

ADMIN_PERMISSION = "ics:admin"


@dataclass(frozen=True)
class Principal:
    user_id: str
    roles: tuple[str, ...] = ()
    branch: str | None = None
    terminal_id: str | None = None
    permissions: frozenset[str] = field(default_factory=frozenset)
    grants: tuple[Grant, ...] = ()

    def may(self, permission: str) -> bool:
        return "*" in self.permissions or permission in self.permissions

    def may_at(self, permission: str, *, branch: str | None, owner: str | None = None,
               line: str | None = None) -> bool:
        return may_at(self.grants, permission, user_id=self.user_id, branch=branch, owner=owner,
                      line=line)


class Authenticator:
    """Static tokens first, then ``verify`` (the JWT check) and ``lookup`` (the principal)."""

    def __init__(self, tokens_file: str = "",
                 verify: Callable[[str], dict[str, Any]] | None = None,
                 lookup: Callable[[str, str | None], Principal | None] | None = None) -> None:
        self._tokens: list[tuple[bytes, Principal]] = []
        self._verify, self._lookup = verify, lookup
        if tokens_file:
            for token, p in json.loads(Path(tokens_file).read_text()).items():
                self._tokens.append((token.encode(), Principal(
                    user_id=str(p["user_id"]), roles=tuple(p.get("roles", ())),
                    branch=p.get("branch"), terminal_id=p.get("terminal_id"),
                    permissions=frozenset(p.get("permissions", ())),
                    grants=tuple(Grant.parse(g) for g in (p.get("grants") or [
                        f"{perm}@*" for perm in p.get("permissions", ())])))))

    def authenticate(self, authorization: str | None) -> Principal | None:
        if not authorization or not authorization.startswith("Bearer "):
            return None
        given = authorization[7:].strip().encode()
        found = None
        for token, principal in self._tokens:  # no early exit: same time for every token
            if hmac.compare_digest(token, given):
                found = principal
        if found is not None or self._verify is None or given.count(b".") != 2:
            return found
        try:
            claims = self._verify(given.decode())
        except Exception as exc:  # TokenError, or anything a forged token provokes
            _log.info("bearer token refused: %s", exc)
            return None
        return self._lookup(claims["sub"], claims.get("tid")) if self._lookup else None
