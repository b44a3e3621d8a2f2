"""What the customer domain refuses, as plain exceptions (no framework).

``service.py`` maps each to the kit's typed error, which the centre maps to an HTTP status:
Invalid → 400, Missing → 404, OutOfScope → 403, StaleVersion and Duplicate → 409.
"""

from __future__ import annotations

from typing import Any


class CustomerError(Exception):
    def __init__(self, message: str, fields: dict[str, list[str]] | None = None,
                 **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.extra = extra


class Invalid(CustomerError):
    """The data breaks a rule: a bad check digit, an unknown occupation, a bad mobile …"""


class Missing(CustomerError):
    """No such customer, or not one the caller may know of."""


class OutOfScope(CustomerError):
    """The caller sees the customer but may not do this to it."""


class StaleVersion(CustomerError):
    """The customer changed since the caller read it."""


class Duplicate(CustomerError):
    """Another customer already has this ID number."""
