"""Random tampering with a stored trail — edit, delete, insert, reorder, truncate — is always
found by verification, at the record where it happened.

The trail is written by the service's own writer into a real database (SQLite, and
PostgreSQL when ``ICS_TEST_PG_DSN`` is set); each example tampers inside a transaction, walks
the chain the way ``audit.verify`` does (the database builds each record's canonical form)
and rolls back.
"""

import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "services" / "audit"))

from audit import chain, domain
from audit.checkpoints import CheckpointLog, load_or_create_key
from audit.repository import REPOSITORIES, raw_connect, stream_chain

from invoke_centre.kit import UnitOfWork, make_engine, upgrade
from invoke_centre.kit.audit import audit_event

MIGRATIONS = Path(__file__).resolve().parents[3] / "services" / "audit" / "audit" / "migrations"
KEY = b"tamper-test-key"
N = 24
COLUMNS = list(domain.CHAIN_COLUMNS[1:]) + ["mac"]


@pytest.fixture(params=["sqlite", "postgres"])
def trail(request, databases, tmp_path):
    """A database holding a chain of N records, and a checkpoint log signed up to N."""
    uri = databases.new(request.param, "audit")
    engine = make_engine(uri)
    upgrade(uri, MIGRATIONS, engine=engine)
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    log = CheckpointLog(tmp_path / "cp.jsonl", load_or_create_key(tmp_path / "sk"))
    for i in range(N):
        e = domain.parse_event(audit_event(
            ["login", "abnormal", "over_privilege", "logout"][i % 4], source="centre",
            who={"user_id": f"agent-{i}", "roles": ["agent"], "branch": "530102"},
            where={"request_id": f"req-{i}", "named_request": "customer.get"},
            params={"mobile": "13812345678", "i": i}))
        with UnitOfWork(sessions, REPOSITORIES) as uow:
            result = chain.append(uow, [e], key=KEY)
        if result.head_seq in (N // 2, N):
            log.note(result.head_seq, result.head_mac)
            log.flush()
    yield engine, log
    engine.dispose()


class Tamperer:
    def __init__(self, conn, dialect):
        self.conn, self.dialect = conn, dialect
        self.cur = conn.cursor()

    def sql(self, text, *params):
        if self.dialect == "postgresql":
            text = text.replace("?", "%s")
        self.cur.execute(text, params)
        return self.cur

    def row(self, seq):
        cols = ", ".join(f'"{c}"' for c in COLUMNS)
        found = self.sql(f"SELECT {cols} FROM audit_records WHERE seq = ?", seq).fetchone()
        return dict(zip(COLUMNS, found, strict=True))

    def put(self, seq, row):
        cols = ", ".join(f'"{c}"' for c in ["seq"] + COLUMNS)
        marks = ", ".join("?" for _ in range(len(COLUMNS) + 1))
        self.sql(f"INSERT INTO audit_records ({cols}) VALUES ({marks})",
                 seq, *[row[c] for c in COLUMNS])

    def shift(self, from_seq, by):
        # two steps, so that no primary key collides on the way
        self.sql("UPDATE audit_records SET seq = -seq WHERE seq >= ?", from_seq)
        self.sql("UPDATE audit_records SET seq = -seq + ? WHERE seq < 0", by)

    def set(self, seq, column, value):
        self.sql(f'UPDATE audit_records SET "{column}" = ? WHERE seq = ?', value, seq)


# Each tampering does its damage and says where verification must point, and what kind.
def edit(t, k, column, value):
    old = t.row(k)[column]
    if value == old:  # same length: some columns have a size limit
        value = old[:-1] + ("x" if old[-1:] != "x" else "y")
    t.set(k, column, value)
    return k, "altered"


def delete(t, k):
    t.sql("DELETE FROM audit_records WHERE seq = ?", k)
    return k, ("truncated" if k == N else "missing")


def insert(t, k, source):
    forged = {**t.row(source), "event_id": f"forged-{k}"}
    t.shift(k, 1)
    t.put(k, forged)
    return k, "altered"


def append_forged(t, source):
    t.put(N + 1, {**t.row(source), "event_id": "forged-end"})
    return N + 1, "altered"


def reorder(t, i, j):
    i, j = min(i, j), max(i, j)
    a, b = t.row(i), t.row(j)
    t.sql("DELETE FROM audit_records WHERE seq IN (?, ?)", i, j)
    t.put(i, b)
    t.put(j, a)
    return i, "altered"


def renumber(t, k):
    t.sql("UPDATE audit_records SET seq = ? WHERE seq = ?", N + 50, k)
    return k, "missing"


def truncate(t, keep):
    t.sql("DELETE FROM audit_records WHERE seq > ?", keep)
    return keep + 1, "truncated"


seqs = st.integers(1, N)
# what a database column takes: no NUL, no lone surrogates, at most the narrowest size
values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                 max_size=16)
tamperings = st.one_of(
    st.tuples(st.just(edit), seqs, st.sampled_from(COLUMNS), values),
    st.tuples(st.just(delete), seqs),
    st.tuples(st.just(insert), seqs, seqs),
    st.tuples(st.just(append_forged), seqs),
    st.tuples(st.just(reorder), seqs, seqs).filter(lambda x: x[1] != x[2]),
    st.tuples(st.just(renumber), seqs),
    st.tuples(st.just(truncate), st.integers(0, N - 1)),
)


