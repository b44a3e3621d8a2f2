"""The JWT attack set against the centre's real verifier, on a real (SQLite) database."""

import base64
import json
import time
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import OKPAlgorithm
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from invoke_centre import credentials, tokens
from invoke_centre.db import make_engine
from invoke_centre.models import Base, SigningKey
from invoke_centre.registry import utcnow


@pytest.fixture
def view(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 't.db'}")
    Base.metadata.create_all(engine)
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    with sessions() as s:
        tokens.ensure_keys(s)
        s.commit()
    v = tokens.SecurityView(sessions, issuer="palm-ics", audience="palm-api", poll_s=1)
    v.refresh(force=True)
    v.sessions = sessions
    return v


def _b64(obj) -> str:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _claims(**over):
    now = int(time.time())
    return {"iss": "palm-ics", "aud": "palm-api", "sub": "u-1", "sid": "f-1", "tid": None,
            "iat": now, "nbf": now, "exp": now + 600, "typ": "access", **over}


def _current_key(view):
    with view.sessions() as s:
        key = s.scalar(select(SigningKey).where(SigningKey.use == "sig",
                                                SigningKey.retired_at.is_(None)))
    return key.kid, OKPAlgorithm.from_jwk(key.private_jwk), key.public_jwk


def _sign(view, claims, **headers):
    kid, key, _ = _current_key(view)
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid, **headers})


def test_a_genuine_token_passes(view):
    token = view.issue_access(user_id="u-1", terminal_id="t-1", family_id="f-1")
    assert view.verify_access(token)["sub"] == "u-1"


def test_alg_none_is_refused(view):
    kid, _, _ = _current_key(view)
    token = f"{_b64({'alg': 'none', 'kid': kid})}.{_b64(_claims())}."
    with pytest.raises(tokens.TokenError):
        view.verify_access(token)


def test_hs256_signed_with_the_public_key_is_refused(view):
    import hashlib
    import hmac

    kid, _, public = _current_key(view)
    header = _b64({"alg": "HS256", "kid": kid, "typ": "JWT"})
    body = _b64(_claims())
    secret = json.dumps(public).encode()
    sig = _b64(hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest())
    with pytest.raises(tokens.TokenError):
        view.verify_access(f"{header}.{body}.{sig}")


def test_an_unlisted_algorithm_is_refused(view):
    kid, _, _ = _current_key(view)
    other = ec.generate_private_key(ec.SECP256R1())
    pem = other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    token = jwt.encode(_claims(), pem, algorithm="ES256", headers={"kid": kid})
    with pytest.raises(tokens.TokenError):
        view.verify_access(token)


@pytest.mark.parametrize("over", [
    {"exp": int(time.time()) - 120},
    {"aud": "someone-else"},
    {"iss": "evil-issuer"},
    {"nbf": int(time.time()) + 3600},
    {"typ": "refresh"},
])
def test_bad_claims_are_refused(view, over):
    with pytest.raises(tokens.TokenError):
        view.verify_access(_sign(view, _claims(**over)))


def test_missing_claims_are_refused(view):
    claims = _claims()
    del claims["sid"]
    with pytest.raises(tokens.TokenError):
        view.verify_access(_sign(view, claims))


def test_a_refresh_token_is_not_an_access_token(view):
    with view.sessions() as s:
        refresh, _row = tokens.new_refresh(s, user_id="u-1", terminal_id=None)
        s.commit()
    with pytest.raises(tokens.TokenError):
        view.verify_access(refresh)


def test_a_retired_kid_works_during_the_overlap_and_not_after(view):
    old = view.issue_access(user_id="u-1", terminal_id=None, family_id="f-1")
    with view.sessions() as s:
        tokens.rotate_keys(s, "sig")
        s.commit()
    view.refresh()
    assert view.verify_access(old)["sub"] == "u-1"
    new = view.issue_access(user_id="u-1", terminal_id=None, family_id="f-1")
    assert jwt.get_unverified_header(new)["kid"] != jwt.get_unverified_header(old)["kid"]
    with view.sessions() as s:
        for key in s.scalars(select(SigningKey).where(SigningKey.retired_at.is_not(None))):
            key.accept_until = utcnow() - timedelta(seconds=1)
        s.commit()
    view.refresh(force=True)  # as if the overlap had run out
    with pytest.raises(tokens.TokenError):
        view.verify_access(old)
    assert view.verify_access(new)["sub"] == "u-1"


def test_pin_and_password_policy():
    assert credentials.pin_problems("845302") == []
    for weak in ("123456", "111111", "654321", "121212", "123123", "12345", "12a456"):
        assert credentials.pin_problems(weak), weak
    assert credentials.password_problems("correct horse battery") == []
    assert credentials.password_problems("短密码") == ["must be at least 8 characters"]
    assert credentials.password_problems("password1") == ["is a commonly used password"]
    assert credentials.password_problems("x" * 129)
    assert credentials.password_problems("13812345678abc", ("13812345678",))


def test_hashes_are_argon2id_and_verify_costs_the_same_without_a_hash():
    h = credentials.hash_secret("845302")
    assert h.startswith("$argon2id$")
    t = time.perf_counter()
    assert credentials.verify_secret(h, "845302")
    with_hash = time.perf_counter() - t
    t = time.perf_counter()
    assert not credentials.verify_secret(None, "845302")
    without = time.perf_counter() - t
    assert without > with_hash * 0.3
