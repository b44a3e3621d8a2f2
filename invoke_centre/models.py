"""The centre's own tables: manifests, routes' operator settings, instances, changes, idempotency."""

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
