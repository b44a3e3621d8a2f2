#!/usr/bin/env python3
"""The customer service's benchmark: lookups among 1,000,000 customers; JSON in
bench/results/customer.json, a table on stdout.

    bench/setup.sh                                    # once: wrk and k6
    .venv/bin/python bench/customer_bench.py          # PostgreSQL (database customer_bench)
    .venv/bin/python bench/customer_bench.py --sqlite var/bench/customer.db

1. Loads the demo generator's customers (seed 7) into a fresh database unless it holds them
   already (``--reload`` to start again): PostgreSQL with COPY, SQLite with executemany.
2. In the service: the ``customer.search`` entrypoint called directly (worker_factory, the
   real unit of work on that database, a province manager's caller without customer:pii):
   p50/p99 of lookups by ID number, by mobile, by name prefix (2 characters) and by pinyin
   initials (2-3 letters), each on keys drawn from the data.
3. Through the centre (registrar, gateway under gunicorn, the customer service under
   ``nameko run``, on a RabbitMQ vhost of its own): ID lookups at a fixed offered rate
   (k6 constant-arrival-rate, open loop) and the maximum lookups/s at 16 connections (wrk).

It starts what it needs and stops all of it at the end. Goals are reported, not asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

import requests
from benchlib import pct, tool

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV = ROOT / ".venv" / "bin"
TOOLS = BENCH / ".tools" / "bin"
SERVICE = ROOT / "services" / "customer"
RESULTS = BENCH / "results"
LOGS = RESULTS / "logs" / "customer"
TOKEN = "customer-bench-token"
sys.path.insert(0, str(SERVICE))

GOALS_MS = {"id": 10.0, "mobile": 10.0, "name_prefix": 50.0, "initials": 50.0,
            "centre_fixed_rate_p99": 30.0}
PG_ADMIN = os.environ.get("ICS_BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
MGMT = os.environ.get("ICS_MANAGEMENT_URL", "http://127.0.0.1:15672")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)




# --- the data -------------------------------------------------------------------------------------

def pg_uri(db: str) -> str:
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://", 1)
    return f"{base}/{db}"


def prepare(uri: str, count: int, seed: int, reload: bool) -> dict:
    from customer.demo import Generator, Loader

    if uri.startswith("postgresql"):
        import psycopg2

        db = uri.rsplit("/", 1)[1]
        conn = psycopg2.connect(PG_ADMIN)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,))
            if reload or not cur.fetchone():
                cur.execute(f'DROP DATABASE IF EXISTS "{db}"')
                cur.execute(f'CREATE DATABASE "{db}"')
        conn.close()
    elif reload:
        Path(uri.split("///", 1)[1]).unlink(missing_ok=True)
    loader = Loader(uri)
    have = loader.count()
    took = None
    if have < count:
        log(f"loading {count - have} customers into {uri}")
        t0 = time.perf_counter()
        gen = Generator(seed, first_id=loader.max_id() + 1)
        loader.load(gen.people(count - have), count - have,
                    lambda n: log(f"  {n} loaded") if n % 200000 == 0 else None)
        took = round(time.perf_counter() - t0, 1)
        log(f"loaded in {took} s")
    loader.engine.dispose()
    return {"customers": max(have, count), "load_s": took}


def sample_keys(uri: str, n: int, seed: int) -> dict[str, list[str]]:
    """Keys people would type, drawn from the data: whole ID numbers and mobiles, the first two
    characters of names, and 2-3 letters of pinyin initials."""
    from sqlalchemy import text

    from invoke_centre.kit import make_engine

    engine = make_engine(uri)
    rng = random.Random(seed)
    with engine.connect() as conn:
        top = conn.execute(text("SELECT max(id) FROM customers")).scalar_one()
        ids = [rng.randrange(1, top + 1) for _ in range(n)]
        rows = []
        for i in range(0, n, 1000):
            chunk = ids[i:i + 1000]
            rows += conn.execute(text(
                "SELECT id_number, mobile, name, name_initials FROM customers WHERE id IN "
                f"({','.join(map(str, chunk))})")).all()
    engine.dispose()
    rng.shuffle(rows)
    return {
        "id": [r[0] for r in rows],
        "mobile": [r[1] for r in rows if r[1]],
        "name_prefix": [r[2][:2] for r in rows],
        "initials": [r[3][:rng.choice((2, 3))] for r in rows if len(r[3]) >= 2],
    }


# --- in the service ------------------------------------------------------------------------------

CALLER = {"user_id": "bench-mgr", "roles": "manager", "branch": "53",
          "permissions": "customer:read", "grants": "customer:read@53"}


def in_service(uri: str, keys: dict[str, list[str]], per_kind: int) -> dict:
    from customer.repository import CustomerRepository
    from customer.service import CustomerService
    from nameko.testing.services import worker_factory
    from sqlalchemy.orm import sessionmaker

    from invoke_centre.kit import CallerContext, make_engine
    from invoke_centre.kit import UnitOfWork as Work

    # as the service's Database dependency does: reads in autocommit on PostgreSQL
    engine = (make_engine(uri, pool_size=2, isolation_level="AUTOCOMMIT")
              if uri.startswith("postgresql") else make_engine(uri))
    uow = Work(sessionmaker(bind=engine, expire_on_commit=False),
               {"customers": CustomerRepository})
    worker = worker_factory(CustomerService, uow=uow, caller=CallerContext.from_data(CALLER))
    params = {"id": lambda k: {"id_number": k}, "mobile": lambda k: {"mobile": k},
              "name_prefix": lambda k: {"name": k, "name_match": "prefix"},
              "initials": lambda k: {"name": k, "name_match": "initials"}}
    out = {}
    for kind, make in params.items():
        sample = keys[kind][:per_kind]
        for k in sample[:50]:  # warm the pool and the caches
            worker.search_customers(make(k))
        times, found = [], 0
        for k in sample:
            t0 = time.perf_counter()
            answer = worker.search_customers(make(k))
            times.append((time.perf_counter() - t0) * 1000)
            found += bool(answer["items"])
        out[kind] = {"calls": len(times), "found": found, "p50_ms": round(pct(times, 50), 2),
                     "p99_ms": round(pct(times, 99), 2), "max_ms": round(max(times), 2),
                     "mean_ms": round(statistics.fmean(times), 2),
                     "goal_p99_ms": GOALS_MS[kind]}
        log(f"  in service, {kind}: p50 {out[kind]['p50_ms']} ms, p99 {out[kind]['p99_ms']} ms")
    engine.dispose()
    return out


# --- through the centre --------------------------------------------------------------------------

class Mesh:
    def __init__(self, db_uri: str, port: int, workdir: Path, workers: int, threads: int,
                 service_workers: int) -> None:
        self.port, self.workdir = port, workdir
        self.procs: list[subprocess.Popen] = []
        self.vhost = f"customer-bench-{uuid.uuid4().hex[:6]}"
        q = urllib.parse.quote(self.vhost, safe="")
        requests.put(f"{MGMT}/api/vhosts/{q}", auth=("guest", "guest"),
                     timeout=10).raise_for_status()
        requests.put(f"{MGMT}/api/permissions/{q}/guest", auth=("guest", "guest"),
                     json={"configure": ".*", "write": ".*", "read": ".*"},
                     timeout=10).raise_for_status()
        tokens = workdir / "tokens.json"
        tokens.write_text(json.dumps({TOKEN: {
            "user_id": CALLER["user_id"], "roles": ["manager"], "branch": "53",
            "permissions": ["customer:read"], "grants": ["customer:read@53"]}}))
        self.env = {**os.environ, "AMQP_URI": f"amqp://guest:guest@127.0.0.1:5672/{q}",
                    "ICS_DB_URI": f"sqlite:///{workdir / 'ics.db'}", "ICS_TOKENS_FILE": str(tokens),
                    "ICS_OPERATOR_TOKEN": uuid.uuid4().hex, "ICS_HEARTBEAT_S": "2",
                    "CUSTOMER_DB_URI": db_uri, "CUSTOMER_MAX_WORKERS": str(service_workers),
                    "CUSTOMER_MAX_SENSITIVITY": "normal",
                    "PYTHONPATH": os.pathsep.join([str(SERVICE), str(ROOT)]),
                    "PYTHONUNBUFFERED": "1"}
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.workers, self.threads = workers, threads

    def spawn(self, name: str, args: list[str]) -> None:
        out = open(LOGS / f"{name}.log", "wb")  # noqa: SIM115 - the child keeps it
        self.procs.append(subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=out,
                                           stderr=subprocess.STDOUT, start_new_session=True))

    def start(self) -> None:
        subprocess.run([str(VENV / "ics"), "db", "upgrade"], env=self.env, check=True,
                       capture_output=True)
        self.spawn("registrar", [str(VENV / "python"), "-m", "invoke_centre.registrar"])
        self.spawn("gateway", [str(VENV / "gunicorn"), "-k", "gthread", "-w", str(self.workers),
                               "--threads", str(self.threads), "-b", f"127.0.0.1:{self.port}",
                               "--graceful-timeout", "2", "invoke_centre.wsgi:application"])
        self.spawn("customer", [str(VENV / "nameko"), "run", "--config",
                                str(SERVICE / "config.yaml"), "customer.service"])
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                r = requests.post(f"http://127.0.0.1:{self.port}/v1/invoke/customer.dictionaries",
                                  json={}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=2)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the mesh did not answer; see {LOGS}")

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        q = urllib.parse.quote(self.vhost, safe="")
        requests.delete(f"{MGMT}/api/vhosts/{q}", auth=("guest", "guest"), timeout=30)


K6_JS = r"""
import http from 'k6/http';
const keys = JSON.parse(open(__ENV.KEYS));
const url = __ENV.URL;
const params = { headers: { 'Content-Type': 'application/json',
                            'Authorization': 'Bearer ' + __ENV.TOKEN } };
