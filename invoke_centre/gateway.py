"""The gateway: a WSGI application that turns HTTP named requests into RPC calls.

One ``Centre`` per gateway process holds the routing table (re-read whenever
its version changes), the AMQP bus, the authenticator and the idempotency
store. ``create_app()`` builds the WSGI callable; gunicorn (gthread workers)
serves it, see ``deploy/gunicorn.conf.py``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import jsonschema
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from invoke_centre import metrics, openapi, protection, registry, wire
from invoke_centre.amqp import Bus, BusError, DeadlinePassed, Unavailable
from invoke_centre.audit_events import audit_event
from invoke_centre.auth import ADMIN_PERMISSION, Authenticator, Principal
from invoke_centre.busview import BusView, BusViewError
from invoke_centre.config import Settings
from invoke_centre.db import make_engine
from invoke_centre.idempotency import IdempotencyStore
from invoke_centre.registry import RegistryError, RoutingTable
from invoke_centre.security_api import RULES as SECURITY_RULES
from invoke_centre.security_api import SecurityApi
from invoke_centre.tokens import SecurityView

_log = logging.getLogger(__name__)

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
_STATIC = Path(__file__).parent / "static"
# how long after connecting a process waits for rollcall answers before saying 503
WARMUP_S = 1.0


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str,
                 fields: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.fields = status, code, message, fields


class RouteCache:
    """The routing table as this process sees it; re-read when its version moves."""

    def __init__(self, sessions: sessionmaker, poll_s: float) -> None:
        self._sessions = sessions
        self._poll_s = poll_s
        self.table = RoutingTable()
        self._validators: dict[str, tuple[registry.Route, jsonschema.protocols.Validator]] = {}
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self.refresh()
        if self._thread is None:
            self._thread = threading.Thread(target=self._poll, name="ics-routes", daemon=True)
            self._thread.start()

    def refresh(self) -> bool:
        try:
            with self._sessions() as session:
                version = registry.current_version(session)
                if version == self.table.version and self.table.routes:
                    return False
                table = registry.load_table(session)
        except SQLAlchemyError as exc:
            _log.warning("routing table unreadable (%s); is the database migrated?", exc)
            return False
        with self._lock:
            if table.version != self.table.version or table.routes != self.table.routes:
                self.table = table
                _log.info("routing table version %s: %d routes", table.version, len(table.routes))
                return True
        return False

    def _poll(self) -> None:
        while True:
            time.sleep(self._poll_s)
            self.refresh()

    def validator(self, route: registry.Route) -> jsonschema.protocols.Validator:
        """The route's compiled input schema; compiled once per routing-table version."""
        cached = self._validators.get(route.name)
        if cached is None or cached[0] is not route:
            cls = jsonschema.validators.validator_for(route.input_schema,
                                                      default=jsonschema.Draft202012Validator)
            cached = (route, cls(route.input_schema, format_checker=cls.FORMAT_CHECKER))
            self._validators[route.name] = cached
        return cached[1]


def field_errors(validator: jsonschema.protocols.Validator, params: Any) -> dict[str, list[str]]:
    """jsonschema errors as ``{"field.path": ["message", ...]}``."""
    fields: dict[str, list[str]] = {}
    for err in validator.iter_errors(params):
        path = [str(p) for p in err.absolute_path]
        if err.validator == "required" and isinstance(err.instance, dict):
            # jsonschema reports each missing property once, but names all in validator_value
            for missing in err.validator_value:
                msgs = fields.setdefault(".".join(path + [missing]), []) \
                    if missing not in err.instance else None
                if msgs is not None and "is required" not in msgs:
                    msgs.append("is required")
            continue
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            allowed = set(err.schema.get("properties", {}))
            for extra in sorted(set(err.instance) - allowed):
                fields.setdefault(".".join(path + [extra]), []).append("is not allowed")
            continue
        fields.setdefault(".".join(path) or "_", []).append(err.message)
    return fields