def walk(conn, engine, log):
    good, bad = log.read()
    head_seq, rows = stream_chain(conn, engine.dialect.name)
    try:
        return domain.verify_chain(rows, key=KEY, checkpoints=good, head_seq=head_seq,
                                   checkpoint_problems=bad)
    finally:
        rows.close()


def test_an_untouched_trail_verifies(trail):
    engine, log = trail
    report = chain.verify(engine, key=KEY, checkpoints=log)
    assert report["ok"] and report["records"] == N and report["last_checkpoint"] == N


def test_every_tampering_is_found_at_the_right_record(trail):
    engine, log = trail
    conn = raw_connect(engine)
    seen = Counter()

    @settings(max_examples=150, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(tampering=tamperings)
    def check(tampering):
        do, *args = tampering
        seen[do.__name__] += 1
        t = Tamperer(conn, engine.dialect.name)
        try:
            where, kind = do(t, *args)
            report = walk(conn, engine, log)
        finally:
            conn.rollback()
        assert not report.ok, f"{do.__name__}{tuple(args)} went unnoticed"
        assert (report.first_bad.seq, report.first_bad.kind) == (where, kind), \
            f"{do.__name__}{tuple(args)}: {report.first_bad}"

    try:
        check()
    finally:
        conn.close()
    assert sum(seen.values()) >= 150 and len(seen) == 7, seen


def test_several_edits_are_reported_at_the_earliest(trail):
    engine, log = trail
    conn = raw_connect(engine)

    @settings(max_examples=40, deadline=None, derandomize=True)
    @given(st.sets(seqs, min_size=2, max_size=5), st.sampled_from(COLUMNS))
    def check(where, column):
        t = Tamperer(conn, engine.dialect.name)
        try:
            for k in where:
                edit(t, k, column, f"tampered-{k}")
            report = walk(conn, engine, log)
        finally:
            conn.rollback()
        assert report.first_bad.seq == min(where)

    try:
        check()
    finally:
        conn.close()


def test_a_forged_or_edited_checkpoint_is_found(trail, tmp_path):
    engine, log = trail
    lines = log.path.read_text().splitlines()
    edited = lines[-1].replace('"seq":24', '"seq":30')
    log.path.write_text("\n".join(lines[:-1] + [edited]) + "\n")
    report = chain.verify(engine, key=KEY, checkpoints=log)
    assert not report["ok"] and report["first_bad"]["kind"] == "bad_checkpoint"
    assert "bad signature" in report["first_bad"]["message"]
    log.path.write_text("\n".join(lines) + "\nnot json\n")
    report = chain.verify(engine, key=KEY, checkpoints=log)
    assert report["first_bad"]["kind"] == "bad_checkpoint"
    assert "cannot be read" in report["first_bad"]["message"]


def test_truncation_is_found_from_the_head_without_a_checkpoint(trail, tmp_path):
    engine, _ = trail
    empty = CheckpointLog(tmp_path / "none.jsonl", load_or_create_key(tmp_path / "sk2"))
    with engine.begin() as c:
        c.exec_driver_sql("DELETE FROM audit_records WHERE seq > 20")
    report = chain.verify(engine, key=KEY, checkpoints=empty)
    assert report["first_bad"]["seq"] == 21 and report["first_bad"]["kind"] == "truncated"
