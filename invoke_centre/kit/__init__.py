"""The service kit: what a nameko service uses to join the mesh in a few lines.

    from invoke_centre.kit import Caller, Member, serves, NotFound

    class WeatherService:
        name = "weather"
        member = Member(version="1.0.0")
        caller = Caller()

        @serves("weather.forecast", permission="weather:read", input_schema={...})
        def forecast(self, params):
            ...
"""

from invoke_centre.audit_events import audit_event
from invoke_centre.db import run_migrations
from invoke_centre.kit.audit import AuditTrail
from invoke_centre.kit.context import Caller, CallerContext, Grant
from invoke_centre.kit.database import Database, UnitOfWork, make_engine, upgrade
from invoke_centre.kit.errors import (
    Conflict,
    Forbidden,
    NotFound,
    ServiceError,
    Unprocessable,
    ValidationError,
)
from invoke_centre.kit.membership import Member, build_manifest, requests_of, serves
from invoke_centre.privacy import mask_id_number, mask_mobile, mask_params

__all__ = [
    "AuditTrail",
    "Grant",
    "audit_event",
    "mask_id_number",
    "mask_mobile",
    "mask_params",
    "Caller",
    "CallerContext",
    "Conflict",
    "Database",
    "Forbidden",
    "Member",
    "NotFound",
    "ServiceError",
    "UnitOfWork",
    "Unprocessable",
    "ValidationError",
    "build_manifest",
    "make_engine",
    "requests_of",
    "run_migrations",
    "serves",
    "upgrade",
]