class Centre:
    """Everything one gateway process holds."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings.db_uri)
        self.sessions = sessionmaker(bind=self.engine, expire_on_commit=False)
        self.routes = RouteCache(self.sessions, settings.poll_s)
        self.bus = Bus(settings.amqp_uri)
        self.security = SecurityView(self.sessions, issuer=settings.token_issuer,
                                     audience=settings.token_audience, poll_s=settings.poll_s)
        self.auth = Authenticator(settings.tokens_file, verify=self.security.verify_access,
                                  lookup=self.security.principal)
        self.idempotency = IdempotencyStore(self.sessions, settings.idempotency_ttl_s)
        self.busview = BusView(settings.management_uri, settings.amqp_uri)
        self._started = False
        self._start_lock = threading.Lock()

    def start(self) -> None:
        with self._start_lock:
            if not self._started:
                self.routes.start()
                self.security.start()
                self.bus.start()
                self._started = True

    def audit(self, type_: str, *, who: dict, request_id: str, operation: str | None = None,
              object_: str | None = None, params: Any = None, outcome: str = "success",
              detail: dict | None = None) -> None:
        """Publish an audit event of the centre's own."""
        self.bus.publish_audit(audit_event(
            type_, source="invoke_centre", who=who,
            where={"request_id": request_id, "named_request": operation,
                   "service": "invoke_centre", "instance": self.bus.instance},
            operation=operation, object_=object_, params=params, outcome=outcome,
            detail=detail))

    def close(self) -> None:
        self.bus.close()
        self.engine.dispose()

    def available(self, route: registry.Route, *, wait: bool = False) -> bool:
        """Announced services need a live instance; operator-registered ones cannot tell.

        Just after this process connects, the answers to its rollcall are still arriving:
        with ``wait`` a call waits for them (at most ``WARMUP_S`` after connecting) rather
        than be refused for a service that is in fact up.
        """
        if route.source == "operator" or self.bus.live.is_live(route.service):
            return True
        if wait and self.bus.connected:
            return self.bus.live.wait_live(route.service, self.bus.connected_at + WARMUP_S)
        return False


def _json(status: int, body: dict, request_id: str, headers: dict | None = None) -> Response:
    resp = Response(json.dumps(body, ensure_ascii=False, default=str), status=status,
                    mimetype="application/json")
    resp.headers["X-Request-Id"] = request_id
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def _error(err: ApiError, request_id: str) -> Response:
    body: dict[str, Any] = {"code": err.code, "message": err.message}
    if err.fields:
        body["fields"] = err.fields
    return _json(err.status, {"ok": False, "error": body, "request_id": request_id}, request_id)


def _remote_error(error: dict) -> ApiError:
    exc_type = str(error.get("exc_type") or "")
    args = error.get("exc_args") or []
    message = str(error.get("value") or (args[0] if args else "") or exc_type)
    fields = error.get("fields")
    if fields is None and len(args) > 1 and isinstance(args[1], dict):
        fields = args[1]
    if exc_type in wire.ERROR_STATUS:
        status, code = wire.ERROR_STATUS[exc_type]
        if exc_type in ("MethodNotFound", "IncorrectSignature", "MalformedRequest"):
            message = f"the service cannot take this request as routed ({exc_type})"
        return ApiError(status, code, message, fields or None)
    if exc_type == "BadRequest":
        return ApiError(400, "invalid_input", message)
    _log.error("service failed: %s %s", exc_type, message)
    return ApiError(500, "service_error", "the service failed to answer this request")


def who(principal: Principal | None) -> dict[str, Any]:
    if principal is None:
        return {}
    return {"user_id": principal.user_id, "roles": list(principal.roles),
            "branch": principal.branch, "terminal_id": principal.terminal_id}


