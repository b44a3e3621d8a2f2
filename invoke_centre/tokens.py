"""The centre's keys and tokens, and each gateway process's view of what is revoked.

Access tokens are JWTs signed with the centre's Ed25519 key (``EdDSA``, the only algorithm
accepted), at most 15 minutes long, with ``iss``, ``aud``, ``exp``, ``nbf``, ``iat`` required and
``kid`` naming the key. Rotating the key keeps the old one acceptable for one token lifetime,
then tokens of the retired ``kid`` are refused. Refresh tokens are opaque random strings kept as
hashes; they rotate on use, and a spent one used again revokes its whole family (``sid``).

``SecurityView`` holds, per gateway process, the public keys, the revoked families, the users
told to log in again and the lost terminals; it is reloaded whenever the security version moves
(polled every ``ICS_POLL_S``), so a revocation reaches every process within a second.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from logging import getLogger
from typing import Any

import jwt
from joserfc.jwk import ECKey, OKPKey
from jwt.algorithms import OKPAlgorithm
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from invoke_centre import identity
from invoke_centre.auth import Principal
from invoke_centre.models import RefreshToken, SigningKey, Terminal, TerminalClass, User
from invoke_centre.registry import utcnow

_log = getLogger(__name__)

ACCESS_ALG = "EdDSA"
ACCESS_TTL = timedelta(minutes=15)
REFRESH_TTL = timedelta(days=30)
CLOCK_SKEW_S = 30


class TokenError(Exception):
    """The token is not acceptable; the message says why (logged, never shown)."""


# --- keys -------------------------------------------------------------------------------------
def _new_key(use: str) -> SigningKey:
    if use == "sig":
        key, alg = OKPKey.generate_key("Ed25519"), ACCESS_ALG
    else:
        key, alg = ECKey.generate_key("P-256"), "ECDH-ES+A256KW"
    kid = f"{use}-{uuid.uuid4().hex[:10]}"
    public = {**key.as_dict(private=False), "kid": kid, "use": use, "alg": alg}
    return SigningKey(kid=kid, use=use, alg=alg, private_jwk={**key.as_dict(private=True),
                                                              "kid": kid},
                      public_jwk=public, created_at=utcnow())


def ensure_keys(session: Session) -> None:
    """A current signing key and encryption key exist."""
    for use in ("sig", "enc"):
        current = session.scalar(select(SigningKey).where(SigningKey.use == use,
                                                          SigningKey.retired_at.is_(None)))
        if current is None:
            session.add(_new_key(use))
    session.flush()


def rotate_keys(session: Session, use: str = "sig") -> SigningKey:
    """A new current key; the old one is accepted for one more token lifetime."""
    if use not in ("sig", "enc"):
        raise identity.IdentityError("invalid key use", {"use": ["sig or enc"]})
    now = utcnow()
    for old in session.scalars(select(SigningKey).where(SigningKey.use == use,
                                                        SigningKey.retired_at.is_(None))):
        old.retired_at = now
        old.accept_until = now + ACCESS_TTL + timedelta(seconds=CLOCK_SKEW_S)
    key = _new_key(use)
    session.add(key)
    identity.bump(session, "key_rotated", key.kid)
    return key


def hash_refresh(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_refresh(session: Session, *, user_id: str, terminal_id: str | None,
                family_id: str | None = None) -> tuple[str, RefreshToken]:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    row = RefreshToken(id=uuid.uuid4().hex, family_id=family_id or uuid.uuid4().hex,
                       user_id=user_id, terminal_id=terminal_id, token_hash=hash_refresh(token),
                       created_at=now, expires_at=now + REFRESH_TTL)
    session.add(row)
    return token, row


# --- the per-process view ---------------------------------------------------------------------
@dataclass(frozen=True)
class TerminalInfo:
    id: str
    terminal_class: str
    status: str
    sig_jwk: dict | None
    enc_jwk: dict | None
    imei: str | None
    imsi: str | None


class SecurityView:
    def __init__(self, sessions: sessionmaker, *, issuer: str, audience: str,
                 poll_s: float) -> None:
        self._sessions = sessions
        self.issuer, self.audience, self._poll_s = issuer, audience, poll_s
        self.version = -1
        self._public: dict[str, tuple[Any, datetime | None]] = {}
        self._signing: tuple[str, Any] | None = None
        self.enc_keys: dict[str, ECKey] = {}
        self.current_enc_kid: str | None = None
        self.jwks: list[dict] = []
        self._valid_after: dict[str, datetime] = {}
        self._revoked_families: set[str] = set()
        self._dead_terminals: set[str] = set()
        self._principals: dict[tuple[str, str | None], Principal | None] = {}
        self._terminals: dict[str, TerminalInfo | None] = {}
        self.classes: dict[str, TerminalClass] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.refresh()
        if self._thread is None:
            self._thread = threading.Thread(target=self._poll, name="ics-security", daemon=True)
            self._thread.start()

    def _poll(self) -> None:
        while True:
            time.sleep(self._poll_s)
            self.refresh()

    def refresh(self, force: bool = False) -> None:
        try:
            with self._sessions() as session:
                version = identity.security_version(session)
                if version == self.version and not force:
                    return
                self._load(session, version)
        except SQLAlchemyError as exc:
            _log.warning("security tables unreadable (%s); is the database migrated?", exc)

    def _load(self, session: Session, version: int) -> None:
        now = utcnow()
        cutoff = now - ACCESS_TTL - timedelta(seconds=CLOCK_SKEW_S)
        public, enc, jwks, signing, enc_kid = {}, {}, [], None, None
        for key in session.scalars(select(SigningKey)):
            if key.accept_until is not None and key.accept_until < now:
                continue
            if key.use == "sig":
                public[key.kid] = (OKPAlgorithm.from_jwk(key.public_jwk), key.accept_until)
                if key.retired_at is None:
                    signing = (key.kid, OKPAlgorithm.from_jwk(key.private_jwk))
            else:
                enc[key.kid] = ECKey.import_key(key.private_jwk)
                if key.retired_at is None:
                    enc_kid = key.kid
            jwks.append(key.public_jwk)
        valid_after = {u.id: u.tokens_valid_after for u in session.scalars(
            select(User).where(User.tokens_valid_after.is_not(None),
                               User.tokens_valid_after > cutoff))}
        disabled = {u.id for u in session.scalars(select(User).where(User.status != "active"))}
        families = set(session.scalars(select(RefreshToken.family_id).where(
            RefreshToken.revoked_at.is_not(None), RefreshToken.revoked_at > cutoff)))
        dead = set(session.scalars(select(Terminal.id).where(
            Terminal.status.in_(("lost", "deregistered")))))
        classes = {c.name: c for c in session.scalars(select(TerminalClass))}
        with self._lock:
            self._public, self.enc_keys, self.jwks = public, enc, jwks
            self._signing, self.current_enc_kid = signing, enc_kid
            self._valid_after = valid_after
            for user_id in disabled:
                self._valid_after[user_id] = datetime.max
            self._revoked_families, self._dead_terminals = families, dead
            self._principals, self._terminals, self.classes = {}, {}, classes
            self.version = version

    # --- tokens ---------------------------------------------------------------------------
    def issue_access(self, *, user_id: str, terminal_id: str | None, family_id: str) -> str:
        if self._signing is None:
            self.refresh(force=True)
        if self._signing is None:
            raise TokenError("no signing key; run ics db upgrade and start the centre")
        kid, key = self._signing
        now = time.time()
        # iat to the millisecond: a forced re-login must not refuse the very next login
        claims = {"iss": self.issuer, "aud": self.audience, "sub": user_id, "tid": terminal_id,
                  "sid": family_id, "jti": uuid.uuid4().hex, "iat": round(now, 3),
                  "nbf": int(now), "exp": int(now) + int(ACCESS_TTL.total_seconds()),
                  "typ": "access"}
        return jwt.encode(claims, key, algorithm=ACCESS_ALG, headers={"kid": kid,
                                                                        "typ": "at+jwt"})

    def verify_access(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenError(f"unreadable token: {exc}")
        if header.get("alg") != ACCESS_ALG:
            raise TokenError(f"algorithm {header.get('alg')!r} is not accepted")
        entry = self._public.get(header.get("kid") or "")
        if entry is None:
            raise TokenError("unknown or retired key id")
        key, accept_until = entry
        if accept_until is not None and accept_until < utcnow():
            raise TokenError("key retired")
        try:
            claims = jwt.decode(token, key, algorithms=[ACCESS_ALG], audience=self.audience,
                                issuer=self.issuer, leeway=CLOCK_SKEW_S,
                                options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub",
                                                     "sid"]})
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc))
        if claims.get("typ") != "access":
            raise TokenError("not an access token")
        issued = datetime.fromtimestamp(claims["iat"], timezone.utc).replace(tzinfo=None)
        after = self._valid_after.get(claims["sub"])
        if after is not None and issued <= after:
            raise TokenError("the user must log in again")
        if claims["sid"] in self._revoked_families:
            raise TokenError("session ended")
        if claims.get("tid") and claims["tid"] in self._dead_terminals:
            raise TokenError("terminal lost or deregistered")
        return claims

    # --- principals and terminals, cached until the next security change ----------------------
    def principal(self, user_id: str, terminal_id: str | None) -> Principal | None:
        key = (user_id, terminal_id)
        if key not in self._principals:
            with self._sessions() as session:
                user = session.get(User, user_id)
                self._principals[key] = identity.principal_of(session, user, terminal_id) \
                    if user is not None and user.status == "active" else None
        return self._principals[key]

    def terminal(self, terminal_id: str | None) -> TerminalInfo | None:
        if not terminal_id:
            return None
        if terminal_id not in self._terminals:
            with self._sessions() as session:
                t = session.get(Terminal, terminal_id)
                self._terminals[terminal_id] = None if t is None else TerminalInfo(
                    t.id, t.terminal_class, t.status, t.sig_jwk, t.enc_jwk, t.imei, t.imsi)
        return self._terminals[terminal_id]
