"""The audit service's tables.

``audit_records`` is append-only: the ingest loop (and ``audit.policy.set``, for its own record)
add rows under the chain lock, nothing updates or deletes them. Every column is text, ""
when absent, so that the database can build a record's canonical form itself (see
``domain.canonical``). ``audit_chain_head`` is one row: the lock every writer takes first and
the last ``(seq, mac)``. ``audit_policy`` keeps every version of the policy.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite makes an INTEGER PRIMARY KEY the rowid (fast); PostgreSQL gets a bigint.
SeqType = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


def _text() -> Mapped[str]:
    return mapped_column(Text, nullable=False, default="")


class AuditRecord(Base):
    __tablename__ = "audit_records"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=False)
    event_id: Mapped[str] = mapped_column(String(128), nullable=False)
    type: Mapped[str] = mapped_column(String(40), nullable=False)
    at: Mapped[str] = mapped_column(String(24), nullable=False)
    received_at: Mapped[str] = mapped_column(String(24), nullable=False)
    source: Mapped[str] = _text()
    user_id: Mapped[str] = _text()
    roles: Mapped[str] = _text()
    branch: Mapped[str] = _text()
    terminal_id: Mapped[str] = _text()
    request_id: Mapped[str] = _text()
    named_request: Mapped[str] = _text()
    service: Mapped[str] = _text()
    instance: Mapped[str] = _text()
    operation: Mapped[str] = _text()
    object: Mapped[str] = _text()
    params: Mapped[str] = _text()
    outcome: Mapped[str] = mapped_column(String(16), nullable=False)
    detail: Mapped[str] = _text()
    mac: Mapped[str] = mapped_column(String(64), nullable=False)

    __table_args__ = (
        UniqueConstraint("event_id", name="uq_audit_records_event_id"),
        Index("ix_audit_records_user_seq", "user_id", "seq"),
        Index("ix_audit_records_type_seq", "type", "seq"),
        Index("ix_audit_records_named_request_seq", "named_request", "seq"),
        Index("ix_audit_records_request_id", "request_id"),
        Index("ix_audit_records_at", "at"),
    )


class ChainHead(Base):
    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    mac: Mapped[str] = mapped_column(String(64), nullable=False)


class PolicyVersion(Base):
    __tablename__ = "audit_policy"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    rules: Mapped[str] = mapped_column(Text, nullable=False)
    set_by: Mapped[str] = _text()
    set_at: Mapped[str] = mapped_column(String(24), nullable=False)
    note: Mapped[str] = _text()
