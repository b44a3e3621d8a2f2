"""Payload protection by sensitivity (P2): normal, signed, sealed — standard JOSE.

- ``normal``: a JSON body; TLS protects it in transit.
- ``signed``: the body is a JWS (compact) made with the device's signing key (``EdDSA`` over
  Ed25519, or ``ES256``) over ``{"name", "params", "jti", "iat"}``; verified with the public key
  the device registered, kept for non-repudiation; ``jti`` may be used once, ``iat`` must be
  within five minutes.
- ``sealed``: that JWS, encrypted to the centre's encryption key as a JWE (``ECDH-ES+A256KW``,
  ``A256GCM``, ``kid`` from ``/v1/auth/keys``); the answer comes back as a JWE encrypted to the
  device's registered encryption key.

What a request needs is the stronger of its route's sensitivity and its terminal class's least
protection. A stronger protection than needed is always accepted.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from joserfc import jwe
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from invoke_centre.login import device_key, verify_device_jws
from invoke_centre.models import SeenRequest
from invoke_centre.registry import utcnow
from invoke_centre.tokens import SecurityView, TerminalInfo

LEVELS = {"normal": 0, "signed": 1, "sealed": 2}
MAX_AGE_S = 300
JWE_ALGS = ["ECDH-ES+A256KW", "A256GCM"]
JOSE = "application/jose"


class ProtectionError(Exception):
    """401: the protection is missing, broken or replayed; ``abnormal`` when it smells."""

    def __init__(self, message: str, *, abnormal: bool = True) -> None:
        super().__init__(message)
        self.abnormal = abnormal


@dataclass
class Opened:
    params: Any
    level: str
    jws: str | None = None


def required_level(route_sensitivity: str, class_min: str | None) -> str:
    return max(route_sensitivity, class_min or "normal", key=LEVELS.__getitem__)


def open_request(raw: bytes, content_type: str, *, name: str, terminal: TerminalInfo | None,
                 view: SecurityView, sessions: sessionmaker) -> Opened | None:
    """Verify and unwrap a JOSE body; None when the body is plain JSON."""
    if content_type.split(";")[0].strip().lower() != JOSE:
        return None
    text = raw.decode("ascii", errors="replace").strip()
    level = "signed"
    if text.count(".") == 4:
        try:
            kid = json.loads(_b64json(text.split(".")[0])).get("kid")
            key = view.enc_keys.get(kid or "")
            if key is None:
                raise ProtectionError("sealed to an unknown key; fetch /v1/auth/keys",
                                      abnormal=False)
            text = jwe.decrypt_compact(text, key, algorithms=JWE_ALGS).plaintext.decode()
        except ProtectionError:
            raise
        except Exception as exc:
            raise ProtectionError(f"cannot decrypt the sealed request ({type(exc).__name__})")
        level = "sealed"
    if terminal is None or terminal.status != "registered":
        raise ProtectionError("a signed request needs a registered terminal")
    try:
        payload = verify_device_jws(text, terminal.sig_jwk)
    except ValueError as exc:
        raise ProtectionError(str(exc))
    if payload.get("name") != name:
        raise ProtectionError("the signed request names another request")
    iat, jti = payload.get("iat"), payload.get("jti")
    if not isinstance(iat, (int, float)) or abs(time.time() - iat) > MAX_AGE_S:
        raise ProtectionError("the signed request is too old or from the future")
    if not isinstance(jti, str) or not 8 <= len(jti) <= 80:
        raise ProtectionError("the signed request has no usable jti")
    with sessions() as session:
        session.add(SeenRequest(jti=f"{terminal.id}:{jti}"[:80], terminal_id=terminal.id,
                                expires_at=utcnow() + timedelta(seconds=2 * MAX_AGE_S)))
        try:
            session.commit()
        except IntegrityError:
            raise ProtectionError("replayed request (jti already used)")
    return Opened(payload.get("params"), level, text)


def seal_answer(body: bytes, terminal: TerminalInfo) -> str:
    if not terminal.enc_jwk:
        raise ProtectionError("the terminal registered no encryption key", abnormal=False)
    key = device_key(terminal.enc_jwk)
    return jwe.encrypt_compact({"alg": "ECDH-ES+A256KW", "enc": "A256GCM"}, body, key,
                               algorithms=JWE_ALGS)


def _b64json(segment: str) -> str:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode()
