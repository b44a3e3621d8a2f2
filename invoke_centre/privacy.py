"""Masking personal data in answers, logs and audit records.

Resident ID numbers keep their first six (area) and last four characters, mobile numbers their
first three and last four: ``530102********1234``, ``138****5678``. Other values under
personal-data keys are masked to their first and last character.
"""

from __future__ import annotations

from typing import Any

# keys whose values are personal data wherever they appear in parameters
PERSONAL_KEYS = frozenset({"id_number", "id_no", "mobile", "phone", "imsi", "imei", "email",
                           "password", "pin", "bank_account", "account_no"})
SECRET_KEYS = frozenset({"password", "pin", "secret", "token", "refresh_token"})


def mask_id_number(value: str) -> str:
    value = str(value)
    if len(value) <= 10:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


def mask_mobile(value: str) -> str:
    value = str(value)
    if len(value) <= 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]


def mask_value(key: str, value: Any) -> Any:
    if value is None or value == "":
        return value
    if key in SECRET_KEYS:
        return "***"
    if key in ("id_number", "id_no"):
        return mask_id_number(value)
    if key in ("mobile", "phone"):
        return mask_mobile(value)
    text = str(value)
    return text[0] + "*" * max(1, len(text) - 2) + text[-1] if len(text) > 2 else "**"


def mask_params(params: Any) -> Any:
    """A copy of ``params`` with every personal-data value masked, at any depth."""
    if isinstance(params, dict):
        return {k: (mask_value(k, v) if k in PERSONAL_KEYS and not isinstance(v, (dict, list))
                    else mask_params(v)) for k, v in params.items()}
    if isinstance(params, list):
        return [mask_params(v) for v in params]
    return params
