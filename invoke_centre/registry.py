"""The routing table: what the registrar and the admin API write, what gateways read.

Functions take a SQLAlchemy session and never commit; the caller owns the
transaction. A route is computed, not stored: the service's current manifest,
then the operator's settings for that name, then aliases. Every change that
alters routes appends a row to ``ics_changes``; the newest row's number is the
table's version, which gateways poll.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from logging import getLogger
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from invoke_centre import wire
from invoke_centre.models import Alias, Change, Instance, Manifest, RouteSetting, Service

_log = getLogger(__name__)


class RegistryError(ValueError):
    def __init__(self, message: str, fields: dict[str, list[str]] | None = None, status: int = 400):
        super().__init__(message)
        self.fields = fields or {}
        self.status = status


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class Route:
    name: str
    service: str
    method: str
    permission: str
    sensitivity: str
    timeout_ms: int
    mutating: bool
    input_schema: dict[str, Any]
    summary: str
    enabled: bool
    service_version: str
    source: str  # announced | operator
    alias_of: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RoutingTable:
    version: int = 0
    routes: dict[str, Route] = field(default_factory=dict)
    # service -> source (announced services are tracked live; operator ones are not)
    services: dict[str, str] = field(default_factory=dict)


def current_version(session: Session) -> int:
    return session.scalar(select(func.max(Change.version))) or 0


def _record(session: Session, *, actor: str, kind: str, target: str, detail: dict) -> int:
    change = Change(at=utcnow(), actor=actor, kind=kind, target=target, detail=detail)
    session.add(change)
    session.flush()
    return change.version


def load_table(session: Session) -> RoutingTable:
    """Compute every route from the current manifests, operator settings and aliases."""
    version = current_version(session)
    rows = session.execute(
        select(Service, Manifest).join(Manifest, Manifest.id == Service.manifest_id)
        .order_by(Service.first_seen, Service.name)
    ).all()
    settings = {s.name: s for s in session.scalars(select(RouteSetting))}
    routes: dict[str, Route] = {}
    services: dict[str, str] = {}
    for service, manifest in rows:
        services[service.name] = service.source
        for req in manifest.body["requests"]:
            if req["name"] in routes:
                # first registered wins; a later service cannot take a name over
                _log.warning("%s also claimed by %s; kept %s", req["name"], service.name,
                             routes[req["name"]].service)
                continue
            s = settings.get(req["name"])
            routes[req["name"]] = Route(
                name=req["name"],
                service=service.name,
                method=req["method"],
                permission=(s and s.permission) or req["permission"],
                sensitivity=(s and s.sensitivity) or req["sensitivity"],
                timeout_ms=(s and s.timeout_ms) or req["timeout_ms"],
                mutating=req["mutating"],
                input_schema=req["input_schema"],
                summary=req["summary"],
                enabled=True if s is None or s.enabled is None else s.enabled,
                service_version=manifest.version,
                source=service.source,
            )
    for alias in session.scalars(select(Alias)):
        target = routes.get(alias.target)
        if target is not None and alias.alias not in routes:
            routes[alias.alias] = Route(**{**target.to_dict(), "name": alias.alias,
                                           "alias_of": target.name})
    return RoutingTable(version=version, routes=routes, services=services)


def accept_manifest(session: Session, manifest: dict, *, source: str, actor: str) -> bool:
    """Make ``manifest`` its service's current one; True when the routes changed."""
    manifest = wire.check_manifest(manifest)
    name = manifest["service"]
    dig = wire.manifest_digest({**manifest, "source": source})
    service = session.get(Service, name)
    if service is not None:
        current = session.get(Manifest, service.manifest_id)
        if current is not None and current.digest == dig:
            return False
    now = utcnow()
    body = {k: v for k, v in manifest.items() if k != "instance"}
    row = Manifest(service=name, version=manifest["version"], source=source, digest=dig,
                   body=body, created_at=now)
    session.add(row)
    session.flush()
    if service is None:
        session.add(Service(name=name, manifest_id=row.id, source=source, first_seen=now,
                            updated_at=now))
    else:
        service.manifest_id, service.source, service.updated_at = row.id, source, now
    _record(session, actor=actor, kind="manifest", target=name,
            detail={"version": manifest["version"], "source": source,
                    "requests": [r["name"] for r in manifest["requests"]]})
    return True


