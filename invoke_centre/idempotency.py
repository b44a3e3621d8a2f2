"""Idempotency keys of mutating requests, shared by every gateway process through the DB.

Same key and body: the first answer again. Same key, other body: 422. First
call still running: 409. Records live ``ICS_IDEMPOTENCY_TTL_S`` (24 h); the registrar
forgets expired ones. An
answer that says nothing was done for sure (503, 504, 5xx) is not kept, so the
client may retry with the same key; the key also travels to the service in the
call context so it can deduplicate a retry after a 504 itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from invoke_centre.models import IdempotencyRecord
from invoke_centre.registry import utcnow


@dataclass
class Outcome:
    kind: str  # new | replay | mismatch | running
    status: int | None = None
    response: str | None = None


class IdempotencyStore:
    def __init__(self, session_factory: sessionmaker, ttl_s: int) -> None:
        self._sessions = session_factory
        self._ttl = timedelta(seconds=ttl_s)

    def begin(self, principal: str, key: str, name: str, body_digest: str) -> Outcome:
        now = utcnow()
        for _ in range(3):
            with self._sessions() as session:
                session.add(IdempotencyRecord(
                    principal=principal, key=key, name=name, body_digest=body_digest,
                    state="running", created_at=now, expires_at=now + self._ttl))
                try:
                    session.commit()
                    return Outcome("new")
                except IntegrityError:
                    session.rollback()
                row = session.get(IdempotencyRecord, (principal, key))
                if row is None:
                    continue  # deleted in between; try again
                if row.expires_at <= now:
                    session.delete(row)
                    session.commit()
                    continue
                if row.body_digest != body_digest or row.name != name:
                    return Outcome("mismatch")
                if row.state == "running":
                    return Outcome("running")
                return Outcome("replay", row.status, row.response)
        return Outcome("running")

    def finish(self, principal: str, key: str, status: int, response: str) -> None:
        with self._sessions() as session:
            row = session.get(IdempotencyRecord, (principal, key))
            if row is None:
                return
            if status >= 500:
                session.delete(row)
            else:
                row.state, row.status, row.response = "done", status, response
            session.commit()
