"""The public wire contract of the mesh, in one place.

Exchange and routing-key names, the JSON Schema a manifest must satisfy, the
context headers that travel with every RPC, and the table that maps a typed
remote error to an HTTP status. ``docs/wire-contract.md`` describes the same
things for people; a service in another language follows that document.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import jsonschema

REGISTRY_EXCHANGE = "ics.registry"
RPC_EXCHANGE = "nameko-rpc"
RPC_QUEUE_TEMPLATE = "rpc-{}"

ANNOUNCE = "announce"
HEARTBEAT = "heartbeat"
GOODBYE = "goodbye"
ROLLCALL = "rollcall"

# Context headers the centre sets on every RPC (nameko strips the prefix and
# hands them to the worker as context data).
HEADER_PREFIX = "nameko."
CONTEXT_KEYS = (
    "request_id",
    "user_id",
    "roles",
    "branch",
    "terminal_id",
    "permissions",
    "grants",
    "deadline",
    "idempotency_key",
    "named_request",
)

SENSITIVITIES = ("normal", "signed", "sealed")

# --- audit events (see docs/wire-contract.md, "Audit events") -----------------------------
AUDIT_EXCHANGE = "ics.audit"
# kinds recorded whatever the audit policy says
ALWAYS_AUDITED = ("login", "login_failed", "logout", "lockout", "abnormal", "over_privilege",
                  "admin_change", "refresh_reuse", "audit_policy_change")
AUDIT_TYPES = ALWAYS_AUDITED + ("sensitive_read", "data_change", "data_read", "token_refresh")
AUDIT_OUTCOMES = ("success", "failure", "refused")

_NAME = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
_SERVICE = r"^[a-z][a-z0-9_]*$"

REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "method", "permission"],
    "properties": {
        "name": {"type": "string", "pattern": _NAME, "maxLength": 120},
        "method": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
        "permission": {"type": "string", "minLength": 1, "maxLength": 120},
        "sensitivity": {"enum": list(SENSITIVITIES)},
        "timeout_ms": {"type": "integer", "minimum": 1, "maximum": 600000},
        "mutating": {"type": "boolean"},
        "input_schema": {"type": "object"},
        "summary": {"type": "string", "maxLength": 500},
    },
}

MANIFEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["service", "requests"],
    "properties": {
        "service": {"type": "string", "pattern": _SERVICE, "maxLength": 60},
        "version": {"type": "string", "maxLength": 40},
        "instance": {"type": "string", "maxLength": 120},
        "heartbeat_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
        "requests": {"type": "array", "items": REQUEST_SCHEMA},
    },
}

_manifest_validator = jsonschema.Draft202012Validator(MANIFEST_SCHEMA)

DEFAULT_TIMEOUT_MS = 3000
DEFAULT_HEARTBEAT_S = 5.0
# An instance is out of rotation after this many missed heartbeats.
MISSED_HEARTBEATS = 3

# exc_type of a nameko error answer -> (HTTP status, error code)
ERROR_STATUS: dict[str, tuple[int, str]] = {
    "ValidationError": (400, "invalid_input"),
    "NotFound": (404, "not_found"),
    "Forbidden": (403, "forbidden"),
    "Conflict": (409, "conflict"),
    "Unprocessable": (422, "unprocessable"),
    "MethodNotFound": (502, "bad_route"),
    "IncorrectSignature": (502, "bad_route"),
    "MalformedRequest": (502, "bad_route"),
}


class ManifestError(ValueError):
    """A manifest that does not satisfy the contract; ``fields`` says where."""

    def __init__(self, fields: dict[str, list[str]]):
        super().__init__("invalid manifest")
        self.fields = fields


def check_manifest(manifest: Any) -> dict[str, Any]:
    """Validate a manifest and fill the optional fields with their defaults."""
    errors = sorted(_manifest_validator.iter_errors(manifest), key=lambda e: list(e.path))
    if errors:
        fields: dict[str, list[str]] = {}
        for err in errors:
            where = ".".join(str(p) for p in err.path) or "_"
            fields.setdefault(where, []).append(err.message)
        raise ManifestError(fields)
    names = [r["name"] for r in manifest["requests"]]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ManifestError({"requests": [f"named twice: {', '.join(dupes)}"]})
    out = dict(manifest)
    out.setdefault("version", "0")
    out.setdefault("heartbeat_s", DEFAULT_HEARTBEAT_S)
    out["requests"] = [
        {
            "sensitivity": "normal",
            "timeout_ms": DEFAULT_TIMEOUT_MS,
            "mutating": False,
            "input_schema": {"type": "object"},
            "summary": "",
            **r,
        }
        for r in manifest["requests"]
    ]
    return out


def digest(obj: Any) -> str:
    """A stable digest of a JSON value (sorted keys), for change detection and idempotency."""
    raw = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()


def manifest_digest(manifest: dict[str, Any]) -> str:
    """What identifies a manifest's content: everything but the announcing instance."""
    return digest({k: v for k, v in manifest.items() if k not in ("instance",)})
