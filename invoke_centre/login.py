"""Logging in, refreshing and logging out (F9, P1.3).

A login presents what the terminal's class asks for — PIN, password, and the device's
signature over a fresh server nonce — for a user bound to that terminal. Five failures per
phone number or per terminal lock it for 15 minutes (the sixth try is refused even when right).
An unknown phone number costs the same hashing and gets the same answer as a wrong secret.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from joserfc import jws
from joserfc.jwk import ECKey, OKPKey
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from invoke_centre import credentials, identity, terminals, tokens
from invoke_centre.models import LoginFailure, LoginNonce, RefreshToken, Terminal, User
from invoke_centre.privacy import mask_mobile, mask_value
from invoke_centre.registry import utcnow

NONCE_TTL = timedelta(seconds=120)
MAX_FAILURES = 5
LOCK_FOR = timedelta(minutes=15)
DEVICE_ALGS = ["EdDSA", "Ed25519", "ES256"]


@dataclass
class Events:
    """Audit events the caller publishes once the transaction is committed."""

    items: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def add(self, type_: str, **kw: Any) -> None:
        self.items.append((type_, kw))


class LoginFailed(Exception):
    def __init__(self, locked: bool = False) -> None:
        super().__init__("locked" if locked else "login failed")
        self.locked = locked


class RefreshFailed(Exception):
    pass


def device_key(jwk: dict) -> OKPKey | ECKey:
    return (OKPKey if jwk["kty"] == "OKP" else ECKey).import_key(jwk)


def verify_device_jws(compact: object, jwk: dict | None) -> dict[str, Any]:
    """The JSON payload of a JWS signed by the device key, or ValueError."""
    if not isinstance(compact, str) or jwk is None:
        raise ValueError("no signature")
    try:
        obj = jws.deserialize_compact(compact, device_key(jwk), algorithms=DEVICE_ALGS)
        payload = json.loads(obj.payload)
    except Exception as exc:
        raise ValueError(f"bad signature: {type(exc).__name__}")
    if not isinstance(payload, dict):
        raise ValueError("payload is not an object")
    return payload


def challenge(session: Session, terminal_id: object) -> dict[str, Any]:
    """A single-use nonce for the device to sign (given for any id: no enumeration)."""
    nonce = secrets.token_urlsafe(24)
    now = utcnow()
    session.add(LoginNonce(nonce=nonce, terminal_id=str(terminal_id)[:40], expires_at=now +
                           NONCE_TTL))
    return {"nonce": nonce, "expires_in": int(NONCE_TTL.total_seconds())}


def _locked(session: Session, subjects: list[str]) -> bool:
    now = utcnow()
    return any(identity.is_locked_at(now, f.locked_until) for s in subjects
               if (f := session.get(LoginFailure, s)) is not None)


def _fail(session: Session, subjects: list[str], events: Events, who: dict) -> None:
    now = utcnow()
    for subject in subjects:
        f = session.get(LoginFailure, subject)
        if f is None or f.first_at < now - LOCK_FOR or (f.locked_until and f.locked_until < now):
            f = f or LoginFailure(subject=subject)
            f.count, f.first_at, f.locked_until = 0, now, None
            session.add(f)
        f.count += 1
        if f.count >= MAX_FAILURES:
            f.locked_until = now + LOCK_FOR
            kind, _, ident = subject.partition(":")
            shown = f"phone:{mask_mobile(ident)}" if kind == "phone" else subject
            events.add("lockout", who=who, object_=shown, outcome="refused",
                       detail={"failures": f.count, "until": f.locked_until.isoformat()})


def _check_proof(session: Session, terminal: Terminal, proof: object, phone: str) -> str | None:
    """None when the device proved itself over an unused nonce; else what was wrong."""
    try:
        payload = verify_device_jws(proof, terminal.sig_jwk)
    except ValueError as exc:
        return str(exc)
    nonce = payload.get("nonce")
    row = session.get(LoginNonce, nonce) if isinstance(nonce, str) else None
    if row is None or row.terminal_id != terminal.id or row.used_at is not None \
            or row.expires_at < utcnow():
        return "unknown, spent or expired nonce"
    if payload.get("terminal_id") != terminal.id or \
            identity.normalise_phone(payload.get("phone")) != phone:
        return "proof names another terminal or phone"
    row.used_at = utcnow()
    return None


def login(session: Session, view: tokens.SecurityView, *, phone: object, pin: object,
          password: object, terminal_id: object, proof: object, imei: object = None,
          imsi: object = None, events: Events) -> dict[str, Any]:
    norm = identity.normalise_phone(phone) or str(phone)[:20]
    tid = str(terminal_id)[:40]
    subjects = [f"phone:{norm}", f"terminal:{tid}"]
    who = {"phone": mask_mobile(norm), "terminal_id": tid}
    if _locked(session, subjects):
        events.add("login_failed", who=who, outcome="refused", detail={"reason": "locked"})
        raise LoginFailed(locked=True)
    user = session.scalar(select(User).where(User.phone == norm))
    terminal = session.get(Terminal, tid)
    terminals.ensure_default_classes(session)
    cls = view.classes.get(terminal.terminal_class) if terminal is not None else None
    items = cls.login_items if cls is not None else terminals.DEFAULT_CLASSES["phone"][0]
    reasons: list[str] = []
    # the same hashing whether or not the user exists: no timing tell
    if "pin" in items and not credentials.verify_secret(user.pin_hash if user else None, pin):
        reasons.append("pin")
    if "password" in items and not credentials.verify_secret(
            user.password_hash if user else None, password):
        reasons.append("password")
    if user is None or user.status != "active":
        reasons.append("user")
    if terminal is None or terminal.status != "registered":
        reasons.append("terminal")
    elif user is not None and not identity.binding_exists(session, terminal.id, user.id):
        reasons.append("binding")
    if "device" in items and terminal is not None and terminal.status == "registered":
        problem = _check_proof(session, terminal, proof, norm)
        if problem:
            reasons.append("device")
            events.add("abnormal", who=who, object_=f"terminal:{terminal.id}", outcome="refused",
                       detail={"reason": f"login proof: {problem}"})
    if reasons:
        _fail(session, subjects, events, who)
        events.add("login_failed", who={**who, "user_id": user.id if user else None},
                   outcome="failure", detail={"reasons": reasons})
        raise LoginFailed()
    who = {"user_id": user.id, "branch": user.branch_code, "terminal_id": terminal.id}
    for key, given in (("imei", imei), ("imsi", imsi)):
        recorded = getattr(terminal, key)
        if given is not None and recorded is not None and given != recorded:
            events.add("abnormal", who=who, object_=f"terminal:{terminal.id}",
                       outcome="success", detail={"reason": f"{key} differs from enrolment",
                                                  "given": mask_value(key, str(given)[:20])})
    for subject in subjects:
        f = session.get(LoginFailure, subject)
        if f is not None:
            session.delete(f)
    refresh, row = tokens.new_refresh(session, user_id=user.id, terminal_id=terminal.id)
    events.add("login", who=who, outcome="success")
    return _tokens(view, user.id, terminal.id, row.family_id, refresh)


def _tokens(view: tokens.SecurityView, user_id: str, terminal_id: str | None, family: str,
            refresh: str) -> dict[str, Any]:
    return {"access_token": view.issue_access(user_id=user_id, terminal_id=terminal_id,
                                              family_id=family),
            "token_type": "Bearer", "expires_in": int(tokens.ACCESS_TTL.total_seconds()),
            "refresh_token": refresh,
            "refresh_expires_in": int(tokens.REFRESH_TTL.total_seconds())}


def refresh(session: Session, view: tokens.SecurityView, token: object,
            events: Events) -> dict[str, Any]:
    row = session.scalar(select(RefreshToken).where(
        RefreshToken.token_hash == tokens.hash_refresh(token))) if isinstance(token, str) else None
    if row is None:
        raise RefreshFailed("unknown refresh token")
    now = utcnow()
    who = {"user_id": row.user_id, "terminal_id": row.terminal_id}
    if row.used_at is not None and row.revoked_at is None:
        revoke_family(session, row.family_id)
        events.add("refresh_reuse", who=who, outcome="refused",
                   object_=f"session:{row.family_id}",
                   detail={"reason": "a spent refresh token was presented; session revoked"})
        raise RefreshFailed("refresh token reused")
    if row.revoked_at is not None or row.expires_at < now:
        raise RefreshFailed("refresh token revoked or expired")
    user = session.get(User, row.user_id)
    terminal = session.get(Terminal, row.terminal_id) if row.terminal_id else None
    if user is None or user.status != "active" or \
            (row.terminal_id and (terminal is None or terminal.status != "registered")):
        raise RefreshFailed("user or terminal no longer active")
    row.used_at = now
    new, new_row = tokens.new_refresh(session, user_id=row.user_id, terminal_id=row.terminal_id,
                                      family_id=row.family_id)
    events.add("token_refresh", who=who, outcome="success")
    return _tokens(view, row.user_id, row.terminal_id, row.family_id, new)


def revoke_family(session: Session, family_id: str) -> None:
    session.execute(update(RefreshToken).where(RefreshToken.family_id == family_id,
                                               RefreshToken.revoked_at.is_(None))
                    .values(revoked_at=utcnow()))
    identity.bump(session, "session_revoked", family_id)


def purge(session: Session) -> None:
    """Forget spent nonces and replay ids (called now and then)."""
    from invoke_centre.models import SeenRequest

    now = utcnow()
    session.query(LoginNonce).filter(LoginNonce.expires_at < now).delete()
    session.query(SeenRequest).filter(SeenRequest.expires_at < now).delete()


def change_secrets(session: Session, user_id: str, *, current_pin: object,
                   current_password: object, new_pin: object, new_password: object,
                   events: Events) -> None:
    """A user changes their own PIN or password by giving the current one of the same kind.
    Wrong guesses count towards the same lockout as logins."""
    user = identity.get_user(session, user_id)
    subjects = [f"phone:{user.phone}"]
    who = {"user_id": user.id, "branch": user.branch_code}
    if new_pin is None and new_password is None:
        raise identity.IdentityError("nothing to change",
                                     {"new_pin": ["give new_pin or new_password"]})
    if _locked(session, subjects):
        raise LoginFailed(locked=True)
    ok = True
    if new_password is not None:
        ok = credentials.verify_secret(user.password_hash, current_password) and ok
    if new_pin is not None:
        ok = credentials.verify_secret(user.pin_hash, current_pin) and ok
    if not ok:
        _fail(session, subjects, events, who)
        events.add("login_failed", who=who, outcome="failure",
                   detail={"reason": "wrong current secret when changing secrets"})
        raise LoginFailed()
    identity.set_secrets(session, user, pin=new_pin, password=new_password)
