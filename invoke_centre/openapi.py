"""OpenAPI 3.1 document generated from the live routing table."""

from __future__ import annotations

from typing import Any

from invoke_centre.registry import RoutingTable

_ERROR = {
    "type": "object",
    "required": ["ok", "error", "request_id"],
    "properties": {
        "ok": {"const": False},
        "request_id": {"type": "string"},
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object"},
            },
        },
    },
}

_STATUSES = {
    "400": "Invalid input; `error.fields` names each bad field",
    "401": "No or bad bearer token",
    "403": "The caller lacks the route's permission",
    "404": "Unknown named request, or object not found",
    "409": "Conflict, or the same idempotency key is still running",
    "413": "Body over the size limit",
    "422": "Idempotency key reused with another body, or a business rule refused it",
    "503": "No live instance of the service",
    "504": "No answer before the deadline",
}


def _errors() -> dict[str, Any]:
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    return {code: {"description": text, "content": ref} for code, text in _STATUSES.items()}


def document(table: RoutingTable, live: set[str], server_url: str = "/") -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for name, route in sorted(table.routes.items()):
        if not route.enabled:
            continue
        params = [{"name": "X-Request-Id", "in": "header", "required": False,
                   "schema": {"type": "string", "maxLength": 128}}]
        if route.mutating:
            params.append({"name": "Idempotency-Key", "in": "header", "required": True,
                           "schema": {"type": "string", "minLength": 1, "maxLength": 200}})
        paths[f"/v1/invoke/{name}"] = {"post": {
            "operationId": name,
            "tags": [route.service],
            "summary": route.summary or name,
            "description": (
                f"Service `{route.service}` {route.service_version}, method `{route.method}`; "
                f"permission `{route.permission}`; sensitivity `{route.sensitivity}`; "
                f"deadline {route.timeout_ms} ms"
                + (f"; alias of `{route.alias_of}`" if route.alias_of else "")
                + ("" if route.service in live or route.source == "operator"
                   else " — no live instance now")),
            "x-ics": {"permission": route.permission, "sensitivity": route.sensitivity,
                      "mutating": route.mutating, "timeout_ms": route.timeout_ms,
                      "service": route.service},
            "parameters": params,
            "requestBody": {"required": True,
                            "content": {"application/json": {"schema": route.input_schema}}},
            "responses": {"200": {"description": "Answered",
                                  "content": {"application/json": {"schema": {
                                      "type": "object",
                                      "properties": {"ok": {"const": True}, "data": {},
                                                     "request_id": {"type": "string"}}}}}},
                          **_errors()},
            "security": [{"bearer": []}],
        }}
    paths["/v1/catalog"] = {"get": {"operationId": "catalog", "tags": ["centre"],
                                    "summary": "Named requests this caller may invoke",
                                    "security": [{"bearer": []}],
                                    "responses": {"200": {"description": "The catalogue"}}}}
    paths["/healthz"] = {"get": {"operationId": "healthz", "tags": ["centre"],
                                 "summary": "Liveness of this gateway process",
                                 "responses": {"200": {"description": "Up"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Palm Insurance invoke centre", "version": str(table.version),
                 "description": "Named requests served by the mesh now (routing table version "
                                f"{table.version})."},
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {"schemas": {"Error": _ERROR},
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
