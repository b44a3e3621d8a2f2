"""Masking personal data — the kit's name for ``invoke_centre.privacy``."""

from invoke_centre.privacy import (  # noqa: F401
    PERSONAL_KEYS,
    SECRET_KEYS,
    mask_id_number,
    mask_mobile,
    mask_params,
    mask_value,
)
