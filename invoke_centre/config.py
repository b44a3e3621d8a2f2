"""Settings of the centre, read from the environment with one-machine defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _default_db() -> str:
    return f"sqlite:///{ROOT / 'var' / 'ics.db'}"


@dataclass(frozen=True)
class Settings:
    amqp_uri: str = field(default_factory=lambda: os.environ.get(
        "AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/"))
    management_uri: str = field(default_factory=lambda: os.environ.get(
        "ICS_MANAGEMENT_URI", "http://guest:guest@127.0.0.1:15672"))
    db_uri: str = field(default_factory=lambda: os.environ.get("ICS_DB_URI") or _default_db())
    token_issuer: str = field(default_factory=lambda: os.environ.get("ICS_TOKEN_ISSUER",
                                                                     "palm-ics"))
    token_audience: str = field(default_factory=lambda: os.environ.get("ICS_TOKEN_AUDIENCE",
                                                                       "palm-api"))
    tokens_file: str = field(default_factory=lambda: os.environ.get("ICS_TOKENS_FILE", ""))
    # the longest deadline any call may have, whatever its route says
    max_timeout_ms: int = field(default_factory=lambda: int(os.environ.get(
        "ICS_MAX_TIMEOUT_MS", "30000")))
    max_body_bytes: int = field(default_factory=lambda: int(os.environ.get(
        "ICS_MAX_BODY_BYTES", str(1024 * 1024))))
    # how often a gateway process checks the routing table's version
    poll_s: float = field(default_factory=lambda: float(os.environ.get("ICS_POLL_S", "0.2")))
    idempotency_ttl_s: int = field(default_factory=lambda: int(os.environ.get(
        "ICS_IDEMPOTENCY_TTL_S", str(24 * 3600))))


def settings() -> Settings:
    return Settings()
