#!/usr/bin/env python3
"""The mesh benchmark: one run, one machine, one table; JSON in bench/results/latest.json.

    bench/setup.sh                         # once: wrk, k6 and py-spy
    .venv/bin/python bench/run.py          # the whole run (about 6 minutes)
    .venv/bin/python bench/run.py --quick  # shorter phases, fewer gunicorn settings

What it measures, each against the same echo:
  1. raw pika RPC against a bare pika echo consumer (calls/s, N in flight);
  2. raw pika RPC in nameko's wire protocol against the nameko echo service;
  3. the named request ``echo.echo`` through the gateway under gunicorn (wrk, C connections);
  4. p50/p99 at a fixed offered rate of half the gateway's own maximum (k6, open loop);
  5. time from a service's spawn to its first successful call through the gateway;
  6. the latency of 503s once the service has said goodbye (SIGTERM);
plus the CPU each process spent per call in every phase, py-spy profiles of the service and
of the gateway workers, and a sweep of gunicorn workers x threads.

It starts everything it needs (registrar, gateway on --port, echo service, bare echo) on its
own RabbitMQ vhost and SQLite file, and stops all of it when done. It is a benchmark, not a
test: it fails only when it cannot run; goals are reported, not asserted.
"""

from __future__ import annotations

import argparse
import atexit
import collections
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

from benchlib import pct, tool

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV = ROOT / ".venv" / "bin"
TOOLS = BENCH / ".tools" / "bin"
RESULTS = BENCH / "results"
LOGS = RESULTS / "logs" / "mesh"  # others keep logs beside it
TOKEN = "benchtok"
HZ = os.sysconf("SC_CLK_TCK")

GOALS = {
    "gateway_vs_nameko": 0.5,   # gateway calls/s >= 0.5 x raw nameko calls/s
    "fixed_rate_p99_ms": 25.0,
    "first_call_s": 1.0,
    "goodbye_503_ms": 50.0,
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)




def r(x, n=2):
    return None if x is None else round(x, n)


# --- processes ------------------------------------------------------------------------------
class Procs:
    """Every process this run starts, each in its own session; all stopped at exit."""

    def __init__(self) -> None:
        self.live: dict[str, subprocess.Popen] = {}
        atexit.register(self.stop_all)

    def start(self, name: str, cmd: list[str], env: dict, cwd: Path = ROOT) -> subprocess.Popen:
        out = open(LOGS / f"{name}.log", "ab")
        out.write(f"\n=== {time.time():.6f} start {' '.join(cmd)}\n".encode())
        out.flush()
        p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True)
        self.live[name] = p
        return p

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15) -> float | None:
        """Signal the process group this run started; return the exit time (epoch)."""
        p = self.live.pop(name, None)
        if p is None:
            return None
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        return time.time()

    def stop_all(self) -> None:
        for name in list(self.live):
            self.stop(name, timeout=10)


# --- CPU accounting -------------------------------------------------------------------------
def proc_split(pid: int) -> tuple[int, int]:
    """(user ticks, system ticks) of a process, all its threads included."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]), int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0, 0


def ctx_switches(pid: int) -> int:
    """Voluntary + involuntary context switches of every thread of a process."""
    n = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            for ln in open(f"/proc/{pid}/task/{tid}/status"):
                if ln.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    n += int(ln.split()[1])
        except (OSError, ValueError):
            pass
    return n


def proc_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return 0


def descendants(root: int) -> list[int]:
    kids: dict[int, list[int]] = collections.defaultdict(list)
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids[ppid].append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, ()))
    return out


def broker_pids() -> list[int]:
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if open(f"/proc/{d}/comm").read().strip() == "beam.smp":
                    pids.append(int(d))
            except OSError:
                pass
    return pids


def system_ticks() -> tuple[int, int]:
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    idle = vals[3] + vals[4]
    return sum(vals[:8]) - idle, sum(vals[:8])


class CpuMeter:
    """CPU seconds spent by groups of processes (and by the whole machine) over a window."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups

    def snap(self) -> dict:
        busy, total = system_ticks()
        snap = {g: sum(proc_ticks(p) for p in pids) for g, pids in self.groups.items()}
        for g, pids in self.groups.items():
            snap[f"_sys_{g}"] = sum(proc_split(p)[1] for p in pids)
            snap[f"_cs_{g}"] = sum(ctx_switches(p) for p in pids)
        snap["_busy"], snap["_total"], snap["_t"] = busy, total, time.time()
        return snap

    @staticmethod
    def kernel(a: dict, b: dict, calls: int) -> dict:
        """Share of each group's CPU spent in the kernel, and its context switches per call."""
        out = {}
        for g in a:
            if g.startswith("_"):
                continue
            cpu = b[g] - a[g]
            out[g] = {"sys_share": r((b[f"_sys_{g}"] - a[f"_sys_{g}"]) / cpu, 2) if cpu else None,
                      "ctx_switches_per_call": r((b[f"_cs_{g}"] - a[f"_cs_{g}"]) / max(calls, 1),
                                                 1)}
        return out

    @staticmethod
    def delta(a: dict, b: dict) -> dict:
        out = {g: (b[g] - a[g]) / HZ for g in a if not g.startswith("_")}  # seconds
        out["machine_busy"] = (b["_busy"] - a["_busy"]) / HZ
        out["wall"] = b["_t"] - a["_t"]
        return out


def per_call(cpu: dict, calls: int, extra: dict | None = None) -> dict:
    """CPU milliseconds per call by process group, and what nobody of ours spent ("other")."""
    cpu = dict(cpu)
    cpu.update(extra or {})
    ours = sum(v for k, v in cpu.items() if k not in ("machine_busy", "wall"))
    out = {k: r(v * 1000 / max(calls, 1), 3) for k, v in cpu.items()
           if k not in ("machine_busy", "wall")}
    out["total_ours"] = r(ours * 1000 / max(calls, 1), 3)
    out["other_on_machine"] = r((cpu["machine_busy"] - ours) * 1000 / max(calls, 1), 3)
    out["machine_cores_busy"] = r(cpu["machine_busy"] / cpu["wall"], 2)
    out["other_cores"] = r((cpu["machine_busy"] - ours) / cpu["wall"], 2)
    return out


def child_cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    return u.ru_utime + u.ru_stime


def wait_quiet(max_wait: float, limit: float = 0.2) -> dict:
    """Wait (at most max_wait s) until the machine is near idle: others share these 2 cores."""
    t0 = time.time()
    busy = None
    while True:
        a = system_ticks()
        time.sleep(1)
        b = system_ticks()
        busy = (b[0] - a[0]) / HZ
        if busy <= limit or time.time() - t0 >= max_wait:
            break
    return {"waited_s": round(time.time() - t0, 1), "cores_busy": round(busy, 2)}


