"""Signed checkpoints of the chain, kept apart from the records.

A checkpoint is one JSON line ``{"seq", "mac", "at", "key", "sig"}`` appended to a file
(``AUDIT_CHECKPOINTS``): ``sig`` is an Ed25519 signature over ``seq``, ``mac`` and ``at``, by the
key in ``AUDIT_SIGNING_KEY`` (made on first start; its public half is written next to it as
``.pub``, which is all a verifier needs). Someone who can edit the database but not this file
and key can neither truncate the trail nor recompute its MACs without ``audit.verify`` noticing.

A checkpoint is written after a commit that appended records, once ``every`` records or
``period_s`` seconds have gone by since the last one, and when the service stops.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
from logging import getLogger
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from audit import domain

_log = getLogger(__name__)
DOMAIN_TAG = "palm-audit-checkpoint-v1"


def _message(seq: int, mac: str, at: str) -> bytes:
    return f"{DOMAIN_TAG}\x1f{seq}\x1f{mac}\x1f{at}".encode()


def fingerprint(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_or_create_key(path: str | Path) -> Ed25519PrivateKey:
    """The signing key at ``path``; a new one (mode 0600, public half in ``.pub``) if none."""
    path = Path(path)
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise TypeError(f"{path} is not an Ed25519 private key")
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    Path(f"{path}.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    _log.warning("made a new checkpoint signing key at %s (public half %s.pub)", path, path)
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(Path(path).read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise TypeError(f"{path} is not an Ed25519 public key")
    return key


def sign(key: Ed25519PrivateKey, seq: int, mac: str, at: str) -> dict:
    return {"seq": seq, "mac": mac, "at": at, "key": fingerprint(key.public_key()),
            "sig": base64.b64encode(key.sign(_message(seq, mac, at))).decode()}


def read_checkpoints(path: str | Path, public: Ed25519PublicKey
                     ) -> tuple[list[domain.Checkpoint], list[domain.Problem]]:
    """The checkpoints in the file whose signatures hold, and a problem for every other line."""
    good: list[domain.Checkpoint] = []
    bad: list[domain.Problem] = []
    try:
        lines = Path(path).read_bytes().splitlines()
    except FileNotFoundError:
        return good, bad
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            seq, mac, at = int(item["seq"]), str(item["mac"]), str(item["at"])
            sig = base64.b64decode(item["sig"], validate=True)
        except (ValueError, KeyError, TypeError):
            bad.append(domain.Problem(0, "bad_checkpoint",
                                      f"checkpoint line {n} cannot be read"))
            continue
        try:
            public.verify(sig, _message(seq, mac, at))
        except InvalidSignature:
            bad.append(domain.Problem(seq, "bad_checkpoint",
                                      f"checkpoint line {n} (seq {seq}) has a bad signature: "
                                      "the checkpoint file was edited"))
            continue
        good.append(domain.Checkpoint(seq, mac, at))
    return good, bad


class CheckpointLog:
    """Writes checkpoints for one process; ``note`` after each commit, ``tick`` now and then."""

    def __init__(self, path: str | Path, key: Ed25519PrivateKey, *, every: int = 1000,
                 period_s: float = 1.0) -> None:
        self.path = Path(path)
        self.key = key
        self.public = key.public_key()
        self.every, self.period_s = every, period_s
        self._pending: tuple[int, str] | None = None
        self._written_seq = 0
        self._written_at = time.monotonic()
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def note(self, seq: int, mac: str) -> None:
        """Records up to ``seq`` (whose MAC is ``mac``) are committed."""
        if self._pending is None or seq > self._pending[0]:
            self._pending = (seq, mac)
        if seq - self._written_seq >= self.every:
            self.flush()

    def tick(self) -> None:
        if self._pending and time.monotonic() - self._written_at >= self.period_s:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
            if pending is None or pending[0] <= self._written_seq:
                return
            seq, mac = pending
            line = json.dumps(sign(self.key, seq, mac, domain.now_text()),
                              separators=(",", ":")) + "\n"
            # one write() of the whole line, O_APPEND: lines of several writers never mix
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            self._written_seq, self._written_at = seq, time.monotonic()

    def read(self) -> tuple[list[domain.Checkpoint], list[domain.Problem]]:
        return read_checkpoints(self.path, self.public)
