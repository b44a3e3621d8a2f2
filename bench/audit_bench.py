#!/usr/bin/env python3
"""The audit service's benchmark: sustained ingest and verification of a million records.

    .venv/bin/python bench/audit_bench.py                      # both, SQLite and PostgreSQL
    .venv/bin/python bench/audit_bench.py ingest --db sqlite --events 50000
    .venv/bin/python bench/audit_bench.py verify --db postgres --records 1000000

ingest: starts the audit service as production does (``nameko run``) on a RabbitMQ vhost and a
database of its own, publishes ``--events`` audit events in the kit's format (persistent) from a
second process as fast as it can, and measures end to end — from the first publish to the
last event committed — and the steady rate between 10 % and 90 % stored.

verify: writes ``--records`` records with a valid chain straight into a fresh database (the
service's own ``domain.link``; COPY on PostgreSQL), signs a checkpoint at the end and times
``chain.verify`` — what ``audit.verify`` runs — over all of them.

PostgreSQL is ``$ICS_TEST_PG_DSN`` (default postgresql://postgres@127.0.0.1:5432/test): a database
is created and dropped per run. Results go to bench/audit_results.json. Goals (>= 2,000
events/s; <= 10 s per million) are reported, not asserted.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pika
import psycopg2
import requests
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "services" / "audit"))

from audit import chain, domain
from audit.checkpoints import CheckpointLog, load_or_create_key

from invoke_centre.kit import make_engine, upgrade
from invoke_centre.kit.audit import audit_event

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SERVICE = ROOT / "services" / "audit"
MGMT = os.environ.get("ICS_MANAGEMENT_URL", "http://127.0.0.1:15672")
AUTH = ("guest", "guest")
PG_DSN = os.environ.get("ICS_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
KEY = "bench-chain-key"
RESULTS = BENCH / "audit_results.json"


# --- resources of one run ---------------------------------------------------------------

class Resources:
    def __init__(self) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="audit-bench-"))
        self.vhosts: list[str] = []
        self.pg: list[str] = []
        self.procs: list[subprocess.Popen] = []

    def vhost(self) -> str:
        name = f"audit-bench-{uuid.uuid4().hex[:8]}"
        requests.put(f"{MGMT}/api/vhosts/{name}", auth=AUTH, timeout=10).raise_for_status()
        requests.put(f"{MGMT}/api/permissions/{name}/guest", auth=AUTH, timeout=10,
                     json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
        self.vhosts.append(name)
        return f"amqp://guest:guest@127.0.0.1:5672/{quote(name, safe='')}"

    def database(self, kind: str, name: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{self.work / f'{name}.db'}"
        db = f"audit_bench_{name}_{uuid.uuid4().hex[:6]}"
        conn = psycopg2.connect(PG_DSN)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{db}"')
        conn.close()
        self.pg.append(db)
        base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://", 1)
        return f"{base}/{db}"

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
        for v in self.vhosts:
            requests.delete(f"{MGMT}/api/vhosts/{v}", auth=AUTH, timeout=30)
        if self.pg:
            conn = psycopg2.connect(PG_DSN)
            conn.autocommit = True
            with conn.cursor() as cur:
                for db in self.pg:
                    cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = %s AND pid <> pg_backend_pid()", (db,))
                    cur.execute(f'DROP DATABASE IF EXISTS "{db}"')
            conn.close()
        shutil.rmtree(self.work, ignore_errors=True)


# --- ingest ---------------------------------------------------------------------------------

def _publish(amqp_uri: str, n: int, started) -> None:
    """In a process of its own: n kit-format events, persistent, as fast as the broker takes."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    ch = conn.channel()
    types = ("login", "sensitive_read", "logout", "data_change", "abnormal")
    started.value = time.time()
    for i in range(n):
        e = audit_event(types[i % 5], source="bench",
                        who={"user_id": f"agent-{i % 100}", "roles": ["agent"],
                             "branch": "530102", "terminal_id": f"T-{i % 50}"},
                        where={"request_id": uuid.uuid4().hex, "named_request": "customer.get",
                               "service": "bench", "instance": "bench-1"},
                        object_=f"customer:{i}", params={"id_number": "530102199001011234",
                                                         "name": "Zhang San"},
                        detail={"fields": ["id_number"]})
        ch.basic_publish("ics.audit", f"{e['type']}.bench", json.dumps(e).encode(),
                         pika.BasicProperties(content_type="application/json",
                                              delivery_mode=2, message_id=e["event_id"]))
    conn.close()


def _head(engine) -> int:
    with engine.connect() as c:
        return int(c.execute(text("SELECT seq FROM audit_chain_head WHERE id = 1")).scalar())


