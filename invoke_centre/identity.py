"""Branches, roles, users and their grants (F5.5, F9): the centre's own identity records.

Functions take a session and never commit. Every change that must reach the gateways at once
(a grant, a disabled user, a forced re-login) appends a ``SecurityChange``; gateways poll its
version as they poll the routing table's.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from invoke_centre import credentials
from invoke_centre.auth import Principal
from invoke_centre.grants import Grant
from invoke_centre.models import (
    Branch,
    RefreshToken,
    Role,
    SecurityChange,
    TerminalBinding,
    User,
    UserGrant,
)
from invoke_centre.registry import RegistryError, utcnow

USER_KINDS = ("agent", "customer_manager", "operator", "auditor", "administrator", "customer")
BRANCH_KINDS = ("head_office", "province", "prefecture", "county", "outlet")
LINES = ("life", "property")
_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_BRANCH = re.compile(r"^\d{1,20}$")
_PERMISSION = re.compile(r"^(\*|[a-z][a-z0-9_]*:[a-z0-9_*]+)$")


class IdentityError(RegistryError):
    """Bad identity input or state; ``status`` says which HTTP answer fits."""


def bump(session: Session, kind: str, subject: str) -> None:
    session.add(SecurityChange(at=utcnow(), kind=kind, subject=subject))
    session.flush()


def security_version(session: Session) -> int:
    return session.scalar(select(func.max(SecurityChange.version))) or 0


def normalise_phone(phone: object) -> str | None:
    if not isinstance(phone, str):
        return None
    digits = re.sub(r"[\s-]", "", phone)
    if digits.startswith("+86"):
        digits = digits[3:]
    return digits if _MOBILE.match(digits) else None


# --- branches -------------------------------------------------------------------------------
def create_branch(session: Session, *, code: str, name: str, kind: str,
                  parent_code: str | None = None) -> Branch:
    fields: dict[str, list[str]] = {}
    if not isinstance(code, str) or not _BRANCH.match(code):
        fields["code"] = ["must be 1-20 digits"]
    if not isinstance(name, str) or not name.strip() or len(name) > 120:
        fields["name"] = ["is required (at most 120 characters)"]
    if kind not in BRANCH_KINDS:
        fields["kind"] = [f"must be one of {', '.join(BRANCH_KINDS)}"]
    if parent_code is not None:
        parent = session.get(Branch, parent_code) if isinstance(parent_code, str) else None
        if parent is None:
            fields["parent_code"] = ["no such branch"]
        elif isinstance(code, str) and not (code.startswith(parent_code) and code != parent_code):
            fields["code"] = [f"must start with its parent's code {parent_code}"]
    if fields:
        raise IdentityError("invalid branch", fields)
    if session.get(Branch, code) is not None:
        raise IdentityError(f"branch {code} exists", {"code": ["taken"]}, 409)
    branch = Branch(code=code, name=name.strip(), kind=kind, parent_code=parent_code,
                    created_at=utcnow())
    session.add(branch)
    return branch


def list_branches(session: Session) -> list[Branch]:
    return list(session.scalars(select(Branch).order_by(Branch.code)))


# --- roles ------------------------------------------------------------------------------------
def set_role(session: Session, *, name: str, permissions: list[str], description: str = "") -> Role:
    fields: dict[str, list[str]] = {}
    if not isinstance(name, str) or not re.match(r"^[a-z][a-z0-9_-]{0,59}$", name):
        fields["name"] = ["lower-case letters, digits, - and _"]
    if not isinstance(permissions, list) or not all(
            isinstance(p, str) and _PERMISSION.match(p) for p in permissions):
        fields["permissions"] = ["a list of permission names like customer:read"]
    if fields:
        raise IdentityError("invalid role", fields)
    role = session.get(Role, name) or Role(name=name, permissions=[], updated_at=utcnow())
    role.permissions, role.description, role.updated_at = sorted(set(permissions)), \
        description or "", utcnow()
    session.add(role)
    bump(session, "role", name)
    return role


def list_roles(session: Session) -> list[Role]:
    return list(session.scalars(select(Role).order_by(Role.name)))


# --- users ------------------------------------------------------------------------------------
def _secret_fields(pin: object, password: object, phone: str, name: str) -> dict:
    fields: dict[str, list[str]] = {}
    if pin is not None and (problems := credentials.pin_problems(pin)):
        fields["pin"] = problems
    if password is not None and (problems := credentials.password_problems(
            password, (phone, name, phone[-8:]))):
        fields["password"] = problems
    return fields


def create_user(session: Session, *, phone: str, name: str, kind: str,
                branch_code: str | None = None, pin: str | None = None,
                password: str | None = None, operator_level: int | None = None) -> User:
    fields: dict[str, list[str]] = {}
    norm = normalise_phone(phone)
    if norm is None:
        fields["phone"] = ["must be a mainland mobile number (11 digits starting 13-19)"]
    if not isinstance(name, str) or not name.strip() or len(name) > 120:
        fields["name"] = ["is required (at most 120 characters)"]
    if kind not in USER_KINDS:
        fields["kind"] = [f"must be one of {', '.join(USER_KINDS)}"]
    if branch_code is not None and session.get(Branch, branch_code) is None:
        fields["branch_code"] = ["no such branch"]
    if operator_level is not None and (isinstance(operator_level, bool) or
                                       operator_level not in (1, 2, 3)):
        fields["operator_level"] = ["must be 1, 2 or 3"]
    if pin is None and password is None:
        fields["password"] = ["give a password, a PIN or both"]
    fields.update(_secret_fields(pin, password, norm or "", name if isinstance(name, str) else ""))
    if fields:
        raise IdentityError("invalid user", fields)
    if session.scalar(select(User).where(User.phone == norm)) is not None:
        raise IdentityError("phone number taken", {"phone": ["taken"]}, 409)
    now = utcnow()
    user = User(id=f"u-{uuid.uuid4().hex[:12]}", phone=norm, name=name.strip(), kind=kind,
                branch_code=branch_code, operator_level=operator_level,
                pin_hash=credentials.hash_secret(pin) if pin else None,
                password_hash=credentials.hash_secret(password) if password else None,
                status="active", created_at=now, updated_at=now)
    session.add(user)
    return user


def get_user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise IdentityError(f"no user {user_id}", status=404)
    return user


def list_users(session: Session, *, branch_prefixes: tuple[str, ...] | None = None) -> list[User]:
    query = select(User).order_by(User.id)
    users = list(session.scalars(query))
    if branch_prefixes is None:
        return users
    return [u for u in users if u.branch_code and u.branch_code.startswith(branch_prefixes)]


def set_secrets(session: Session, user: User, *, pin: object = None,
                password: object = None) -> None:
    if pin is None and password is None:
        raise IdentityError("nothing to change", {"pin": ["give pin or password"]})
    fields = _secret_fields(pin, password, user.phone, user.name)
    if fields:
        raise IdentityError("invalid secret", fields)
    if pin is not None:
        user.pin_hash = credentials.hash_secret(pin)
    if password is not None:
        user.password_hash = credentials.hash_secret(password)
    user.updated_at = utcnow()


def force_logout(session: Session, user: User) -> int:
    """Every token of ``user`` stops working: access tokens by time, refresh tokens revoked."""
    now = utcnow()
    user.tokens_valid_after = now
    n = session.execute(update(RefreshToken).where(
        RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)).rowcount or 0
    bump(session, "user_logout", user.id)
    return n


def set_status(session: Session, user: User, status: str) -> None:
    if status not in ("active", "disabled"):
        raise IdentityError("invalid status", {"status": ["active or disabled"]})
    user.status, user.updated_at = status, utcnow()
    if status == "disabled":
        force_logout(session, user)
    else:
        bump(session, "user_status", user.id)


# --- grants -----------------------------------------------------------------------------------
def add_grant(session: Session, user: User, *, role: str, scope: str,
              line: str | None = None) -> UserGrant:
    fields: dict[str, list[str]] = {}
    if session.get(Role, role) is None:
        fields["role"] = ["no such role"]
    if scope not in ("*", "self") and session.get(Branch, scope) is None:
        fields["scope"] = ["a branch code, * (everywhere) or self"]
    if line is not None and line not in LINES:
        fields["line"] = [f"one of {', '.join(LINES)}"]
    if fields:
        raise IdentityError("invalid grant", fields)
    grant = UserGrant(user_id=user.id, role=role, scope=scope, line=line, created_at=utcnow())
    session.add(grant)
    bump(session, "grant", user.id)
    return grant


def remove_grant(session: Session, user: User, grant_id: int) -> None:
    grant = session.get(UserGrant, grant_id)
    if grant is None or grant.user_id != user.id:
        raise IdentityError(f"no grant {grant_id} for {user.id}", status=404)
    session.delete(grant)
    bump(session, "grant", user.id)


def grants_of(session: Session, user_id: str) -> list[UserGrant]:
    return list(session.scalars(select(UserGrant).where(UserGrant.user_id == user_id)
                                .order_by(UserGrant.id)))


def principal_of(session: Session, user: User, terminal_id: str | None) -> Principal:
    """What a user may do: every permission of every granted role, within its scope."""
    roles = {r.name: r for r in session.scalars(select(Role))}
    grants: list[Grant] = []
    permissions: set[str] = set()
    role_names: list[str] = []
    for g in grants_of(session, user.id):
        role = roles.get(g.role)
        if role is None:
            continue
        role_names.append(g.role)
        for perm in role.permissions:
            permissions.add(perm)
            grants.append(Grant(perm, g.scope, g.line))
    return Principal(user_id=user.id, roles=tuple(dict.fromkeys(role_names)),
                     branch=user.branch_code, terminal_id=terminal_id,
                     permissions=frozenset(permissions), grants=tuple(grants))


@dataclass
class BootstrapResult:
    user: User
    terminal_id: str


def bootstrap_admin(session: Session, *, phone: str, name: str, password: str,
                    branch_code: str, branch_name: str) -> BootstrapResult:
    """The first administrator: a head-office branch, the administrator role with every
    permission everywhere, and a console terminal bound to them."""
    from invoke_centre import terminals

    if session.scalar(select(func.count()).select_from(User)):
        raise IdentityError("users exist already; bootstrap is only for an empty centre",
                            status=409)
    if session.get(Branch, branch_code) is None:
        create_branch(session, code=branch_code, name=branch_name, kind="head_office")
    set_role(session, name="administrator", permissions=["*"],
             description="every permission; created by bootstrap")
    user = create_user(session, phone=phone, name=name, kind="administrator",
                       branch_code=branch_code, password=password, operator_level=3)
    session.flush()
    add_grant(session, user, role="administrator", scope="*")
    terminals.ensure_default_classes(session)
    terminal, _code = terminals.enrol(session, terminal_class="console", imei=None, imsi=None,
                                      user_ids=[user.id])
    return BootstrapResult(user, terminal.id)


def binding_exists(session: Session, terminal_id: str, user_id: str) -> bool:
    return session.get(TerminalBinding, (terminal_id, user_id)) is not None


def is_locked_at(now: datetime, locked_until: datetime | None) -> bool:
    return locked_until is not None and locked_until > now
