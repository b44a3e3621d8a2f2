"""Terminals bound to devices (F9, P2.1): enrolment, registration of the device's public keys,
loss, deregistration, bindings and key rotation.

The server holds only public keys: a signing key (Ed25519 or P-256) that proves the device at
login and signs requests, and optionally an encryption key (X25519 or P-256) that sealed answers
are encrypted to. IMEI and IMSI are recorded but cannot be trusted — the key is the binding.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

from joserfc.jwk import ECKey, OKPKey
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from invoke_centre.identity import IdentityError, bump
from invoke_centre.models import RefreshToken, Terminal, TerminalBinding, TerminalClass, User
from invoke_centre.registry import utcnow

LOGIN_ITEMS = ("pin", "password", "device")
DEFAULT_CLASSES = {
    # a field agent's phone: all three, and at least signed requests where routes ask for it
    "phone": (["pin", "password", "device"], "normal"),
    "pad": (["pin", "password", "device"], "normal"),
    # a counter PC in an outlet, and the head-office console
    "counter": (["password", "device"], "normal"),
    "console": (["password"], "normal"),
}
SIG_KEYS = {("OKP", "Ed25519"), ("EC", "P-256")}
ENC_KEYS = {("OKP", "X25519"), ("EC", "P-256")}


def ensure_default_classes(session: Session) -> None:
    for name, (items, sensitivity) in DEFAULT_CLASSES.items():
        if session.get(TerminalClass, name) is None:
            session.add(TerminalClass(name=name, login_items=items, min_sensitivity=sensitivity,
                                      updated_at=utcnow()))
    session.flush()


def set_class(session: Session, *, name: str, login_items: list[str],
              min_sensitivity: str) -> TerminalClass:
    from invoke_centre.wire import SENSITIVITIES

    fields: dict[str, list[str]] = {}
    if not isinstance(login_items, list) or not login_items or \
            not set(login_items) <= set(LOGIN_ITEMS):
        fields["login_items"] = [f"a non-empty list of {', '.join(LOGIN_ITEMS)}"]
    elif not {"pin", "password"} & set(login_items):
        fields["login_items"] = ["must include pin or password"]
    if min_sensitivity not in SENSITIVITIES:
        fields["min_sensitivity"] = [f"one of {', '.join(SENSITIVITIES)}"]
    if fields:
        raise IdentityError("invalid terminal class", fields)
    cls = session.get(TerminalClass, name) or TerminalClass(name=name)
    cls.login_items, cls.min_sensitivity, cls.updated_at = login_items, min_sensitivity, utcnow()
    session.add(cls)
    bump(session, "terminal_class", name)
    return cls


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def enrol(session: Session, *, terminal_class: str, imei: str | None, imsi: str | None,
          user_ids: list[str]) -> tuple[Terminal, str]:
    """Enrol a terminal for users; the one-time code goes to the device out of band."""
    ensure_default_classes(session)
    fields: dict[str, list[str]] = {}
    if session.get(TerminalClass, terminal_class) is None:
        fields["terminal_class"] = ["no such terminal class"]
    for key, value in (("imei", imei), ("imsi", imsi)):
        if value is not None and not (isinstance(value, str) and value.isdigit()
                                      and 14 <= len(value) <= 16):
            fields[key] = ["must be 14-16 digits"]
    if not isinstance(user_ids, list) or not user_ids or \
            any(not isinstance(u, str) or session.get(User, u) is None for u in user_ids):
        fields["user_ids"] = ["a non-empty list of existing user ids"]
    if fields:
        raise IdentityError("invalid enrolment", fields)
    code = secrets.token_urlsafe(12)
    now = utcnow()
    # a class that logs in without the device key (a console) has nothing to register
    keyless = "device" not in session.get(TerminalClass, terminal_class).login_items
    terminal = Terminal(id=f"t-{uuid.uuid4().hex[:12]}", terminal_class=terminal_class,
                        imei=imei, imsi=imsi, status="registered" if keyless else "enrolled",
                        enrolment_code_hash=_code_hash(code), key_version=0, created_at=now,
                        status_changed_at=now)
    session.add(terminal)
    for user_id in dict.fromkeys(user_ids):
        session.add(TerminalBinding(terminal_id=terminal.id, user_id=user_id))
    session.flush()
    return terminal, code


def _public_key(jwk: object, allowed: set[tuple[str, str]], field: str) -> dict:
    if not isinstance(jwk, dict):
        raise IdentityError("invalid key", {field: ["a public JWK object"]})
    if "d" in jwk:
        raise IdentityError("invalid key", {field: ["send the public half only"]})
    if (jwk.get("kty"), jwk.get("crv")) not in allowed:
        raise IdentityError("invalid key", {field: [
            "kty/crv must be one of " + ", ".join(f"{k}/{c}" for k, c in sorted(allowed))]})
    try:
        (OKPKey if jwk["kty"] == "OKP" else ECKey).import_key(jwk)
    except Exception:
        raise IdentityError("invalid key", {field: ["not a valid key"]})
    return {k: jwk[k] for k in ("kty", "crv", "x", "y") if k in jwk}


def get_terminal(session: Session, terminal_id: object) -> Terminal:
    terminal = session.get(Terminal, terminal_id) if isinstance(terminal_id, str) else None
    if terminal is None:
        raise IdentityError(f"no terminal {terminal_id}", status=404)
    return terminal


def register(session: Session, *, terminal_id: str, enrolment_code: str, sig_jwk: dict,
             enc_jwk: dict | None = None) -> Terminal:
    terminal = session.get(Terminal, terminal_id) if isinstance(terminal_id, str) else None
    given = _code_hash(enrolment_code) if isinstance(enrolment_code, str) else ""
    if terminal is None or terminal.status != "enrolled" or not terminal.enrolment_code_hash \
            or not hmac.compare_digest(terminal.enrolment_code_hash, given):
        raise IdentityError("unknown terminal or wrong enrolment code", status=401)
    terminal.sig_jwk = _public_key(sig_jwk, SIG_KEYS, "sig_jwk")
    terminal.enc_jwk = _public_key(enc_jwk, ENC_KEYS, "enc_jwk") if enc_jwk else None
    terminal.enrolment_code_hash = None  # one use
    terminal.status, terminal.key_version = "registered", 1
    terminal.status_changed_at = utcnow()
    return terminal


def rotate_keys(session: Session, terminal: Terminal, *, sig_jwk: dict,
                enc_jwk: dict | None = None) -> Terminal:
    terminal.sig_jwk = _public_key(sig_jwk, SIG_KEYS, "sig_jwk")
    terminal.enc_jwk = _public_key(enc_jwk, ENC_KEYS, "enc_jwk") if enc_jwk else None
    terminal.key_version += 1
    terminal.status_changed_at = utcnow()
    bump(session, "terminal_key", terminal.id)
    return terminal


def set_status(session: Session, terminal: Terminal, status: str) -> None:
    """Report lost or deregister: every token of the terminal stops at once."""
    if status not in ("lost", "deregistered"):
        raise IdentityError("invalid status", {"status": ["lost or deregistered"]})
    now = utcnow()
    terminal.status, terminal.status_changed_at = status, now
    session.execute(update(RefreshToken).where(RefreshToken.terminal_id == terminal.id,
                                               RefreshToken.revoked_at.is_(None))
                    .values(revoked_at=now))
    bump(session, f"terminal_{status}", terminal.id)


def bind(session: Session, terminal: Terminal, user_id: str) -> None:
    if session.get(User, user_id) is None:
        raise IdentityError("no such user", {"user_id": ["no such user"]}, 404)
    if session.get(TerminalBinding, (terminal.id, user_id)) is None:
        session.add(TerminalBinding(terminal_id=terminal.id, user_id=user_id))
    bump(session, "binding", terminal.id)


def unbind(session: Session, terminal: Terminal, user_id: str) -> None:
    binding = session.get(TerminalBinding, (terminal.id, user_id))
    if binding is None:
        raise IdentityError("not bound", status=404)
    session.delete(binding)
    bump(session, "binding", terminal.id)


def users_of(session: Session, terminal_id: str) -> list[str]:
    return list(session.scalars(select(TerminalBinding.user_id)
                                .where(TerminalBinding.terminal_id == terminal_id)))


def list_terminals(session: Session) -> list[Terminal]:
    return list(session.scalars(select(Terminal).order_by(Terminal.id)))