def bench_ingest(res: Resources, kind: str, n: int) -> dict:
    amqp = res.vhost()
    db = res.database(kind, "ingest")
    log = open(res.work / f"audit-{kind}.log", "ab")  # noqa: SIM115 - the child's stdout
    env = {**os.environ, "AMQP_URI": amqp, "AUDIT_DB_URI": db, "PYTHONPATH": str(SERVICE),
           "AUDIT_CHAIN_KEY": KEY, "AUDIT_CHECKPOINTS": str(res.work / f"cp-{kind}.jsonl"),
           "AUDIT_SIGNING_KEY": str(res.work / "signing.key"), "ICS_HEARTBEAT_S": "5"}
    proc = subprocess.Popen([ROOT / ".venv" / "bin" / "nameko", "run", "--config",
                             str(SERVICE / "config.yaml"), "audit.service"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    res.procs.append(proc)
    vhost = amqp.rsplit("/", 1)[1]
    deadline = time.time() + 60
    while True:   # consuming once the ingest queue has a consumer
        r = requests.get(f"{MGMT}/api/queues/{vhost}/audit.ingest", auth=AUTH, timeout=5)
        if r.status_code == 200 and r.json().get("consumers"):
            break
        if time.time() > deadline or proc.poll() is not None:
            raise SystemExit(f"the audit service did not start; see {log.name}")
        time.sleep(0.2)
    engine = make_engine(db)
    started = multiprocessing.Value("d", 0.0)
    publisher = multiprocessing.Process(target=_publish, args=(amqp, n, started))
    publisher.start()
    marks: dict[float, float] = {}
    published_at = None
    while True:
        stored = _head(engine)
        now = time.time()
        for frac in (0.1, 0.9):
            if frac not in marks and stored >= frac * n:
                marks[frac] = now
        if published_at is None and not publisher.is_alive():
            published_at = now
        if stored >= n:
            break
        if now - started.value > 600 and started.value:
            raise SystemExit("ingest did not finish within 10 minutes")
        time.sleep(0.05)
    done = time.time()
    publisher.join()
    engine.dispose()
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    total = done - started.value
    steady = (marks[0.9] - marks[0.1]) / (0.8 * n) if marks[0.9] > marks[0.1] else None
    return {"db": kind, "events": n, "end_to_end_s": round(total, 2),
            "end_to_end_per_s": round(n / total),
            "steady_per_s": round(1 / steady) if steady else None,
            "publish_s": round((published_at or done) - started.value, 2)}


# --- verify ---------------------------------------------------------------------------------

def _fill(kind: str, uri: str, n: int, cp: CheckpointLog, key: bytes) -> float:
    engine = make_engine(uri)
    upgrade(uri, SERVICE / "audit" / "migrations", engine=engine)
    t0 = time.perf_counter()
    types = ("login", "sensitive_read", "logout", "data_change", "abnormal")
    protos = [domain.parse_event(audit_event(
        types[i % 5], source="bench",
        who={"user_id": f"agent-{i}", "roles": ["agent"], "branch": "530102",
             "terminal_id": "T-1"},
        where={"request_id": uuid.uuid4().hex, "named_request": "customer.get",
               "service": "bench", "instance": "bench-1"},
        object_=f"customer:{i}", params={"id_number": "530102199001011234", "name": "Zhang"},
        detail={"fields": ["id_number"]})) for i in range(100)]
    head_seq, head_mac, chunk = 0, domain.GENESIS, 50_000
    cols = ("seq",) + domain.CHAIN_COLUMNS[1:] + ("mac",)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        while head_seq < n:
            size = min(chunk, n - head_seq)
            batch = [e.__class__(**{**e.__dict__, "event_id": uuid.uuid4().hex})
                     for e in (protos[i % 100] for i in range(size))]
            rows = domain.link(batch, head_seq=head_seq, head_mac=head_mac, key=key,
                               received_at=domain.now_text())
            if kind == "postgresql":
                buf = io.StringIO()
                for r in rows:
                    buf.write("\t".join(str(r[c]).replace("\\", "\\\\") for c in cols) + "\n")
                buf.seek(0)
                quoted = ", ".join(f'"{c}"' for c in cols)
                cur.copy_expert(f"COPY audit_records ({quoted}) FROM STDIN", buf)
            else:
                cur.executemany(
                    f"INSERT INTO audit_records ({', '.join(chr(34) + c + chr(34) for c in cols)})"
                    f" VALUES ({', '.join('?' for _ in cols)})",
                    [tuple(r[c] for c in cols) for r in rows])
            head_seq, head_mac = rows[-1]["seq"], bytes.fromhex(rows[-1]["mac"])
        mark = "%s" if kind == "postgresql" else "?"
        cur.execute(f"UPDATE audit_chain_head SET seq = {mark}, mac = {mark} WHERE id = 1",
                    (head_seq, head_mac.hex()))
        raw.commit()
        if kind == "postgresql":
            raw.driver_connection.autocommit = True
            raw.driver_connection.cursor().execute("VACUUM ANALYZE audit_records")
    finally:
        raw.close()
    cp.note(head_seq, head_mac.hex())
    cp.flush()
    engine.dispose()
    return time.perf_counter() - t0


def bench_verify(res: Resources, kind: str, n: int) -> dict:
    uri = res.database(kind, "verify")
    cp = CheckpointLog(res.work / f"verify-{kind}.jsonl",
                       load_or_create_key(res.work / "signing.key"))
    dialect = "postgresql" if kind == "postgres" else "sqlite"
    fill_s = _fill(dialect, uri, n, cp, KEY.encode())
    engine = make_engine(uri)
    runs = []
    for _ in range(3):
        report = chain.verify(engine, key=KEY.encode(), checkpoints=cp)
        assert report["ok"] and report["records"] == n, report
        runs.append(report["took_ms"] / 1000)
    engine.dispose()
    rpc = _verify_through_service(res, kind, uri, cp)
    return {"db": kind, "records": n, "fill_s": round(fill_s, 1),
            "verify_s": [round(r, 2) for r in runs], "best_s": round(min(runs), 2),
            "per_million_s": round(min(runs) / n * 1e6, 2), "named_request_s": rpc}


def _verify_through_service(res: Resources, kind: str, uri: str, cp: CheckpointLog) -> float:
    """``audit.verify`` as the centre calls it: nameko RPC to the running service (its walk in
    a native thread), wall time from the call to the answer."""
    from nameko.standalone.rpc import ClusterRpcProxy

    amqp = res.vhost()
    env = {**os.environ, "AMQP_URI": amqp, "AUDIT_DB_URI": uri, "PYTHONPATH": str(SERVICE),
           "AUDIT_CHAIN_KEY": KEY, "AUDIT_CHECKPOINTS": str(cp.path),
           "AUDIT_SIGNING_KEY": str(res.work / "signing.key"), "AUDIT_INGEST": "false"}
    with open(res.work / f"audit-verify-{kind}.log", "ab") as log:
        proc = subprocess.Popen([ROOT / ".venv" / "bin" / "nameko", "run", "--config",
                                 str(SERVICE / "config.yaml"), "audit.service"], cwd=ROOT,
                                env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    res.procs.append(proc)
    context = {"user_id": "bench", "roles": "auditor", "permissions": "audit:read",
               "named_request": "audit.verify"}
    with ClusterRpcProxy({"AMQP_URI": amqp}, context_data=context, timeout=120) as rpc:
        deadline = time.time() + 60
        while True:
            try:
                rpc.audit.get_status({})
                break
            except Exception:  # noqa: BLE001 - not up yet
                if time.time() > deadline:
                    raise
                time.sleep(0.2)
        t0 = time.perf_counter()
        report = rpc.audit.verify_trail({})
        took = time.perf_counter() - t0
    assert report["ok"], report
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    return round(took, 2)


def machine() -> dict:
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip()
                   for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = ""
    try:
        mem = next(line.split(":", 1)[1].strip()
                   for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem,
            "python": platform.python_version(), "os": platform.platform()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", nargs="?", choices=["ingest", "verify", "all"], default="all")
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--records", type=int, default=1_000_000)
    args = ap.parse_args()
    kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
    out = {"machine": machine(), "at": domain.now_text(), "ingest": [], "verify": []}
    res = Resources()
    try:
        for kind in kinds:
            if args.what in ("ingest", "all"):
                r = bench_ingest(res, kind, args.events)
                print(f"ingest  {kind:8} {r['events']} events: {r['end_to_end_per_s']}/s end to "
                      f"end ({r['end_to_end_s']} s), steady {r['steady_per_s']}/s, publish "
                      f"{r['publish_s']} s", flush=True)
                out["ingest"].append(r)
            if args.what in ("verify", "all"):
                r = bench_verify(res, kind, args.records)
                print(f"verify  {kind:8} {r['records']} records: best {r['best_s']} s "
                      f"(runs {r['verify_s']}), as the named request {r['named_request_s']} s, "
                      f"filled in {r['fill_s']} s", flush=True)
                out["verify"].append(r)
    finally:
        res.close()
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
