"""The centre's own tables: the routing table (manifests, operator settings, aliases, changes),
instances, idempotency records, and identity, terminals, tokens and keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Manifest(Base):
    """Every manifest ever accepted, announced or registered by an operator."""

    __tablename__ = "ics_manifests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(60), index=True)
    version: Mapped[str] = mapped_column(String(40))
    source: Mapped[str] = mapped_column(String(20))  # announced | operator
    digest: Mapped[str] = mapped_column(String(64))
    body: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Service(Base):
    """A service and the manifest that currently defines its routes."""

    __tablename__ = "ics_services"
    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    manifest_id: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(20))
    first_seen: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class RouteSetting(Base):
    """An operator's settings for a named request; they outlive re-announcements."""

    __tablename__ = "ics_route_settings"
    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    enabled: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    timeout_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    permission: Mapped[str | None] = mapped_column(String(120), nullable=True)
    sensitivity: Mapped[str | None] = mapped_column(String(10), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class Alias(Base):
    __tablename__ = "ics_aliases"
    alias: Mapped[str] = mapped_column(String(120), primary_key=True)
    target: Mapped[str] = mapped_column(String(120))
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class Instance(Base):
    __tablename__ = "ics_instances"
    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    service: Mapped[str] = mapped_column(String(60), index=True)
    version: Mapped[str] = mapped_column(String(40))
    heartbeat_s: Mapped[float] = mapped_column()
    started_at: Mapped[datetime] = mapped_column(DateTime)
    last_seen: Mapped[datetime] = mapped_column(DateTime)
    gone_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Change(Base):
    """The versioned log of the routing table: its newest version is the table's version."""

    __tablename__ = "ics_changes"
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    actor: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(120))
    detail: Mapped[dict] = mapped_column(JSON)


class IdempotencyRecord(Base):
    __tablename__ = "ics_idempotency"
    principal: Mapped[str] = mapped_column(String(120), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    body_digest: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(10))  # running | done
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


# --- identity and terminals (F5.5, F9, P1.3, P2) -------------------------------------------


class Branch(Base):
    """A node of the branch tree; a child's code starts with its parent's code."""

    __tablename__ = "ics_branches"
    code: Mapped[str] = mapped_column(String(20), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    parent_code: Mapped[str | None] = mapped_column(String(20), nullable=True)
    kind: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Role(Base):
    __tablename__ = "ics_roles"
    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    permissions: Mapped[list] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(String(300), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class User(Base):
    __tablename__ = "ics_users"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    phone: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(30))
    branch_code: Mapped[str | None] = mapped_column(String(20), nullable=True)
    operator_level: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pin_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="active")
    # access tokens issued before this moment are refused (forced re-login, disable)
    tokens_valid_after: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class UserGrant(Base):
    """A role given to a user within a scope (branch subtree, ``*`` or ``self``) and line."""

    __tablename__ = "ics_user_grants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(40), index=True)
    role: Mapped[str] = mapped_column(String(60))
    scope: Mapped[str] = mapped_column(String(20))
    line: Mapped[str | None] = mapped_column(String(20), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class TerminalClass(Base):
    """What a class of terminal must present at login, and its least payload protection (P1.3)."""

    __tablename__ = "ics_terminal_classes"
    name: Mapped[str] = mapped_column(String(30), primary_key=True)
    login_items: Mapped[list] = mapped_column(JSON)  # of: pin, password, device
    min_sensitivity: Mapped[str] = mapped_column(String(10))
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class Terminal(Base):
    __tablename__ = "ics_terminals"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    terminal_class: Mapped[str] = mapped_column(String(30))
    imei: Mapped[str | None] = mapped_column(String(20), nullable=True)
    imsi: Mapped[str | None] = mapped_column(String(20), nullable=True)
    status: Mapped[str] = mapped_column(String(20))  # enrolled|registered|lost|deregistered
    enrolment_code_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    sig_jwk: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    enc_jwk: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    key_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    status_changed_at: Mapped[datetime] = mapped_column(DateTime)


class TerminalBinding(Base):
    __tablename__ = "ics_terminal_bindings"
    terminal_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)


class LoginNonce(Base):
    __tablename__ = "ics_login_nonces"
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    terminal_id: Mapped[str] = mapped_column(String(40))
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class RefreshToken(Base):
    __tablename__ = "ics_refresh_tokens"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(40), index=True)
    user_id: Mapped[str] = mapped_column(String(40), index=True)
    terminal_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class SigningKey(Base):
    """The centre's own keys: ``sig`` signs access tokens, ``enc`` receives sealed requests."""

    __tablename__ = "ics_keys"
    kid: Mapped[str] = mapped_column(String(40), primary_key=True)
    use: Mapped[str] = mapped_column(String(3))
    alg: Mapped[str] = mapped_column(String(20))
    private_jwk: Mapped[dict] = mapped_column(JSON)
    public_jwk: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    retired_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # tokens signed by a retired key are accepted until then (the overlap)
    accept_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class LoginFailure(Base):
    """Failed logins per subject (``phone:<n>``, ``terminal:<id>``) and the lock they earn."""

    __tablename__ = "ics_login_failures"
    subject: Mapped[str] = mapped_column(String(80), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    first_at: Mapped[datetime] = mapped_column(DateTime)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class SeenRequest(Base):
    """Ids of signed requests already taken: a replay is refused."""

    __tablename__ = "ics_seen_requests"
    jti: Mapped[str] = mapped_column(String(80), primary_key=True)
    terminal_id: Mapped[str] = mapped_column(String(40))
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class SignedRequest(Base):
    """Signed requests as received, kept for non-repudiation."""

    __tablename__ = "ics_signed_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(128))
    terminal_id: Mapped[str] = mapped_column(String(40), index=True)
    user_id: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(120))
    jws: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime)


class SecurityChange(Base):
    """Bumped by whatever must reach every gateway at once: revocations, grants, keys."""

    __tablename__ = "ics_security_changes"
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(120))
