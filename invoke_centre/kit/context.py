"""The caller's context as a service sees it.

The centre puts the request id, the user, roles, branch, terminal, permissions
and the deadline into ``nameko.*`` headers; nameko hands them to the worker as
context data. ``Caller`` turns them into one small object per worker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from nameko.extensions import DependencyProvider

from invoke_centre.grants import Grant, may_at


def _split(value) -> tuple[str, ...]:
    if not value:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return tuple(v for v in str(value).split(",") if v)


@dataclass(frozen=True)
class CallerContext:
    request_id: str | None = None
    user_id: str | None = None
    roles: tuple[str, ...] = ()
    branch: str | None = None
    terminal_id: str | None = None
    permissions: frozenset[str] = field(default_factory=frozenset)
    grants: tuple[Grant, ...] = ()
    deadline: float | None = None  # epoch seconds
    idempotency_key: str | None = None
    named_request: str | None = None

    @classmethod
    def from_data(cls, data: dict) -> "CallerContext":
        deadline = data.get("deadline")
        return cls(
            request_id=data.get("request_id"),
            user_id=data.get("user_id"),
            roles=_split(data.get("roles")),
            branch=data.get("branch") or None,
            terminal_id=data.get("terminal_id") or None,
            permissions=frozenset(_split(data.get("permissions"))),
            grants=tuple(Grant.parse(g) for g in _split(data.get("grants"))),
            deadline=int(deadline) / 1000 if deadline else None,
            idempotency_key=data.get("idempotency_key") or None,
            named_request=data.get("named_request") or None,
        )

    def may(self, permission: str) -> bool:
        """Whether the caller holds ``permission`` (``*`` holds everything)."""
        return "*" in self.permissions or permission in self.permissions

    def may_at(self, permission: str, *, branch: str | None, owner: str | None = None,
               line: str | None = None) -> bool:
        """Whether the caller holds ``permission`` over an object of ``branch`` owned by
        ``owner`` (its assigned user). Without grants in the context, holding the
        permission anywhere counts (a centre that predates grants)."""
        if not self.grants:
            return self.may(permission)
        return may_at(self.grants, permission, user_id=self.user_id, branch=branch, owner=owner,
                      line=line)

    def branch_prefixes(self, permission: str) -> tuple[str, ...] | None:
        """Branch subtrees where ``permission`` holds, for filtering queries: None means
        everywhere, ``()`` nowhere by branch (maybe ``self`` only, see ``only_own``)."""
        if not self.grants:
            return None if self.may(permission) else ()
        grants = [g for g in self.grants if g.grants(permission)]
        if any(g.scope == "*" for g in grants):
            return None
        return tuple(sorted({g.scope for g in grants if g.scope != "self"}))

    def only_own(self, permission: str) -> bool:
        """True when ``permission`` holds only for objects assigned to the caller."""
        grants = [g for g in self.grants if g.grants(permission)]
        return bool(grants) and all(g.scope == "self" for g in grants)

    def remaining_s(self) -> float | None:
        """Seconds left before the deadline, or None when the call has none."""
        return None if self.deadline is None else self.deadline - time.time()


class Caller(DependencyProvider):
    """``caller = Caller()`` on a service gives each worker its CallerContext."""

    def get_dependency(self, worker_ctx):
        return CallerContext.from_data(worker_ctx.data)