class Gateway(SecurityApi):
    def __init__(self, centre: Centre) -> None:
        self.centre = centre
        self.url_map = Map([
            Rule("/v1/invoke/<name>", methods=["POST"], endpoint="invoke"),
            Rule("/v1/catalog", methods=["GET"], endpoint="catalog"),
            Rule("/healthz", methods=["GET"], endpoint="healthz"),
            Rule("/metrics", methods=["GET"], endpoint="metrics"),
            Rule("/openapi.json", methods=["GET"], endpoint="openapi"),
            Rule("/docs", methods=["GET"], endpoint="docs"),
            Rule("/v1/ops/bus", methods=["GET"], endpoint="bus"),
            Rule("/v1/admin/services", methods=["GET"], endpoint="admin_services"),
            Rule("/v1/admin/instances", methods=["GET"], endpoint="admin_instances"),
            Rule("/v1/admin/routes", methods=["GET"], endpoint="admin_routes"),
            Rule("/v1/admin/routes/<name>", methods=["PATCH"], endpoint="admin_route"),
            Rule("/v1/admin/manifests", methods=["POST"], endpoint="admin_manifest"),
            Rule("/v1/admin/aliases/<alias>", methods=["PUT", "DELETE"], endpoint="admin_alias"),
            Rule("/v1/admin/changes", methods=["GET"], endpoint="admin_changes"),
            *[r.empty() for r in SECURITY_RULES],
        ], strict_slashes=False)

    # --- WSGI ---------------------------------------------------------------
    def __call__(self, environ, start_response):
        self.centre.start()
        request = Request(environ)
        rid = request.headers.get("X-Request-Id", "")
        if not _REQUEST_ID.match(rid):
            rid = uuid.uuid4().hex
        token = request_id_var.set(rid)
        try:
            response = self.dispatch(request, rid)
        finally:
            request_id_var.reset(token)
        return response(environ, start_response)

    def dispatch(self, request: Request, rid: str) -> Response:
        try:
            endpoint, args = self.url_map.bind_to_environ(request.environ).match()
            return getattr(self, f"on_{endpoint}")(request, rid, **args)
        except ApiError as err:
            return _error(err, rid)
        except NotFound:
            return _error(ApiError(404, "not_found", f"no such path: {request.path}"), rid)
        except MethodNotAllowed:
            return _error(ApiError(405, "method_not_allowed",
                                   f"{request.method} is not allowed on {request.path}"), rid)
        except HTTPException as exc:
            return _error(ApiError(exc.code or 400, "bad_request", exc.description or ""), rid)
        except Exception:
            _log.exception("unexpected error")
            return _error(ApiError(500, "internal", "internal error; quote the request id"), rid)

    # --- helpers ------------------------------------------------------------
    def _principal(self, request: Request) -> Principal:
        principal = self.centre.auth.authenticate(request.headers.get("Authorization"))
        if principal is None:
            raise ApiError(401, "unauthenticated", "a valid bearer token is required")
        return principal

    def _admin(self, request: Request, permission: str = "ics:routes", *,
               scoped: bool = False) -> Principal:
        """An operator holding ``permission`` (or ``ics:admin``). Mesh-wide areas (routes, the
        bus, keys, terminal classes, roles) need it everywhere; ``scoped`` areas (users,
        terminals) take it within a branch and check each object against that scope."""
        principal = self._principal(request)
        grants = [g for g in principal.grants
                  if g.grants(permission) or g.grants(ADMIN_PERMISSION)]
        if not scoped:
            grants = [g for g in grants if g.scope == "*"]
        if not grants:
            self._audit("over_privilege", principal, request_id_var.get(),
                        operation=f"{request.method} {request.path}", outcome="refused",
                        detail={"needs": permission, "everywhere": not scoped})
            raise ApiError(403, "forbidden", f"this needs the operator permission {permission}"
                           + ("" if scoped else " in every branch"))
        return principal

    def _audit(self, type_: str, principal: Principal | None, rid: str, **kw: Any) -> None:
        self.centre.audit(type_, who=who(principal), request_id=rid, **kw)

    def _publish(self, events, rid: str, operation: str) -> None:
        for type_, kw in events.items:
            self.centre.audit(type_, request_id=rid, operation=operation, **kw)

    @staticmethod
    def _dumps(body: Any) -> str:
        return json.dumps(body, ensure_ascii=False, default=str)

    def _raw(self, request: Request) -> bytes:
        limit = self.centre.settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise ApiError(413, "too_large", f"the body is over {limit} bytes")
        raw = request.stream.read(limit + 1)
        if len(raw) > limit:
            raise ApiError(413, "too_large", f"the body is over {limit} bytes")
        return raw

    def _body(self, request: Request, *, want_object: bool = True) -> Any:
        return self._parse(self._raw(request), want_object=want_object)

    @staticmethod
    def _parse(raw: bytes, *, want_object: bool = True) -> Any:
        if not raw.strip():
            if want_object:
                return {}
            raise ApiError(400, "invalid_json", "a JSON body is required")
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}")
        if want_object and not isinstance(body, dict):
            raise ApiError(400, "invalid_json", "the body must be a JSON object",
                           {"_": ["must be an object"]})
        return body

    def _timeout_s(self, request: Request, route: registry.Route) -> float:
        ms = min(route.timeout_ms, self.centre.settings.max_timeout_ms)
        asked = request.headers.get("X-Timeout-Ms")
        if asked:
            if not asked.isdigit() or int(asked) < 1:
                raise ApiError(400, "invalid_header", "X-Timeout-Ms must be a positive integer",
                               {"X-Timeout-Ms": ["must be a positive integer"]})
            ms = min(ms, int(asked))
        return ms / 1000

    # --- named requests -------------------------------------------------------
    def on_invoke(self, request: Request, rid: str, name: str) -> Response:
        started = time.perf_counter()
        status = 500
        try:
            response = self._invoke(request, rid, name)
            status = response.status_code
            return response
        except ApiError as err:
            status = err.status
            raise
        finally:
            label = name if name in self.centre.routes.table.routes else "_unknown"
            metrics.REQUESTS.labels(label, str(status)).inc()
            metrics.LATENCY.labels(label).observe(time.perf_counter() - started)

    def _invoke(self, request: Request, rid: str, name: str) -> Response:
        principal = self._principal(request)
        route = self.centre.routes.table.routes.get(name)
        if route is None or not route.enabled:
            raise ApiError(404, "unknown_request", f"no named request {name!r} is served")
        if not principal.may(route.permission):
            self._audit("over_privilege", principal, rid, operation=name, outcome="refused",
                        detail={"needs": route.permission})
            raise ApiError(403, "forbidden", f"{name} needs the permission {route.permission}")
        params, level, terminal = self._open(request, rid, route, principal)
        fields = field_errors(self.centre.routes.validator(route), params)
        if fields:
            raise ApiError(400, "invalid_input", "the parameters do not fit the request",
                           fields)
        timeout_s = self._timeout_s(request, route)
        key = None
        if route.mutating:
            key = request.headers.get("Idempotency-Key")
            if not key or not _IDEMPOTENCY_KEY.match(key):
                raise ApiError(400, "idempotency_key_required",
                               f"{name} changes data: send an Idempotency-Key header "
                               "(1-200 printable characters)",
                               {"Idempotency-Key": ["is required"]})
            outcome = self.centre.idempotency.begin(principal.user_id, key, name,
                                                    wire.digest(params))
            if outcome.kind == "mismatch":
                raise ApiError(422, "idempotency_key_reused",
                               "this Idempotency-Key was used with another request body")
            if outcome.kind == "running":
                raise ApiError(409, "idempotency_key_in_use",
                               "a request with this Idempotency-Key is still running")
            if outcome.kind == "replay":
                body = json.loads(outcome.response)
                body["request_id"] = rid
                replay = _json(outcome.status, body, rid, {"Idempotent-Replayed": "true"})
                return self._seal(replay, level, terminal)
        try:
            response = self._call(route, principal, params, rid, timeout_s, key)
        except ApiError as err:
            if key:
                self._remember(principal, key, _error(err, rid))
            raise
        except BaseException:
            if key:  # nothing sure was done: free the key for a retry
                self.centre.idempotency.finish(principal.user_id, key, 500, "")
            raise
        if key:  # kept in the clear; sealed again for each replay
            self._remember(principal, key, response)
        return self._seal(response, level, terminal)

    @staticmethod
    def _seal(response: Response, level: str, terminal) -> Response:
        """A sealed request's successful answer goes back encrypted to the device."""
        if level != "sealed" or response.status_code != 200:
            return response
        try:
            sealed = protection.seal_answer(response.get_data(), terminal)
        except protection.ProtectionError as exc:
            raise ApiError(401, "protection_failed", str(exc))
        response.set_data(sealed)
        response.mimetype = protection.JOSE
        return response

    def _open(self, request: Request, rid: str, route: registry.Route, principal: Principal):
        """The parameters, checked against the protection the route and terminal need."""
        security = self.centre.security
        terminal = security.terminal(principal.terminal_id)
        cls = security.classes.get(terminal.terminal_class) if terminal else None
        needed = protection.required_level(route.sensitivity,
                                           cls.min_sensitivity if cls else None)
        raw = self._raw(request)
        try:
            opened = protection.open_request(raw, request.content_type or "", name=route.name,
                                             terminal=terminal, view=security,
                                             sessions=self.centre.sessions)
        except protection.ProtectionError as exc:
            if exc.abnormal:
                self._audit("abnormal", principal, rid, operation=route.name, outcome="refused",
                            detail={"reason": str(exc)})
            raise ApiError(401, "protection_failed", str(exc))
        if opened is None:
            opened = protection.Opened(self._parse(raw), "normal")
        if opened.level == "sealed" and not terminal.enc_jwk:
            raise ApiError(401, "protection_failed", "the terminal registered no encryption "
                           "key: a sealed answer cannot be returned")
        if protection.LEVELS[opened.level] < protection.LEVELS[needed]:
            raise ApiError(401, "protection_required",
                           f"{route.name} must be sent {needed} from this terminal")
        if not isinstance(opened.params, dict):
            raise ApiError(400, "invalid_json", "the parameters must be a JSON object",
                           {"_": ["must be an object"]})
        if opened.jws:
            from invoke_centre.models import SignedRequest

            with self.centre.sessions() as session:  # kept for non-repudiation
                session.add(SignedRequest(request_id=rid, terminal_id=terminal.id,
                                          user_id=principal.user_id, name=route.name,
                                          jws=opened.jws, at=registry.utcnow()))
                session.commit()
        return opened.params, opened.level, terminal

    def _remember(self, principal: Principal, key: str, response: Response) -> None:
        self.centre.idempotency.finish(principal.user_id, key, response.status_code,
                                       response.get_data(as_text=True))

    def _call(self, route: registry.Route, principal: Principal, params: dict, rid: str,
              timeout_s: float, key: str | None) -> Response:
        if not self.centre.available(route, wait=True):
            raise ApiError(503, "no_instance",
                           f"no live instance of {route.service} serves {route.name} now")
        deadline_ms = int((time.time() + timeout_s) * 1000)
        headers = {
            "nameko.request_id": rid,
            "nameko.call_id_stack": [f"ics.gateway.{rid}"],
            "nameko.user_id": principal.user_id,
            "nameko.roles": ",".join(principal.roles),
            "nameko.branch": principal.branch or "",
            "nameko.terminal_id": principal.terminal_id or "",
            "nameko.permissions": ",".join(sorted(principal.permissions)),
            "nameko.grants": ",".join(str(g) for g in principal.grants),
            "nameko.deadline": deadline_ms,
            "nameko.named_request": route.alias_of or route.name,
        }
        if key:
            headers["nameko.idempotency_key"] = key
        try:
            answer = self.centre.bus.call(route.service, route.method, params, headers=headers,
                                          timeout_s=timeout_s)
        except Unavailable as exc:
            raise ApiError(503, "no_instance", f"{route.service} is unavailable: {exc}")
        except DeadlinePassed:
            raise ApiError(504, "deadline_passed",
                           f"{route.service} did not answer within {int(timeout_s * 1000)} ms")
        except BusError as exc:
            raise ApiError(502, "bad_answer", str(exc))
        if not isinstance(answer, dict) or not isinstance(answer.get("error") or {}, dict):
            raise ApiError(502, "bad_answer", "the service answered in an unknown shape")
        if answer.get("error"):
            raise _remote_error(answer["error"])
        return _json(200, {"ok": True, "data": answer.get("result"), "request_id": rid}, rid)

    # --- reading the mesh -------------------------------------------------------
    def on_catalog(self, request: Request, rid: str) -> Response:
        principal = self._principal(request)
        terminal = self.centre.security.terminal(principal.terminal_id)
        cls = self.centre.security.classes.get(terminal.terminal_class) if terminal else None
        floor = cls.min_sensitivity if cls else None
        items = [{
            "name": r.name, "summary": r.summary, "service": r.service,
            "permission": r.permission, "mutating": r.mutating,
            # what this caller's terminal must send: the route's, or its class's if stronger
            "sensitivity": protection.required_level(r.sensitivity, floor),
            "timeout_ms": r.timeout_ms, "input_schema": r.input_schema,
            "available": self.centre.available(r), "alias_of": r.alias_of,
        } for r in sorted(self.centre.routes.table.routes.values(), key=lambda r: r.name)
            if r.enabled and principal.may(r.permission)]
        return _json(200, {"ok": True, "data": {"version": self.centre.routes.table.version,
                                                "requests": items}, "request_id": rid}, rid)

    def on_healthz(self, request: Request, rid: str) -> Response:
        """200 when this process can route; 503 while it has no bus connection."""
        up = self.centre.bus.connected
        return _json(200 if up else 503, {"ok": up, "data": {
            "bus": "connected" if self.centre.bus.connected else "disconnected",
            "routes": len(self.centre.routes.table.routes),
            "version": self.centre.routes.table.version}, "request_id": rid}, rid)

    def on_metrics(self, request: Request, rid: str) -> Response:
        def bus():
            try:
                return self.centre.busview.snapshot()
            except BusViewError:
                return None

        return Response(metrics.exposition(self.centre.bus.live.snapshot, bus),
                        mimetype="text/plain; version=0.0.4")

    def on_openapi(self, request: Request, rid: str) -> Response:
        live = {s for s, i in self.centre.bus.live.snapshot().items() if i}
        return _json(200, openapi.document(self.centre.routes.table, live), rid)

    def on_docs(self, request: Request, rid: str) -> Response:
        return Response((_STATIC / "docs.html").read_bytes(), mimetype="text/html")

    def on_bus(self, request: Request, rid: str) -> Response:
        self._admin(request, "ics:ops")
        try:
            view = self.centre.busview.snapshot(live=self.centre.bus.live.snapshot())
        except BusViewError as exc:
            raise ApiError(503, "management_unavailable", str(exc))
        return _json(200, {"ok": True, "data": view, "request_id": rid}, rid)

    # --- admin ----------------------------------------------------------------
    def _ok(self, data: Any, rid: str, status: int = 200) -> Response:
        return _json(status, {"ok": True, "data": data, "request_id": rid}, rid)

    def _write(self, fn, *args, audit: tuple | None = None, rid: str | None = None, **kwargs):
        """Run ``fn(session, ...)`` in one transaction; then publish the admin change and
        make this process see it at once (the others see it at their next poll)."""
        with self.centre.sessions() as session:
            try:
                result = fn(session, *args, **kwargs)
                session.commit()
            except RegistryError as err:
                session.rollback()
                raise ApiError(err.status, "invalid_change" if err.status == 400 else
                               {401: "unauthenticated", 403: "forbidden", 404: "not_found",
                                409: "conflict"}.get(err.status, "error"),
                               str(err), err.fields or None)
            except wire.ManifestError as err:
                session.rollback()
                raise ApiError(400, "invalid_manifest", "the manifest breaks the contract",
                               err.fields)
        self.centre.routes.refresh()
        self.centre.security.refresh()
        if audit is not None:
            principal, operation, object_, params = audit
            if callable(object_):  # named after the result, e.g. a new user's id
                object_ = object_(result)
            self._audit("admin_change", principal, rid or request_id_var.get(),
                        operation=operation, object_=object_, params=params)
        return result

    def on_admin_services(self, request: Request, rid: str) -> Response:
        self._admin(request)
        table = self.centre.routes.table
        live = self.centre.bus.live
        out = [{"name": s, "source": src, "live_instances": live.instances(s),
                "requests": sorted(r.name for r in table.routes.values()
                                   if r.service == s and not r.alias_of),
                "version": next((r.service_version for r in table.routes.values()
                                 if r.service == s), None)}
               for s, src in sorted(table.services.items())]
        return self._ok(out, rid)

    def on_admin_instances(self, request: Request, rid: str) -> Response:
        self._admin(request)
        with self.centre.sessions() as session:
            rows = registry.list_instances(session)
        live = self.centre.bus.live
        return self._ok([{"id": i.id, "service": i.service, "version": i.version,
                          "heartbeat_s": i.heartbeat_s, "started_at": i.started_at.isoformat(),
                          "last_seen": i.last_seen.isoformat(),
                          "gone_at": i.gone_at.isoformat() if i.gone_at else None,
                          "live": i.id in live.instances(i.service)} for i in rows], rid)

    def on_admin_routes(self, request: Request, rid: str) -> Response:
        self._admin(request)
        table = self.centre.routes.table
        return self._ok({"version": table.version, "routes": [
            {**r.to_dict(), "available": self.centre.available(r)}
            for r in sorted(table.routes.values(), key=lambda r: r.name)]}, rid)

    def on_admin_route(self, request: Request, rid: str, name: str) -> Response:
        admin = self._admin(request)
        body = self._body(request)
        unknown = set(body) - {"enabled", "timeout_ms", "permission", "sensitivity"}
        if unknown:
            raise ApiError(400, "invalid_change", "unknown fields",
                           {k: ["is not a route setting"] for k in sorted(unknown)})
        route = self._write(registry.change_route, name, actor=admin.user_id, **body,
                            audit=(admin, "admin.route.change", f"route:{name}", body), rid=rid)
        return self._ok(route.to_dict(), rid)

    def on_admin_manifest(self, request: Request, rid: str) -> Response:
        admin = self._admin(request)
        manifest = self._body(request)
        service = manifest.get("service")
        if isinstance(service, str) and self.centre.bus.live.is_live(service):
            raise ApiError(409, "conflict", f"{service} announces itself; its own manifest "
                           "defines its routes (change routes with PATCH instead)")
        changed = self._write(registry.accept_manifest, manifest, source="operator",
                              actor=admin.user_id, rid=rid,
                              audit=(admin, "admin.manifest.register", f"service:{service}",
                                     None))
        return self._ok({"changed": changed, "version": self.centre.routes.table.version}, rid,
                        201 if changed else 200)

    def on_admin_alias(self, request: Request, rid: str, alias: str) -> Response:
        admin = self._admin(request)
        if request.method == "DELETE":
            self._write(registry.remove_alias, alias, actor=admin.user_id, rid=rid,
                        audit=(admin, "admin.alias.remove", f"route:{alias}", None))
            return self._ok({"alias": alias, "removed": True}, rid)
        body = self._body(request)
        target = body.get("target")
        if not isinstance(target, str):
            raise ApiError(400, "invalid_change", "give the target route",
                           {"target": ["is required"]})
        self._write(registry.set_alias, alias, target, actor=admin.user_id, rid=rid,
                    audit=(admin, "admin.alias.set", f"route:{alias}", body))
        return self._ok({"alias": alias, "target": target}, rid)

    def on_admin_changes(self, request: Request, rid: str) -> Response:
        self._admin(request)
        try:
            since = int(request.args.get("since", "0"))
            limit = min(int(request.args.get("limit", "200")), 1000)
        except ValueError:
            raise ApiError(400, "invalid_query", "since and limit must be integers",
                           {"since": ["integer"], "limit": ["integer"]})
        with self.centre.sessions() as session:
            rows = registry.list_changes(session, since=since, limit=limit)
        return self._ok([{"version": c.version, "at": c.at.isoformat(), "actor": c.actor,
                          "kind": c.kind, "target": c.target, "detail": c.detail}
                         for c in rows], rid)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def configure_logging(level: str | None = None) -> None:
    level = (level or os.environ.get("ICS_LOG_LEVEL") or "INFO").upper()
    handler = logging.StreamHandler()
    handler.addFilter(_RequestIdFilter())
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s request_id=%(request_id)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("pika").setLevel(logging.WARNING)


def create_app(settings: Settings | None = None) -> Gateway:
    return Gateway(Centre(settings or Settings()))