def noisy(res: dict, limit: float) -> bool:
    return res["cpu_ms_per_call"]["other_cores"] > limit


def least_noisy(measure, args, label: str):
    """Measure; while other users of the machine took more than --noise cores, wait and redo."""
    tries = []
    for i in range(1 + args.retries):
        q = wait_quiet(args.quiet_wait)
        res = measure()
        res["quiet_before"] = q
        tries.append(res)
        if not noisy(res, args.noise):
            break
        log(f"   {label}: others used {res['cpu_ms_per_call']['other_cores']} cores; redo")
    best = min(tries, key=lambda x: x["cpu_ms_per_call"]["other_cores"])
    best["attempts"] = len(tries)
    best["other_cores_per_attempt"] = [t["cpu_ms_per_call"]["other_cores"] for t in tries]
    return best


# --- HTTP -----------------------------------------------------------------------------------
class Http:
    """One keep-alive connection to the gateway (for polling, not for load)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def post(self, path: str, body: bytes = b'{"n":1}', timeout: float = 5) -> tuple[int, float]:
        t0 = time.perf_counter()
        for attempt in (0, 1):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                           timeout=timeout)
                self.conn.request("POST", path, body, {
                    "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
                resp = self.conn.getresponse()
                resp.read()
                return resp.status, time.perf_counter() - t0
            except (OSError, http.client.HTTPException):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt:
                    return 0, time.perf_counter() - t0
        return 0, 0.0

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            c.request("GET", path)
            resp = c.getresponse()
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException):
            return 0, b""


INVOKE = "/v1/invoke/echo.echo"


# --- load generators --------------------------------------------------------------------------
WRK_LUA = r"""
wrk.method = "POST"
wrk.body = '{"n":1}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"duration_us":%%d,"non2xx":%%d,"connect":%%d,"read":%%d,' ..
    '"write":%%d,"timeout":%%d,"p50_us":%%d,"p90_us":%%d,"p99_us":%%d,"max_us":%%d,"mean_us":%%f}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
""" % TOKEN


def wrk(port: int, connections: int, duration: float, threads: int = 1) -> dict:
    script = LOGS / "wrk.lua"
    script.write_text(WRK_LUA)
    cmd = [tool("wrk"), f"-t{threads}", f"-c{connections}", f"-d{int(duration)}s", "--latency",
           "-s", str(script), f"http://127.0.0.1:{port}{INVOKE}"]
    c0 = child_cpu()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    cpu = child_cpu() - c0
    m = re.search(r"WRKJSON (\{.*\})", out)
    if not m:
        raise RuntimeError(f"wrk printed no summary:\n{out}")
    d = json.loads(m.group(1))
    secs = d["duration_us"] / 1e6
    return {
        "requests": d["requests"], "duration_s": round(secs, 2),
        "req_per_s": round(d["requests"] / secs, 1),
        "non2xx": d["non2xx"],
        "socket_errors": d["connect"] + d["read"] + d["write"] + d["timeout"],
        "latency_ms": {"p50": r(d["p50_us"] / 1000), "p90": r(d["p90_us"] / 1000),
                       "p99": r(d["p99_us"] / 1000), "max": r(d["max_us"] / 1000)},
        "loadgen_cpu_s": round(cpu, 3),
    }


K6_JS = r"""
import http from 'k6/http';
const url = __ENV.URL;
const params = { headers: { 'Content-Type': 'application/json',
                            'Authorization': 'Bearer ' + __ENV.TOKEN } };
export const options = {
  discardResponseBodies: true,
  summaryTrendStats: ['min', 'med', 'avg', 'p(90)', 'p(99)', 'p(99.9)', 'max'],
  scenarios: { fixed: {
    executor: 'constant-arrival-rate', rate: Number(__ENV.RATE), timeUnit: '1s',
    duration: __ENV.DURATION, preAllocatedVUs: Number(__ENV.VUS), maxVUs: 4 * Number(__ENV.VUS),
  } },
};
export default function () { http.post(url, '{"n":1}', params); }
"""


def k6_fixed_rate(port: int, rate: int, duration: float, vus: int = 64) -> dict:
    script = LOGS / "fixed_rate.js"
    script.write_text(K6_JS)
    summary = LOGS / "k6-summary.json"
    summary.unlink(missing_ok=True)
    env = {**os.environ, "URL": f"http://127.0.0.1:{port}{INVOKE}", "TOKEN": TOKEN,
           "RATE": str(rate), "DURATION": f"{int(duration)}s", "VUS": str(vus),
           "K6_NO_USAGE_REPORT": "true"}
    cmd = [tool("k6"), "run", "--quiet", "--no-usage-report", "--no-color",
           "--summary-export", str(summary), str(script)]
    c0 = child_cpu()
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=duration + 120)
    cpu = child_cpu() - c0
    if not summary.exists():
        raise RuntimeError(f"k6 failed:\n{proc.stdout}\n{proc.stderr}")
    m = json.loads(summary.read_text())["metrics"]
    dur = m["http_req_duration"]
    reqs = m["http_reqs"]["count"]
    failed = m.get("http_req_failed", {}).get("passes", 0)  # "passes" = requests that failed
    dropped = m.get("dropped_iterations", {}).get("count", 0)
    return {
        "offered_per_s": rate, "duration_s": duration, "vus": vus,
        "requests": reqs, "achieved_per_s": round(m["http_reqs"]["rate"], 1),
        "failed": failed, "dropped_iterations": dropped,
        "latency_ms": {"p50": r(dur["med"]), "p90": r(dur["p(90)"]), "p99": r(dur["p(99)"]),
                       "p99.9": r(dur["p(99.9)"]), "max": r(dur["max"])},
        "loadgen_cpu_s": round(cpu, 3), "wall_s": round(time.time() - t0, 1),
    }


def pika_rpc(env: dict, mode: str, inflight: int, duration: float, warmup: float) -> dict:
    cmd = [str(VENV / "python"), str(BENCH / "pika_rpc.py"), "--mode", mode,
           "--inflight", str(inflight), "--duration", str(duration), "--warmup", str(warmup)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env,
                         timeout=duration + warmup + 60)
    if out.returncode:
        raise RuntimeError(f"pika_rpc failed: {out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- profiles -------------------------------------------------------------------------------
_FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _where(file: str) -> str:
    for mark in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if mark in file:
            rest = file.split(mark, 1)[1]
            return rest.split("/", 1)[0].removesuffix(".py") if mark != "/work/main/" \
                else rest.removesuffix(".py").replace("/", ".")
    return file


def summarize_profile(raw: Path, top: int = 12) -> dict:
    """Self time by function and inclusive time by package, from py-spy's collapsed stacks."""
    self_t: collections.Counter = collections.Counter()
    incl_pkg: collections.Counter = collections.Counter()
    incl_fn: collections.Counter = collections.Counter()
    by_thread: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        n = int(n)
        frames = stack.split(";")
        thread = next((f for f in frames if f.startswith("thread (")), None)
        if thread:
            by_thread[thread_group(thread.split("): ", 1)[-1])] += n
        frames = [f for f in frames if not (f.startswith("process ") or f.startswith("thread ("))]
        if not frames:
            continue
        total += n
        m = _FRAME.match(frames[-1])
        leaf = f"{m['fn']} ({_where(m['file'])})" if m else frames[-1]
        self_t[leaf] += n
        pkgs, fns = set(), set()
        for f in frames:
            m = _FRAME.match(f)
            if m:
                pkgs.add(_where(m["file"]))
                fns.add(f"{m['fn']} ({_where(m['file'])})")
        for p in pkgs:
            incl_pkg[p] += n
        for f in fns:
            incl_fn[f] += n
    total = max(total, 1)
    return {
        "samples": total,
        "self_top": [[k, round(100 * v / total, 1)] for k, v in self_t.most_common(top)],
        "inclusive_by_module_pct": {k: round(100 * v / total, 1)
                                    for k, v in incl_pkg.most_common(15)},
        "inclusive_by_function_pct": {k: round(100 * v / total, 1)
                                      for k, v in incl_fn.most_common(40)},
        "by_thread_pct": {k: round(100 * v / total, 1) for k, v in by_thread.most_common(6)},
    }


