"""The caller's context as a service sees it.

The centre puts the request id, the user, roles, branch, terminal, permissions
and the deadline into ``nameko.*`` headers; nameko hands them to the worker as
context data. ``Caller`` turns them into one small object per worker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from nameko.extensions import DependencyProvider


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
            deadline=int(deadline) / 1000 if deadline else None,
            idempotency_key=data.get("idempotency_key") or None,
            named_request=data.get("named_request") or None,
        )

    def may(self, permission: str) -> bool:
        """Whether the caller holds ``permission`` (``*`` holds everything)."""
        return "*" in self.permissions or permission in self.permissions

    def remaining_s(self) -> float | None:
        """Seconds left before the deadline, or None when the call has none."""
        return None if self.deadline is None else self.deadline - time.time()


class Caller(DependencyProvider):
    """``caller = Caller()`` on a service gives each worker its CallerContext."""

    def get_dependency(self, worker_ctx):
        return CallerContext.from_data(worker_ctx.data)
