"""The audit event: one JSON object per thing that happened, for the audit trail.

Published persistent on the durable topic exchange ``ics.audit`` with routing key
``<type>.<source>`` (``docs/wire-contract.md``). Built here for the centre and, through
``invoke_centre.kit.AuditTrail``, for every service.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from invoke_centre import wire
from invoke_centre.privacy import mask_params


def audit_event(type_: str, *, source: str, who: dict[str, Any] | None = None,
                where: dict[str, Any] | None = None, operation: str | None = None,
                object_: str | None = None, params: Any = None, outcome: str = "success",
                detail: dict[str, Any] | None = None) -> dict[str, Any]:
    """The body of one audit event, with personal data in ``params`` masked."""
    if type_ not in wire.AUDIT_TYPES:
        raise ValueError(f"unknown audit event type {type_!r}")
    if outcome not in wire.AUDIT_OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    return {
        "event_id": uuid.uuid4().hex,
        "type": type_,
        "at": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00",
                                                                                      "Z"),
        "source": source,
        "who": who or {},
        "where": where or {},
        "operation": operation,
        "object": object_,
        "params": mask_params(params) if params is not None else None,
        "outcome": outcome,
        "detail": detail or {},
    }


def who_of(caller: Any) -> dict[str, Any]:
    return {"user_id": caller.user_id, "roles": list(caller.roles), "branch": caller.branch,
            "terminal_id": caller.terminal_id}