def thread_group(name: str) -> str:
    if name.startswith("ThreadPoolExecutor"):
        return "request threads"
    return name


def thread_names(pid: int) -> dict[int, str]:
    out = subprocess.run([tool("py-spy"), "dump", "--nonblocking", "--pid", str(pid)],
                         capture_output=True, text=True, timeout=30).stdout
    return {int(m[1]): m[2] for m in re.finditer(r'^Thread (\d+) \([^)]*\): "(.*)"$', out, re.M)}


def thread_ticks(pid: int) -> dict[int, int]:
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[int(tid)] = int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return out


def pyspy_record(pid: int, seconds: float, name: str,
                 subprocesses: bool = False) -> subprocess.Popen:
    out = LOGS / f"profile-{name}.txt"
    cmd = [tool("py-spy"), "record", "--nonblocking", "--gil", "--rate", "200", "--format", "raw",
           "--threads", "--duration", str(int(seconds)), "--output", str(out), "--pid", str(pid)]
    if subprocesses:
        cmd.append("--subprocesses")
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(LOGS / "py-spy.log", "ab"))


class RegistryWatch:
    """When announcements and goodbyes reach the bus (a listener of our own on ics.registry)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.events: list[tuple[float, str, str]] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        import pika

        conn = pika.BlockingConnection(pika.URLParameters(self.uri))
        ch = conn.channel()
        ch.exchange_declare("ics.registry", "topic", durable=True)
        q = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
        for kind in ("announce", "goodbye"):
            ch.queue_bind(q, "ics.registry", routing_key=f"{kind}.*")

        def on_msg(_ch, method, _props, body):
            kind, _, service = method.routing_key.partition(".")
            self.events.append((time.time(), kind, service))

        ch.basic_consume(q, on_msg, auto_ack=True)
        self._ready.set()
        while not self._stop.is_set():
            conn.process_data_events(time_limit=0.1)
        conn.close()

    def first(self, kind: str, after: float) -> float | None:
        return next((t for t, k, s in list(self.events) if k == kind and s == "echo"
                     and t >= after), None)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


# --- the mesh -------------------------------------------------------------------------------
class Mesh:
    def __init__(self, args) -> None:
        self.args = args
        self.procs = Procs()
        self.port = args.port
        self.db = Path(args.workdir) / "bench.db"
        self.src = ROOT  # where invoke_centre/ and deploy/ are imported from
        tokens = Path(args.workdir) / "tokens.json"
        self.env = {**os.environ,
                    "AMQP_URI": args.amqp_uri,
                    "ICS_DB_URI": f"sqlite:///{self.db}",
                    "ICS_OPERATOR_TOKEN": TOKEN,  # older gateways
                    "ICS_TOKENS_FILE": str(tokens),  # newer ones: a static token
                    "PYTHONUNBUFFERED": "1",
                    "PYTHONWARNINGS": "ignore"}
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.env.pop("PYTHONPATH", None)
        self.gateway_cfg: tuple[int, int] | None = None
        self.watch: RegistryWatch | None = None
        self.service_pid: int | None = None

    # database and registrar
    def prepare(self) -> dict:
        """A fresh database, a token, and (with --code head) a snapshot of the committed code.

        Others edit the work tree while this runs: by default the mesh runs the committed
        ``invoke_centre/`` and ``deploy/`` of HEAD, exported to the work dir, so that a
        half-saved file cannot break a run or change what is measured midway.
        """
        work = Path(self.args.workdir)
        work.mkdir(parents=True, exist_ok=True)
        (work / "tokens.json").write_text(json.dumps({TOKEN: {
            "user_id": "bench", "roles": ["operator"], "permissions": ["*"]}}))
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "invoke_centre", "deploy"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
        if self.args.code == "head":
            src = work / "src"
            shutil.rmtree(src, ignore_errors=True)
            src.mkdir()
            archive = subprocess.run(["git", "archive", "HEAD", "invoke_centre", "deploy"],
                                     cwd=ROOT, capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
            self.src = src
            # first on sys.path for every process (their cwd is src too, or bench/)
            self.env["PYTHONPATH"] = str(src)
        code = {"code": self.args.code, "commit": commit,
                "work_tree_changes": dirty.splitlines() if self.args.code == "worktree" else [],
                "imported_from": str(self.src)}
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.db}{suffix}").unlink(missing_ok=True)
        subprocess.run([str(VENV / "ics"), "db", "upgrade"], env=self.env, check=True,
                       capture_output=True, cwd=self.src)
        return code

    def start_registrar(self) -> None:
        self.procs.start("registrar", [str(VENV / "python"), "-m", "invoke_centre.registrar"],
                         self.env, cwd=self.src)

    # gateway
    def start_gateway(self, workers: int, threads: int) -> None:
        conf = self.src / "deploy" / "gunicorn.conf.py"
        cmd = [str(VENV / "gunicorn")]
        if conf.exists():
            cmd += ["-c", str(conf)]
        else:
            cmd += ["-k", "gthread"]
        cmd += ["-w", str(workers), "--threads", str(threads), "-b", f"127.0.0.1:{self.port}",
                "invoke_centre.wsgi:application"]
        env = {**self.env, "ICS_WORKERS": str(workers), "ICS_THREADS": str(threads),
               "ICS_BIND": f"127.0.0.1:{self.port}"}
        self.procs.start("gateway", cmd, env, cwd=self.src)
        self.gateway_cfg = (workers, threads)
        deadline = time.time() + 30
        h = Http(self.port)
        while time.time() < deadline:
            status, body = h.get("/healthz")
            if status == 200 and b'"connected"' in body:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("gateway did not become healthy; see bench/results/logs/gateway.log")
        while len(self.gateway_workers()) < workers and time.time() < deadline:
            time.sleep(0.1)

    def stop_gateway(self) -> None:
        self.procs.stop("gateway")
        self.gateway_cfg = None

    def gateway_pid(self) -> int:
        return self.procs.live["gateway"].pid

    def gateway_workers(self) -> list[int]:
        return [p for p in descendants(self.gateway_pid()) if p != self.gateway_pid()]

    def wait_serving(self, timeout: float = 20) -> None:
        """Until every worker answers echo.echo (each learns of the service on its own)."""
        h = Http(self.port)
        deadline = time.time() + timeout
        ok = 0
        while time.time() < deadline and ok < 20:
            status, _ = h.post(INVOKE)
            ok = ok + 1 if status == 200 else 0
            if status != 200:
                h.conn = None  # a new connection may land on another worker
                time.sleep(0.05)
        if ok < 20:
            raise RuntimeError("echo.echo is not served through the gateway")

    # services
    def start_service(self) -> tuple[float, subprocess.Popen]:
        t = time.time()
        p = self.procs.start("echo_service",
                             [str(VENV / "nameko"), "run", "--config", "echo.yaml",
                              "echo_service"],
                             {**self.env, "PYTHONPATH": os.pathsep.join(
                                 p for p in (str(BENCH), self.env.get("PYTHONPATH")) if p)},
                             cwd=BENCH)
        self.service_pid = p.pid
        return t, p

    def announced_at(self, after: float) -> float | None:
        text = (LOGS / "echo_service.log").read_text(errors="replace")
        for m in re.finditer(r"^(\d+\.\d+) INFO \S+ announced echo as", text, re.M):
            if float(m.group(1)) >= after:
                return float(m.group(1))
        return None


# --- phases ---------------------------------------------------------------------------------
def phase_raw(mesh: Mesh, mode: str, args) -> dict:
    groups = {"server": [mesh.service_pid] if mode == "nameko" else
              [mesh.procs.live["bare_echo"].pid], "broker": broker_pids()}
    meter = CpuMeter(groups)
    done = {}

    def run():
        done["r"] = pika_rpc(mesh.env, mode, args.inflight, args.duration, args.warmup)

    t = threading.Thread(target=run)
    t.start()
    time.sleep(args.warmup + 0.4)  # the client's own start-up plus its warm-up
    a = meter.snap()
    time.sleep(args.duration - 0.2)
    b = meter.snap()
    t.join()
    res = done["r"]
    cpu = CpuMeter.delta(a, b)
    res["kernel"] = CpuMeter.kernel(a, b, int(res["calls"] * cpu["wall"] / res["duration_s"]))
    scale = res["duration_s"] / cpu["wall"]  # normalise the window to the client's
    cpu = {k: v * scale for k, v in cpu.items()}
    res["cpu_ms_per_call"] = per_call(cpu, res["calls"], {"client": res.pop("client_cpu_s")})
    res.pop("t_start", None), res.pop("t_end", None)
    return res


def phase_wrk(mesh: Mesh, args, connections: int, duration: float,
              by_thread: bool = False) -> dict:
    groups = {"gateway": mesh.gateway_workers() + [mesh.gateway_pid()], "broker": broker_pids()}
    if "echo_service" in mesh.procs.live:
        groups["service"] = [mesh.service_pid]
    wrk(mesh.port, connections, max(2, args.warmup))  # warm-up, discarded
    workers = mesh.gateway_workers()
    names = {w: thread_names(w) for w in workers} if by_thread else {}
    meter = CpuMeter(groups)
    a = meter.snap()
    ta = {w: thread_ticks(w) for w in names}
    res = wrk(mesh.port, connections, duration)
    tb = {w: thread_ticks(w) for w in names}
    b = meter.snap()
    cpu = CpuMeter.delta(a, b)
    res["kernel"] = CpuMeter.kernel(a, b, res["requests"])
    if by_thread:
        # cores used by each kind of thread in each worker: the bus thread is one per process
        per_worker = []
        for w in names:
            use: collections.Counter = collections.Counter()
            for tid, ticks in tb[w].items():
                group = thread_group(names[w].get(tid, "unnamed"))
                use[group] += (ticks - ta[w].get(tid, 0)) / HZ / cpu["wall"]
            per_worker.append({k: round(v, 2) for k, v in use.most_common()})
        res["thread_cores_per_worker"] = per_worker
    res["cpu_ms_per_call"] = per_call(cpu, res["requests"],
                                      {"loadgen": res.pop("loadgen_cpu_s")})
    # how the keep-alive connections spread over the workers
    res["worker_cpu_s"] = [round(proc_ticks(p) / HZ, 2) for p in mesh.gateway_workers()]
    return res


def phase_fixed_rate(mesh: Mesh, args, rate: int, duration: float | None = None) -> dict:
    groups = {"gateway": mesh.gateway_workers() + [mesh.gateway_pid()],
              "service": [mesh.service_pid], "broker": broker_pids()}
    meter = CpuMeter(groups)
    a = meter.snap()
    res = k6_fixed_rate(mesh.port, rate, duration or args.fixed_duration)
    b = meter.snap()
    cpu = CpuMeter.delta(a, b)
    res["cpu_ms_per_call"] = per_call(cpu, res["requests"],
                                      {"loadgen": res.pop("loadgen_cpu_s")})
    return res


def import_times(env: dict, cwd: Path) -> dict:
    """What a service's start pays before any of its own code runs: imports (median of 3)."""
    out = {}
    for label, stmt in (("python", "pass"),
                        ("nameko_runtime", "import nameko.cli.main, nameko.containers, "
                                           "nameko.rpc, eventlet"),
                        ("invoke_centre_kit", "import invoke_centre.kit")):
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run([str(VENV / "python"), "-W", "ignore", "-c", stmt], check=True,
                           capture_output=True, env=env, cwd=cwd)
            runs.append(time.perf_counter() - t0)
        out[label] = r(sorted(runs)[1], 3)
    top = subprocess.run([str(VENV / "python"), "-W", "ignore", "-X", "importtime", "-c",
                          "import invoke_centre.kit"], capture_output=True, text=True,
                         env=env, cwd=cwd).stderr
    rows = []
    for ln in top.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|(\s*)(\S+)", ln)
        if m and len(m.group(2)) <= 3:  # invoke_centre.kit and its direct imports
            rows.append((int(m.group(1)) / 1e6, m.group(3)))
    out["kit_imports_s"] = {name: round(t, 3) for t, name in sorted(rows, reverse=True)[:8]}
    return out


