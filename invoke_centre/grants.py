"""Grants: a permission held within a scope — a branch subtree, everywhere, or one's own objects.

On the wire (``nameko.grants``) a grant is ``permission@scope`` or ``permission@scope/line``:
scope ``*`` is everywhere, ``self`` is only objects assigned to the caller, anything else is a
branch code. Branch codes are hierarchical: a child's code starts with its parent's (``53`` →
``5301`` → ``530102`` → ``53010201``), so a subtree is a prefix. ``line`` limits the grant to
one line of business (``life``, ``property``). Permission ``*`` is every permission.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Grant:
    permission: str
    scope: str = "*"
    line: str | None = None

    @classmethod
    def parse(cls, text: str) -> "Grant":
        perm, _, rest = text.partition("@")
        scope, _, line = (rest or "*").partition("/")
        return cls(perm, scope or "*", line or None)

    def grants(self, permission: str) -> bool:
        return self.permission in (permission, "*")

    def covers(self, *, branch: str | None, owner: str | None, user_id: str | None,
               line: str | None = None) -> bool:
        if self.line and line and self.line != line:
            return False
        if self.scope == "*":
            return True
        if self.scope == "self":
            return owner is not None and owner == user_id
        return branch is not None and branch.startswith(self.scope)

    def __str__(self) -> str:
        return f"{self.permission}@{self.scope}" + (f"/{self.line}" if self.line else "")


def may_at(grants: tuple[Grant, ...], permission: str, *, user_id: str | None,
           branch: str | None, owner: str | None = None, line: str | None = None) -> bool:
    """Whether ``grants`` allow ``permission`` over an object of ``branch`` owned by ``owner``."""
    return any(g.grants(permission) and g.covers(branch=branch, owner=owner, user_id=user_id,
                                                 line=line) for g in grants)
