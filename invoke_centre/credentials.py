"""PINs and passwords: what is acceptable, and how they are kept.

Passwords follow NIST SP 800-63B: at least 8 characters, up to 128, any characters, no
composition rules, checked against a blocklist of common and context-specific passwords. PINs
are at least 6 digits and not a common or trivial sequence. Both are stored as Argon2id hashes
(memory-hard; OWASP's minimum parameters: 19 MiB, 2 passes). Verifying against a missing hash
still costs one hash, so an unknown account takes as long as a known one.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
_DUMMY = _hasher.hash("not-a-real-secret-only-for-timing")

PIN_MIN = 6
PASSWORD_MIN = 8
PASSWORD_MAX = 128
_COMMON_PINS = {"123123", "112233", "121212", "520520", "131420", "520131", "147258",
                "159753", "123321", "666888", "168168", "147369", "258369", "123654",
                "456789", "789456", "102030", "101010", "202020", "123000", "000123"}


@lru_cache(maxsize=1)
def _blocklist() -> frozenset[str]:
    path = Path(__file__).parent / "data" / "common-passwords.txt"
    return frozenset(w.strip().lower() for w in path.read_text().splitlines() if w.strip())


def _normalise(secret: str) -> str:
    return unicodedata.normalize("NFKC", secret)


def pin_problems(pin: object) -> list[str]:
    if not isinstance(pin, str) or not pin.isdigit() or not pin.isascii():
        return ["must be digits only"]
    if len(pin) < PIN_MIN:
        return [f"must be at least {PIN_MIN} digits"]
    if len(pin) > 12:
        return ["must be at most 12 digits"]
    digits = [int(c) for c in pin]
    steps = {b - a for a, b in zip(digits, digits[1:], strict=False)}
    if len(set(pin)) == 1 or steps in ({1}, {-1}) or pin in _COMMON_PINS \
            or pin[: len(pin) // 2] * 2 == pin:
        return ["is too easy to guess"]
    return []


def password_problems(password: object, context: tuple[str, ...] = ()) -> list[str]:
    if not isinstance(password, str):
        return ["must be a string"]
    pw = _normalise(password)
    if len(pw) < PASSWORD_MIN:
        return [f"must be at least {PASSWORD_MIN} characters"]
    if len(pw) > PASSWORD_MAX:
        return [f"must be at most {PASSWORD_MAX} characters"]
    lowered = pw.lower()
    if lowered in _blocklist() or len(set(lowered)) < 3:
        return ["is a commonly used password"]
    if any(c and len(c) >= 4 and c.lower() in lowered for c in context):
        return ["must not contain your phone number or name"]
    return []


def hash_secret(secret: str) -> str:
    return _hasher.hash(_normalise(secret))


def verify_secret(stored: str | None, given: object) -> bool:
    """Constant-cost check: a missing hash or a non-string still costs one Argon2 verify."""
    candidate = _normalise(given) if isinstance(given, str) else ""
    try:
        ok = _hasher.verify(stored or _DUMMY, candidate)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return ok and stored is not None and isinstance(given, str)