def phase_first_call(mesh: Mesh, kind: str) -> dict:
    """Spawn the echo service and poll echo.echo every 20 ms until the first 200."""
    h = Http(mesh.port)
    statuses: collections.Counter = collections.Counter()
    spawned, proc = mesh.start_service()
    first = None
    t_next = time.perf_counter()
    while time.time() - spawned < 20:
        sent = time.time()
        status, _ = h.post(INVOKE, timeout=5)
        statuses[status] += 1
        if status == 200:
            first = sent
            break
        t_next += 0.02
        time.sleep(max(0.0, t_next - time.perf_counter()))
    ann = mesh.announced_at(spawned)
    on_bus = mesh.watch.first("announce", spawned)
    return {
        "kind": kind,
        "spawn_to_first_200_s": r(first - spawned, 3) if first else None,
        "spawn_to_announced_s": r(ann - spawned, 3) if ann else None,
        "spawn_to_announce_on_bus_s": r(on_bus - spawned, 3) if on_bus else None,
        "announced_to_first_200_s": r(first - ann, 3) if first and ann else None,
        "statuses_before": {str(k): v for k, v in statuses.items()},
    }


def phase_goodbye(mesh: Mesh, args, rate: int) -> dict:
    """SIGTERM the service; watch what callers get meanwhile; then time the 503s."""
    probe: list[tuple[float, int, float]] = []
    stop = threading.Event()

    def prober():
        h = Http(mesh.port)
        while not stop.is_set():
            sent = time.time()
            status, lat = h.post(INVOKE, timeout=10)
            probe.append((sent, status, lat))
            time.sleep(0.005)

    ths = [threading.Thread(target=prober) for _ in range(args.probers)]
    for th in ths:
        th.start()
    time.sleep(0.3)
    p = mesh.procs.live["echo_service"]
    t_term = time.time()
    os.kill(p.pid, signal.SIGTERM)
    p.wait(30)
    t_exit = time.time()
    mesh.procs.live.pop("echo_service", None)
    time.sleep(1.0)
    stop.set()  # a prober stuck in a call comes back at the route's deadline (3 s)
    for th in ths:
        th.join()
    window = sorted((s - t_term, st, lat) for s, st, lat in probe if s >= t_term)
    goodbye = mesh.watch.first("goodbye", t_term)
    goodbye_rel = goodbye - t_term if goodbye else None
    first_503 = next((s for s, st, _ in window if st == 503), None)
    slow = [(round(s, 3), st, round(lat * 1000, 1)) for s, st, lat in window if lat > 0.05]
    # steady state: sequential, then under load
    h = Http(mesh.port)
    seq = []
    statuses = collections.Counter()
    for _ in range(args.goodbye_requests):
        status, lat = h.post(INVOKE)
        statuses[status] += 1
        seq.append(lat * 1000)
    loaded = k6_fixed_rate(mesh.port, rate, 10)
    # the same request path minus the bus: what the gateway costs without its AMQP half
    saturated = least_noisy(lambda: phase_wrk(mesh, args, args.connections, 5), args, "503s")
    return {
        "sigterm_to_exit_s": r(t_exit - t_term, 3),
        "sigterm_to_first_503_s": r(first_503, 3),
        "sigterm_to_goodbye_on_bus_s": r(goodbye_rel, 3),
        "during_shutdown": {
            "requests": len(window),
            "statuses": {str(k): v for k, v in
                         collections.Counter(st for _, st, _ in window).items()},
            "probers": args.probers,
            "max_latency_ms": r(max((lat for _, _, lat in window), default=0) * 1000),
            "over_50ms": slow[:20],
            "504_sent_before_goodbye": sum(1 for t, st, _ in window if st == 504
                                           and goodbye_rel is not None and t < goodbye_rel),
        },
        "sequential": {"requests": len(seq), "statuses": {str(k): v for k, v in statuses.items()},
                       "latency_ms": {"p50": r(pct(seq, 50)), "p99": r(pct(seq, 99)),
                                      "max": r(max(seq))}},
        "at_fixed_rate": {k: loaded[k] for k in ("offered_per_s", "achieved_per_s", "requests",
                                                 "failed", "latency_ms")},
        "saturated_wrk": {k: saturated[k] for k in ("req_per_s", "non2xx", "requests",
                                                    "latency_ms", "cpu_ms_per_call", "kernel")},
    }