def seen_instance(session: Session, manifest_or_beat: dict, *, announce: bool) -> None:
    """Record an announcement or heartbeat of an instance (for listing, not for routing)."""
    now = utcnow()
    inst = session.get(Instance, manifest_or_beat["instance"])
    if inst is None:
        if not announce:
            return  # a heartbeat before its announcement: the rollcall will bring it
        inst = Instance(id=manifest_or_beat["instance"], service=manifest_or_beat["service"],
                        version=manifest_or_beat.get("version", "0"),
                        heartbeat_s=float(manifest_or_beat.get("heartbeat_s",
                                                               wire.DEFAULT_HEARTBEAT_S)),
                        started_at=now, last_seen=now)
        session.add(inst)
    inst.last_seen = now
    inst.gone_at = None
    if announce:
        inst.version = manifest_or_beat.get("version", inst.version)
        inst.heartbeat_s = float(manifest_or_beat.get("heartbeat_s", inst.heartbeat_s))


def instance_gone(session: Session, instance_id: str) -> None:
    inst = session.get(Instance, instance_id)
    if inst is not None and inst.gone_at is None:
        inst.gone_at = utcnow()


def sweep_instances(session: Session) -> int:
    """Mark instances whose heartbeats stopped as gone; forget long-gone ones."""
    now = utcnow()
    n = 0
    for inst in session.scalars(select(Instance).where(Instance.gone_at.is_(None))):
        if inst.last_seen < now - timedelta(seconds=inst.heartbeat_s * wire.MISSED_HEARTBEATS):
            inst.gone_at = now
            n += 1
    session.execute(delete(Instance).where(Instance.gone_at < now - timedelta(days=1)))
    return n


def list_instances(session: Session) -> list[Instance]:
    return list(session.scalars(select(Instance).order_by(Instance.service, Instance.id)))


def list_changes(session: Session, *, since: int = 0, limit: int = 200) -> list[Change]:
    return list(session.scalars(select(Change).where(Change.version > since)
                                .order_by(Change.version).limit(limit)))


def change_route(session: Session, name: str, *, actor: str, enabled: bool | None = None,
                 timeout_ms: int | None = None, permission: str | None = None,
                 sensitivity: str | None = None) -> Route:
    """Enable or disable a route, or change its timeout, permission or sensitivity."""
    table = load_table(session)
    route = table.routes.get(name)
    if route is None:
        raise RegistryError(f"no route named {name}", status=404)
    if route.alias_of:
        raise RegistryError(f"{name} is an alias of {route.alias_of}; change that route",
                            status=409)
    fields: dict[str, list[str]] = {}
    if timeout_ms is not None and (isinstance(timeout_ms, bool) or not (
            isinstance(timeout_ms, int) and 1 <= timeout_ms <= 600000)):
        fields["timeout_ms"] = ["must be an integer from 1 to 600000"]
    if permission is not None and not (isinstance(permission, str) and 0 < len(permission) <= 120):
        fields["permission"] = ["must be a non-empty string of at most 120 characters"]
    if sensitivity is not None and sensitivity not in wire.SENSITIVITIES:
        fields["sensitivity"] = [f"one of {', '.join(wire.SENSITIVITIES)}"]
    if enabled is not None and not isinstance(enabled, bool):
        fields["enabled"] = ["must be true or false"]
    if fields:
        raise RegistryError("invalid route change", fields)
    setting = session.get(RouteSetting, name) or RouteSetting(name=name, updated_at=utcnow())
    session.add(setting)
    changed = {}
    for key, value in (("enabled", enabled), ("timeout_ms", timeout_ms),
                       ("permission", permission), ("sensitivity", sensitivity)):
        if value is not None:
            setattr(setting, key, value)
            changed[key] = value
    if not changed:
        raise RegistryError("nothing to change",
                            {"_": ["give enabled, timeout_ms, permission or sensitivity"]})
    setting.updated_at = utcnow()
    _record(session, actor=actor, kind="route", target=name, detail=changed)
    session.flush()
    return load_table(session).routes[name]


def set_alias(session: Session, alias: str, target: str, *, actor: str) -> None:
    import re

    if not re.match(wire.REQUEST_SCHEMA["properties"]["name"]["pattern"], alias or ""):
        raise RegistryError("invalid alias", {"alias": ["must look like domain.action"]})
    table = load_table(session)
    if target not in table.routes or table.routes[target].alias_of:
        raise RegistryError(f"no route named {target}", {"target": ["unknown route"]}, 404)
    if alias in table.routes and table.routes[alias].alias_of is None:
        raise RegistryError(f"{alias} is a route of its own", {"alias": ["taken"]}, 409)
    row = session.get(Alias, alias) or Alias(alias=alias, target=target, updated_at=utcnow())
    row.target, row.updated_at = target, utcnow()
    session.add(row)
    _record(session, actor=actor, kind="alias", target=alias, detail={"target": target})


def remove_alias(session: Session, alias: str, *, actor: str) -> None:
    row = session.get(Alias, alias)
    if row is None:
        raise RegistryError(f"no alias named {alias}", status=404)
    session.delete(row)
    _record(session, actor=actor, kind="unalias", target=alias, detail={"target": row.target})