export const options = {
  discardResponseBodies: true,
  summaryTrendStats: ['min', 'med', 'avg', 'p(90)', 'p(99)', 'p(99.9)', 'max'],
  scenarios: { fixed: {
    executor: 'constant-arrival-rate', rate: Number(__ENV.RATE), timeUnit: '1s',
    duration: __ENV.DURATION, preAllocatedVUs: 64, maxVUs: 256,
  } },
};
export default function () {
  const k = keys[Math.floor(Math.random() * keys.length)];
  http.post(url, JSON.stringify({ id_number: k }), params);
}
"""

WRK_LUA = r"""
local keys = {}
for line in io.lines(os.getenv("KEYS_TXT")) do keys[#keys + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
request = function()
  i = i % #keys + 1
  return wrk.format(nil, nil, nil, '{"id_number":"' .. keys[i] .. '"}')
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"non2xx":%d,"errors":%d,"p50_us":%d,' ..
    '"p99_us":%d,"max_us":%d}\n', summary.requests, summary.duration, e.status,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99),
    latency.max))
end
"""


def k6_fixed(port: int, keys: list[str], rate: int, seconds: int) -> dict:
    (LOGS / "keys.json").write_text(json.dumps(keys))
    script = LOGS / "fixed_rate.js"
    script.write_text(K6_JS)
    summary = LOGS / "k6-summary.json"
    summary.unlink(missing_ok=True)
    env = {**os.environ, "URL": f"http://127.0.0.1:{port}/v1/invoke/customer.search",
           "TOKEN": TOKEN, "RATE": str(rate), "DURATION": f"{seconds}s",
           "KEYS": str(LOGS / "keys.json"), "K6_NO_USAGE_REPORT": "true"}
    proc = subprocess.run([tool("k6"), "run", "--quiet", "--no-usage-report", "--no-color",
                           "--summary-export", str(summary), str(script)],
                          capture_output=True, text=True, env=env, timeout=seconds + 120,
                          check=False)
    if not summary.exists():
        raise RuntimeError(f"k6 failed:\n{proc.stdout}\n{proc.stderr}")
    m = json.loads(summary.read_text())["metrics"]
    d = m["http_req_duration"]
    return {"offered_per_s": rate, "seconds": seconds, "requests": m["http_reqs"]["count"],
            "achieved_per_s": round(m["http_reqs"]["rate"], 1),
            "failed": m.get("http_req_failed", {}).get("passes", 0),
            "dropped": m.get("dropped_iterations", {}).get("count", 0),
            "p50_ms": round(d["med"], 2), "p90_ms": round(d["p(90)"], 2),
            "p99_ms": round(d["p(99)"], 2), "max_ms": round(d["max"], 2),
            "goal_p99_ms": GOALS_MS["centre_fixed_rate_p99"]}


def wrk_max(port: int, keys: list[str], connections: int, seconds: int) -> dict:
    (LOGS / "keys.txt").write_text("\n".join(keys) + "\n")
    script = LOGS / "ids.lua"
    script.write_text(WRK_LUA)
    env = {**os.environ, "KEYS_TXT": str(LOGS / "keys.txt"), "TOKEN": TOKEN}
    out = subprocess.run([tool("wrk"), "-t2", f"-c{connections}", f"-d{seconds}s", "-s",
                          str(script), f"http://127.0.0.1:{port}/v1/invoke/customer.search"],
                         capture_output=True, text=True, env=env, timeout=seconds + 60,
                         check=False).stdout
    m = re.search(r"WRKJSON (\{.*\})", out)
    if not m:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    d = json.loads(m.group(1))
    return {"connections": connections, "seconds": seconds, "requests": d["requests"],
            "per_s": round(d["requests"] / (d["duration_us"] / 1e6), 1),
            "non2xx": d["non2xx"], "errors": d["errors"],
            "p50_ms": round(d["p50_us"] / 1000, 2), "p99_ms": round(d["p99_us"] / 1000, 2)}


def sequential(port: int, keys: list[str], n: int) -> dict:
    """One client, one lookup after the other: the latency of a lookup without queueing."""
    http = requests.Session()
    url = f"http://127.0.0.1:{port}/v1/invoke/customer.search"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    times = []
    for k in keys[:n]:
        t0 = time.perf_counter()
        r = http.post(url, json={"id_number": k}, headers=headers, timeout=10)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200 and r.json()["data"]["items"], r.text
    return {"calls": len(times), "p50_ms": round(pct(times, 50), 2),
            "p99_ms": round(pct(times, 99), 2), "max_ms": round(max(times), 2)}


def machine() -> dict:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    pg = subprocess.run(["psql", "--version"], capture_output=True, text=True,
                        check=False).stdout.strip() \
        if shutil.which("psql") else "?"
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem, 1),
            "kernel": platform.release(), "python": platform.python_version(), "psql": pg}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sqlite", metavar="PATH", help="bench SQLite at PATH instead of PostgreSQL")
    ap.add_argument("--pg-db", default="customer_bench")
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--reload", action="store_true", help="drop and load the data again")
    ap.add_argument("--per-kind", type=int, default=3000, help="lookups per kind in the service")
    ap.add_argument("--rates", default="300,200,100",
                    help="offered ID lookups/s via the centre, one phase each (first: the goal)")
    ap.add_argument("--seconds", type=int, default=30, help="length of each load phase")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--port", type=int, default=18088)
    ap.add_argument("--gateway-workers", type=int, default=2)
    ap.add_argument("--gateway-threads", type=int, default=16)
    ap.add_argument("--service-workers", type=int, default=10)
    ap.add_argument("--skip-centre", action="store_true")
    args = ap.parse_args()

    LOGS.mkdir(parents=True, exist_ok=True)
    if args.sqlite:
        uri = f"sqlite:///{Path(args.sqlite).resolve()}"
    else:
        uri = pg_uri(args.pg_db)
    kind = "sqlite" if args.sqlite else "postgresql"
    result = {"database": kind, "machine": machine(), "at": time.strftime("%Y-%m-%d %H:%M:%S"),
              "command": " ".join([".venv/bin/python", "bench/customer_bench.py", *sys.argv[1:]])}
    result["data"] = prepare(uri, args.count, args.seed, args.reload)
    # this machine is shared: what else ran is part of the figures
    result["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
    keys = sample_keys(uri, max(args.per_kind, 5000), args.seed + 1)
    log("in the service")
    result["in_service"] = in_service(uri, keys, args.per_kind)
    if not args.skip_centre:
        mesh = Mesh(uri, args.port, LOGS, args.gateway_workers, args.gateway_threads,
                    args.service_workers)
        try:
            mesh.start()
            log("warming up through the centre")
            wrk_max(args.port, keys["id"], args.connections, 5)
            result["centre_sequential"] = sequential(args.port, keys["id"], 1000)
            log(f"  one client, sequential: {result['centre_sequential']}")
            result["centre_fixed_rate"] = []
            for rate in (int(x) for x in args.rates.split(",") if x):
                log(f"fixed rate: {rate} ID lookups/s for {args.seconds} s (k6)")
                result["centre_fixed_rate"].append(k6_fixed(args.port, keys["id"], rate,
                                                            args.seconds))
                log(f"  {result['centre_fixed_rate'][-1]}")
            log(f"maximum: {args.connections} connections for {args.seconds} s (wrk)")
            result["centre_max"] = wrk_max(args.port, keys["id"], args.connections, args.seconds)
            log(f"  {result['centre_max']}")
            result["centre_setup"] = {"gateway": f"gunicorn gthread {args.gateway_workers} "
                                      f"workers x {args.gateway_threads} threads",
                                      "service": f"1 instance, max_workers {args.service_workers}"}
        finally:
            mesh.stop()
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    out = RESULTS / f"customer-{kind}.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(result, indent=2, ensure_ascii=False))
    log(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