# --- machine --------------------------------------------------------------------------------
def machine() -> dict:
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                if ln.startswith("model name")), "?")
    mem = next((int(ln.split()[1]) for ln in open("/proc/meminfo")
                if ln.startswith("MemTotal")), 0)
    try:
        rmq = subprocess.run(["rabbitmqctl", "version"], capture_output=True, text=True,
                             timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        rmq = "?"
    vers = subprocess.run([str(VENV / "python"), "-c",
                           "import importlib.metadata as m; print(' '.join(f'{p}=={m.version(p)}' "
                           "for p in ('nameko','pika','kombu','eventlet','gunicorn')))"],
                          capture_output=True, text=True).stdout.strip()
    wrk_v = subprocess.run([tool("wrk"), "--version"], capture_output=True, text=True)
    k6_v = subprocess.run([tool("k6"), "version"], capture_output=True, text=True).stdout
    return {
        "nproc": os.cpu_count(), "cpu_model": cpu, "ram_gib": round(mem / 1024 / 1024, 1),
        "python": platform.python_version(), "rabbitmq": rmq, "packages": vers,
        "wrk": (wrk_v.stdout + wrk_v.stderr).split("[")[0].strip(),
        "k6": k6_v.split("(")[0].strip(), "kernel": platform.release(),
        "loadavg_at_start": os.getloadavg(),
    }


def deploy_default(src: Path, given: str | None) -> tuple[int, int]:
    """Workers x threads: as given, else the defaults of deploy/gunicorn.conf.py, else 2 x 32."""
    if given:
        w, t = given.split("x")
        return int(w), int(t)
    try:
        conf = (src / "deploy" / "gunicorn.conf.py").read_text()
        w = re.search(r'ICS_WORKERS", "(\d+)"', conf)
        t = re.search(r'ICS_THREADS", "(\d+)"', conf)
        return int(w.group(1)) if w else 2, int(t.group(1)) if t else 32
    except OSError:
        return 2, 32


def prepare_vhost(uri: str) -> None:
    vhost = urllib.parse.unquote(urllib.parse.urlparse(uri).path.lstrip("/")) or "/"
    if vhost == "/" or not shutil.which("rabbitmqctl"):
        return
    # a fresh vhost: no queues or bindings left by an earlier run
    subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True, timeout=60)
    subprocess.run(["rabbitmqctl", "add_vhost", vhost], capture_output=True, timeout=60,
                   check=True)
    subprocess.run(["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                   capture_output=True, timeout=60, check=True)


# --- report ---------------------------------------------------------------------------------
def table(res: dict) -> str:
    rows = []
    bare, nk, gw = res["bare_pika"], res["nameko_pika"], res["gateway_max"]
    fr, fc, gb = res["fixed_rate"], res["first_call"], res["goodbye"]
    g = res["goals"]

    def cpu(x):
        c = x["cpu_ms_per_call"]
        return c.get("total_ours")

    rows.append(("1 raw pika -> bare pika echo", f"{bare['inflight']} in flight",
                 f"{bare['calls_per_s']:.0f} calls/s",
                 f"p50 {bare['latency_ms']['p50']} / p99 {bare['latency_ms']['p99']} ms",
                 f"{cpu(bare)} ms", ""))
    rows.append(("2 raw pika -> nameko echo", f"{nk['inflight']} in flight",
                 f"{nk['calls_per_s']:.0f} calls/s",
                 f"p50 {nk['latency_ms']['p50']} / p99 {nk['latency_ms']['p99']} ms",
                 f"{cpu(nk)} ms", ""))
    rows.append((f"3 gateway (gunicorn {gw['workers']}x{gw['threads']}) -> nameko",
                 f"wrk {gw['connections']} conns", f"{gw['req_per_s']:.0f} req/s",
                 f"p50 {gw['latency_ms']['p50']} / p99 {gw['latency_ms']['p99']} ms",
                 f"{cpu(gw)} ms",
                 f"{g['gateway_vs_nameko']['value']}x of 2 (goal >= 0.5): "
                 f"{'met' if g['gateway_vs_nameko']['met'] else 'NOT met'}"))
    rows.append(("4 gateway at fixed rate (k6, open loop)",
                 f"{fr['offered_per_s']}/s offered", f"{fr['achieved_per_s']:.0f} req/s",
                 f"p50 {fr['latency_ms']['p50']} / p99 {fr['latency_ms']['p99']} ms",
                 f"{cpu(fr)} ms",
                 f"p99 goal <= 25 ms: {'met' if g['fixed_rate_p99_ms']['met'] else 'NOT met'}"))
    cold = fc["cold"]
    warm = fc["warm_median"]
    rows.append(("5 spawn -> first 200 via gateway", "poll every 20 ms",
                 f"cold {cold['spawn_to_first_200_s']} s",
                 f"warm median {warm['spawn_to_first_200_s']} s "
                 f"(announced at {warm['spawn_to_announced_s']} s)", "",
                 f"goal <= 1 s: {'met' if g['first_call_s']['met'] else 'NOT met'}"))
    rows.append(("6 503 after goodbye", f"sequential / k6 {gb['at_fixed_rate']['offered_per_s']}/s",
                 f"{gb['sequential']['latency_ms']['p50']} ms p50",
                 f"p99 {gb['sequential']['latency_ms']['p99']} ms / at fixed rate p99 "
                 f"{gb['at_fixed_rate']['latency_ms']['p99']} ms", "",
                 f"goal <= 50 ms: {'met' if g['goodbye_503_ms']['met'] else 'NOT met'}"))
    head = ("phase", "load", "throughput", "latency", "CPU/call", "goal")
    widths = [max(len(str(x[i])) for x in rows + [head]) for i in range(len(head))]
    def line(x):
        return "  ".join(str(v).ljust(w) for v, w in zip(x, widths)).rstrip()

    out = [line(head), line(tuple("-" * w for w in widths))] + [line(x) for x in rows]
    out.append("")
    out.append("CPU ms per call by process (same run):")
    for name, x in (("bare pika", bare), ("nameko", nk), ("gateway", gw), ("fixed rate", fr)):
        c = {k: v for k, v in x["cpu_ms_per_call"].items() if k != "machine_cores_busy"}
        out.append(f"  {name:10s} " + ", ".join(f"{k} {v}" for k, v in c.items())
                   + f"  (cores busy {x['cpu_ms_per_call']['machine_cores_busy']})")
    out.append("")
    out.append(f"gunicorn sweep (wrk -c{res['gateway_max']['connections']}: req/s and p99; "
               f"k6 at {fr['offered_per_s']}/s: p50/p99):")
    for s in res["gunicorn_sweep"]:
        mark = " <- default" if s["default"] else ""
        mark += " <- best" if s is res["gunicorn_best"] else ""
        f = s.get("fixed_rate")
        fixed = (f"   fixed rate p50 {f['latency_ms']['p50']} / p99 {f['latency_ms']['p99']} ms"
                 if f else "")
        out.append(f"  workers {s['workers']} threads {s['threads']:3d}: "
                   f"{s['req_per_s']:7.0f} req/s  p99 {s['latency_ms']['p99']:6.1f} ms"
                   f"{fixed}{mark}")
    out.append("")
    out.append("ratios: " + ", ".join(f"{k} {v}" for k, v in res["ratios"].items()))
    out.append("CPU-bound ceiling on this machine (cores / CPU per call of our processes): "
               + ", ".join(f"{k} {v}/s" for k, v in res["cpu_bound_ceiling_per_s"].items()))
    k200 = gw.get("kernel", {}).get("gateway", {})
    sat = gb.get("saturated_wrk", {})
    k503 = sat.get("kernel", {}).get("gateway", {})
    app = res.get("gateway_inprocess", {})
    out.append(f"gateway CPU per request: 200 via the bus {gw['cpu_ms_per_call']['gateway']} ms "
               f"(kernel {k200.get('sys_share')}, {k200.get('ctx_switches_per_call')} context "
               f"switches); 503 without the bus "
               f"{sat.get('cpu_ms_per_call', {}).get('gateway')} ms (kernel "
               f"{k503.get('sys_share')}, {k503.get('ctx_switches_per_call')} cs); "
               f"WSGI app alone in process {app.get('cpu_us_per_request')} us")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=10, help="seconds per measured phase")
    ap.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per phase")
    ap.add_argument("--fixed-duration", type=float, default=20, help="seconds at the fixed rate")
    ap.add_argument("--inflight", type=int, default=32, help="calls in flight for raw pika")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections")
    ap.add_argument("--workers", default="1,2,3", help="gunicorn workers to sweep")
    ap.add_argument("--threads", default="16,32,64", help="gunicorn threads to sweep")
    ap.add_argument("--default", default=None,
                    help="the deploy default, workers x threads (else deploy/gunicorn.conf.py)")
    ap.add_argument("--sweep-fixed", type=float, default=10,
                    help="seconds at the fixed rate for each swept setting (0: skip)")
    ap.add_argument("--rate-curve", default="0.25,0.75",
                    help="other fractions of the gateway maximum to offer at a fixed rate")
    ap.add_argument("--warm-starts", type=int, default=3, help="restarts timed to first call")
    ap.add_argument("--goodbye-requests", type=int, default=300)
    ap.add_argument("--port", type=int, default=18080)
    ap.add_argument("--amqp-uri", default="amqp://guest:guest@127.0.0.1:5672/bench")
    ap.add_argument("--workdir", default="/tmp/ics-bench")
    ap.add_argument("--code", choices=["head", "worktree"], default="head",
                    help="run the committed invoke_centre/ (a snapshot of HEAD) or the work tree")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--noise", type=float, default=0.25,
                    help="redo a phase when other processes took more cores than this")
    ap.add_argument("--retries", type=int, default=2, help="redos of a noisy phase")
    ap.add_argument("--quiet-wait", type=float, default=30,
                    help="seconds to wait for a quiet machine before each phase")
    ap.add_argument("--probers", type=int, default=8,
                    help="concurrent callers while the service shuts down")
    ap.add_argument("--quick", action="store_true", help="5 s phases, a 3-point sweep")
    ap.add_argument("--out", default=str(RESULTS / "latest.json"))
    args = ap.parse_args()
    if args.quick:
        args.duration, args.warmup, args.fixed_duration = 5, 2, 10
        args.workers, args.threads, args.warm_starts = "1,2", "32", 1
        args.sweep_fixed, args.rate_curve = 5, "0.25"
    LOGS.mkdir(parents=True, exist_ok=True)
    for f in LOGS.glob("*"):
        if f.is_file():
            f.unlink()


    for t in ("wrk", "k6", "py-spy"):
        tool(t)

    started = time.time()
    res: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine(),
                 "settings": {k: v for k, v in vars(args).items()}}
    log(f"machine: {res['machine']['nproc']} x {res['machine']['cpu_model']}, "
        f"load {res['machine']['loadavg_at_start']}")
    prepare_vhost(args.amqp_uri)
    mesh = Mesh(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        res["code"] = mesh.prepare()
        dw, dt = deploy_default(mesh.src, args.default)
        res["settings"]["default"] = f"{dw}x{dt}"

        # 1. bare pika
        log("1: raw pika against a bare pika echo")
        mesh.procs.start("bare_echo", [str(VENV / "python"), str(BENCH / "bare_echo.py")],
                         mesh.env)
        time.sleep(1.5)
        res["bare_pika"] = least_noisy(lambda: phase_raw(mesh, "bare", args), args, "bare")
        mesh.procs.stop("bare_echo")
        log(f"   {res['bare_pika']['calls_per_s']} calls/s")

        # registrar + gateway (deploy default), then the service's cold start (5, cold)
        mesh.watch = RegistryWatch(args.amqp_uri)
        mesh.start_registrar()
        mesh.start_gateway(dw, dt)
        time.sleep(1)
        log("5: cold start of the echo service (its first announcement ever)")
        res["first_call"] = {"cold": phase_first_call(mesh, "cold")}
        log(f"   {res['first_call']['cold']}")
        mesh.wait_serving()

        # 2. raw pika in nameko's protocol
        log("2: raw pika (nameko wire protocol) against the nameko echo")
        res["nameko_pika"] = least_noisy(lambda: phase_raw(mesh, "nameko", args), args, "nameko")
        log(f"   {res['nameko_pika']['calls_per_s']} calls/s")
        if not args.no_profile:
            log("   profiling the service under the same load (py-spy, not part of the figures)")
            spy = pyspy_record(mesh.service_pid, args.duration, "service")
            pika_rpc(mesh.env, "nameko", args.inflight, args.duration, 1)
            spy.wait(60)
            res["profile_service"] = summarize_profile(LOGS / "profile-service.txt")

        # 3. gateway maximum, deploy default
        log(f"3: gateway {dw}x{dt} under wrk -c{args.connections}")
        gw = least_noisy(lambda: phase_wrk(mesh, args, args.connections, args.duration,
                                           by_thread=True), args,
                         "gateway")
        gw.update(workers=dw, threads=dt, connections=args.connections)
        res["gateway_max"] = gw
        log(f"   {gw['req_per_s']} req/s, p99 {gw['latency_ms']['p99']} ms")

        # 4. fixed rate at half of that
        rate = max(1, int(gw["req_per_s"] / 2))
        log(f"4: fixed rate {rate}/s (k6 constant-arrival-rate) for {args.fixed_duration:.0f} s")
        res["fixed_rate"] = least_noisy(lambda: phase_fixed_rate(mesh, args, rate), args,
                                        "fixed rate")
        res["fixed_rate"].update(workers=dw, threads=dt)
        log(f"   p50 {res['fixed_rate']['latency_ms']['p50']} ms, "
            f"p99 {res['fixed_rate']['latency_ms']['p99']} ms")

        curve = []
        for frac in (float(x) for x in args.rate_curve.split(",") if x):
            frate = max(1, int(gw["req_per_s"] * frac))
            f = least_noisy(lambda: phase_fixed_rate(mesh, args, frate, args.sweep_fixed or 10),
                            args, f"{frac} rate")
            curve.append({"fraction_of_max": frac, **{k: f[k] for k in (
                "offered_per_s", "achieved_per_s", "dropped_iterations", "latency_ms",
                "cpu_ms_per_call")}})
            log(f"   {frac:.2f} of max = {f['offered_per_s']}/s: p50 {f['latency_ms']['p50']} "
                f"p99 {f['latency_ms']['p99']} ms")
        res["latency_vs_rate"] = curve

        if not args.no_profile:
            log("   profiling the gateway workers under wrk (py-spy, not part of the figures)")
            spy = pyspy_record(mesh.gateway_pid(), args.duration, "gateway", subprocesses=True)
            time.sleep(0.5)
            wrk(mesh.port, args.connections, args.duration)
            spy.wait(60)
            res["profile_gateway"] = summarize_profile(LOGS / "profile-gateway.txt")

        # gunicorn sweep
        sweep = []
        for w in (int(x) for x in args.workers.split(",")):
            for t in (int(x) for x in args.threads.split(",")):
                if (w, t) == (dw, dt):
                    s = {k: gw[k] for k in ("req_per_s", "latency_ms", "non2xx", "requests",
                                            "cpu_ms_per_call", "attempts")}
                else:
                    mesh.stop_gateway()
                    mesh.start_gateway(w, t)
                    mesh.wait_serving()
                    log(f"   sweep: gateway {w}x{t}")
                    s = least_noisy(lambda: phase_wrk(mesh, args, args.connections,
                                                      args.duration), args, f"{w}x{t}")
                    s = {k: s[k] for k in ("req_per_s", "latency_ms", "non2xx", "requests",
                                           "cpu_ms_per_call", "attempts")}
                    if args.sweep_fixed:
                        f = least_noisy(lambda: phase_fixed_rate(mesh, args, rate,
                                                                 args.sweep_fixed), args,
                                        f"{w}x{t} fixed")
                        s["fixed_rate"] = {k: f[k] for k in (
                            "offered_per_s", "achieved_per_s", "latency_ms",
                            "dropped_iterations", "attempts", "cpu_ms_per_call")}
                if (w, t) == (dw, dt):
                    s["fixed_rate"] = {k: res["fixed_rate"][k] for k in (
                        "offered_per_s", "achieved_per_s", "latency_ms", "dropped_iterations",
                        "attempts", "cpu_ms_per_call")}
                s.update(workers=w, threads=t, default=(w, t) == (dw, dt))
                sweep.append(s)
                log(f"   {w}x{t}: {s['req_per_s']} req/s")
        res["gunicorn_sweep"] = sweep
        best = max(sweep, key=lambda s: s["req_per_s"])
        res["gunicorn_best"] = best
        if mesh.gateway_cfg != (dw, dt):
            mesh.stop_gateway()
            mesh.start_gateway(dw, dt)
            mesh.wait_serving()

        # 5. warm starts: the route is known, the service restarts
        warm = []
        for i in range(args.warm_starts):
            mesh.procs.stop("echo_service")
            time.sleep(1)
            warm.append(phase_first_call(mesh, "warm"))
            log(f"5: warm start {i + 1}: {warm[-1]}")
            mesh.wait_serving()
        res["first_call"]["warm"] = warm
        med = sorted(warm, key=lambda x: x["spawn_to_first_200_s"] or 99)[len(warm) // 2]
        res["first_call"]["warm_median"] = med
        res["first_call"]["import_s"] = import_times(mesh.env, mesh.src)

        # 6. goodbye
        log("6: SIGTERM the service, then time the 503s")
        res["goodbye"] = phase_goodbye(mesh, args, rate)
        log(f"   {res['goodbye']['sequential']}")
        log("gateway application alone: in process, bus stubbed, cProfile")
        out = subprocess.run([str(VENV / "python"), str(BENCH / "gateway_cpu.py"),
                              "--requests", "20000", "--token", TOKEN],
                             env=mesh.env, cwd=mesh.src, capture_output=True, text=True,
                             timeout=600)
        try:
            res["gateway_inprocess"] = json.loads(out.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            res["gateway_inprocess"] = {"error": out.stderr[-2000:]}
    finally:
        mesh.procs.stop_all()
        if mesh.watch:
            mesh.watch.close()

    nk, bare = res["nameko_pika"]["calls_per_s"], res["bare_pika"]["calls_per_s"]
    res["ratios"] = {
        "nameko_over_bare": r(nk / bare, 3),
        "gateway_over_nameko": r(gw["req_per_s"] / nk, 3),
        "best_gateway_over_nameko": r(best["req_per_s"] / nk, 3),
        "gateway_over_bare": r(gw["req_per_s"] / bare, 3),
    }
    # what 2 cores would give if nothing else ran: cores / CPU per call of our processes
    ncpu = os.cpu_count() or 1
    res["cpu_bound_ceiling_per_s"] = {
        name: int(ncpu * 1000 / res[key]["cpu_ms_per_call"]["total_ours"])
        for name, key in (("bare_pika", "bare_pika"), ("nameko", "nameko_pika"),
                          ("gateway", "gateway_max"))}
    res["ratios"]["gateway_over_nameko_cpu_bound"] = r(
        res["cpu_bound_ceiling_per_s"]["gateway"] / res["cpu_bound_ceiling_per_s"]["nameko"], 3)
    cold = res["first_call"]["cold"]["spawn_to_first_200_s"]
    warm_s = res["first_call"]["warm_median"]["spawn_to_first_200_s"]
    worst_first = max(x for x in (cold, warm_s) if x is not None) if (cold or warm_s) else None
    gb = res["goodbye"]
    res["goals"] = {
        "gateway_vs_nameko": {"goal": ">= 0.5", "value": res["ratios"]["gateway_over_nameko"],
                              "met": res["ratios"]["gateway_over_nameko"] >= 0.5},
        "fixed_rate_p99_ms": {"goal": "<= 25", "value": res["fixed_rate"]["latency_ms"]["p99"],
                              "met": res["fixed_rate"]["latency_ms"]["p99"] <= 25
                              and not res["fixed_rate"]["dropped_iterations"]},
        "first_call_s": {"goal": "<= 1", "value": {"cold": cold, "warm_median": warm_s},
                         "met": worst_first is not None and worst_first <= 1.0},
        "goodbye_503_ms": {"goal": "<= 50", "value": gb["sequential"]["latency_ms"]["p99"],
                           "met": gb["sequential"]["latency_ms"]["p99"] <= 50
                           and gb["sequential"]["statuses"].get("503")
                           == gb["sequential"]["requests"]},
    }
    res["wall_s"] = round(time.time() - started, 1)
    res["table"] = table(res)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    print(res["table"])
    for name in ("profile_service", "profile_gateway"):
        if name in res:
            print(f"\n{name}: top self time (% of samples)")
            for fn, p in res[name]["self_top"][:8]:
                print(f"  {p:5.1f}%  {fn}")
    print(f"\nJSON: {args.out}   logs: {LOGS}   ({res['wall_s']} s)")


if __name__ == "__main__":
    main()
