"""Typed errors a service raises; the centre maps them to HTTP statuses.

They cross the bus by nameko's own error serialisation: ``exc_type`` is the
class name, ``exc_args`` is ``[message, fields]``. The centre reads both, so a
service in another language sends the same two things.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Base of the errors the centre understands."""

    def __init__(self, message: str, fields: dict[str, Any] | None = None):
        super().__init__(message, fields or {})
        self.message = message
        self.fields = fields or {}

    def __str__(self) -> str:
        return self.message


class ValidationError(ServiceError):
    """Bad input: 400, with field-level messages in ``fields``."""


class NotFound(ServiceError):
    """The object does not exist or the caller may not know it exists: 404."""


class Forbidden(ServiceError):
    """The caller may not do this to this object: 403."""


class Conflict(ServiceError):
    """The object changed or already exists: 409."""


class Unprocessable(ServiceError):
    """Well-formed but against a business rule: 422."""


TYPED_ERRORS = (ValidationError, NotFound, Forbidden, Conflict, Unprocessable)
