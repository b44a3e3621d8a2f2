"""Queries of the audit database, given a session (or, for the verifier, a raw connection)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from audit import domain
from audit.models import AuditRecord, ChainHead, PolicyVersion

_RECORDS = AuditRecord.__table__
_COLUMNS = [_RECORDS.c[name] for name in domain.CHAIN_COLUMNS] + [_RECORDS.c.mac]


class RecordRepository:
    """The append-only records and the chain head."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def lock_head(self) -> tuple[int, bytes]:
        """Take the chain lock for this transaction and read the head.

        The first statement writes the head row: on PostgreSQL that locks the row until commit,
        on SQLite it takes the database's write lock. Either way one writer at a time, across
        processes, assigns sequence numbers.
        """
        self.session.execute(update(ChainHead).where(ChainHead.id == 1)
                             .values(seq=ChainHead.seq))
        seq, mac = self.session.execute(
            select(ChainHead.seq, ChainHead.mac).where(ChainHead.id == 1)).one()
        return int(seq), bytes.fromhex(mac)

    def set_head(self, seq: int, mac: str) -> None:
        self.session.execute(update(ChainHead).where(ChainHead.id == 1)
                             .values(seq=seq, mac=mac))

    def head(self) -> tuple[int, str]:
        seq, mac = self.session.execute(
            select(ChainHead.seq, ChainHead.mac).where(ChainHead.id == 1)).one()
        return int(seq), mac

    def known_ids(self, event_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(event_ids), 500):
            chunk = list(event_ids[i:i + 500])
            found.update(self.session.scalars(
                select(AuditRecord.event_id).where(AuditRecord.event_id.in_(chunk))))
        return found

    def add_all(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.session.execute(insert(_RECORDS), rows)

    def get(self, *, seq: int | None = None, event_id: str | None = None) -> dict | None:
        q = select(*_COLUMNS)
        q = q.where(_RECORDS.c.seq == seq) if seq is not None else \
            q.where(_RECORDS.c.event_id == event_id)
        row = self.session.execute(q).mappings().first()
        return dict(row) if row else None

    def count(self) -> int:
        return int(self.session.scalar(select(func.count()).select_from(_RECORDS)))

    def search(self, *, user_id: str | None = None, types: Sequence[str] = (),
               since: str | None = None, until: str | None = None,
               request_id: str | None = None, named_request: str | None = None,
               outcome: str | None = None, source: str | None = None,
               object_: str | None = None, after: int | None = None, descending: bool = True,
               limit: int = 50) -> list[dict[str, Any]]:
        """Records matching every filter given, in seq order, ``limit`` of them after the
        cursor ``after`` (a seq of the previous page)."""
        c = _RECORDS.c
        conds = []
        for column, value in ((c.user_id, user_id), (c.request_id, request_id),
                              (c.named_request, named_request), (c.outcome, outcome),
                              (c.source, source), (c.object, object_)):
            if value is not None:
                conds.append(column == value)
        if types:
            conds.append(c.type.in_(list(types)))
        if since is not None:
            conds.append(c.at >= since)
        if until is not None:
            conds.append(c.at < until)
        if after is not None:
            conds.append(c.seq < after if descending else c.seq > after)
        q = select(*_COLUMNS)
        if conds:
            q = q.where(and_(*conds))
        q = q.order_by(c.seq.desc() if descending else c.seq.asc()).limit(limit)
        return [dict(r) for r in self.session.execute(q).mappings()]


class PolicyRepository:
    """Every version of the audit policy; the newest is in force."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def current_version(self) -> int:
        return int(self.session.scalar(select(func.coalesce(func.max(PolicyVersion.version),
                                                            0))))

    def current(self) -> domain.Policy:
        row = self.session.scalars(select(PolicyVersion)
                                   .order_by(PolicyVersion.version.desc()).limit(1)).first()
        if row is None:
            return domain.default_policy()
        return domain.Policy(version=row.version, rules=domain.parse_rules(json.loads(row.rules)),
                             set_by=row.set_by, set_at=row.set_at, note=row.note)

    def add(self, policy: domain.Policy) -> None:
        self.session.add(PolicyVersion(
            version=policy.version, rules=json.dumps([r.as_dict() for r in policy.rules]),
            set_by=policy.set_by, set_at=policy.set_at, note=policy.note))
        self.session.flush()


REPOSITORIES = {"records": RecordRepository, "policies": PolicyRepository}


# --- the verifier's stream ----------------------------------------------------------------

def _canonical_sql(dialect: str) -> str:
    """SQL that builds ``domain.canonical`` of each record in the database itself."""
    sep = "chr(31)" if dialect == "postgresql" else "char(31)"
    parts = ["CAST(seq AS TEXT)"] + [f'"{c}"' for c in domain.CHAIN_COLUMNS[1:]]
    return f" || {sep} || ".join(parts)


def raw_connect(engine: Engine):
    """A DBAPI connection of its own, outside the engine's pool (safe in a native thread)."""
    cargs, cparams = engine.dialect.create_connect_args(engine.url)
    return engine.dialect.loaded_dbapi.connect(*cargs, **cparams)


def stream_chain(conn, dialect: str, *, from_seq: int = 1,
                 batch: int = 20000) -> tuple[int, Iterator[tuple[int, str | None, str]]]:
    """The chain head's seq and ``(seq, canonical, mac)`` of every record from ``from_seq``,
    streamed (a server-side cursor on PostgreSQL)."""
    mark = "%s" if dialect == "postgresql" else "?"
    head_cur = conn.cursor()
    head_cur.execute("SELECT seq FROM audit_chain_head WHERE id = 1")
    found = head_cur.fetchone()
    head_cur.close()
    sql = (f"SELECT seq, {_canonical_sql(dialect)}, mac FROM audit_records "
           f"WHERE seq >= {mark} ORDER BY seq")
    if dialect == "postgresql":
        cur = conn.cursor(name="audit_verify")
        cur.itersize = batch
    else:
        cur = conn.cursor()
    cur.execute(sql, (from_seq,))

    def rows():
        try:
            while True:
                chunk = cur.fetchmany(batch)
                if not chunk:
                    return
                yield from chunk
        finally:
            cur.close()

    return (int(found[0]) if found else 0), rows()
