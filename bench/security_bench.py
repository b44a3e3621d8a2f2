#!/usr/bin/env python3
"""What payload protection costs: ``signed`` and ``sealed`` against ``normal``, one run.

    .venv/bin/python bench/security_bench.py            # starts its own centre, ~2 minutes
    .venv/bin/python bench/security_bench.py -n 200     # fewer calls per mode
    .venv/bin/python bench/security_bench.py --url http://127.0.0.1:18095 \\
        --admin-phone 13900000001 --admin-password '…' --admin-terminal t-…   # a running one

For the same named request (``quote.price`` of the outsider service ``tests/outsider/quotes.py``)
it makes N sequential calls in each mode — interleaved, so that drift in the machine hits every
mode alike — from an agent logged in on a registered phone, exactly as a phone would:

- ``normal``: a JSON body;
- ``signed``: a JWS (compact) of the device key over ``{"name", "params", "jti", "iat"}``,
  ``Content-Type: application/jose``;
- ``sealed``: that JWS as a JWE to the centre's encryption key (``ECDH-ES+A256KW``/``A256GCM``);
  the answer comes back as a JWE to the device's encryption key and is opened.

It reports the client-side latency (p50/p90/p99, the whole round trip including the client's own
crypto) and the added milliseconds against ``normal``; the client's crypto (sign, seal, open)
timed separately; and the latency of a login (challenge + login with PIN, password and device
proof: two Argon2id verifications) and of a console login (password only), with the cost of one
Argon2id verification on this machine. Both device key types are measured: Ed25519 (``EdDSA``)
and P-256 (``ES256``); the encryption key is P-256 in both.

Without ``--url`` it starts a registrar, a gateway (gunicorn, ``deploy/gunicorn.conf.py``, on
``--port``) and the quotes service on their own RabbitMQ vhost and SQLite file, bootstraps an
administrator, and stops everything when done. The table is printed; the JSON goes to
``bench/results/security.json``. A benchmark, not a test: goals are not asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests
from joserfc import jwe

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
VENV = ROOT / ".venv" / "bin"
RESULTS = BENCH / "results"
sys.path.insert(0, str(ROOT))

from invoke_centre import credentials  # noqa: E402
from invoke_centre.client import JWE_ALGS, Client, DeviceKeys  # noqa: E402

NAME = "quote.price"
PARAMS = {"sum_insured": 1000}
ADMIN_PHONE = "13900000001"
PIN, PASSWORD = "845302", "yunnan-tea-garden"


def log(msg: str) -> None:
    print(f"[security-bench] {msg}", file=sys.stderr, flush=True)


def pct(vals: list[float], p: float) -> float:
    s = sorted(vals)
    k = (len(s) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(ms: list[float]) -> dict:
    return {"n": len(ms), "p50": round(pct(ms, 50), 3), "p90": round(pct(ms, 90), 3),
            "p99": round(pct(ms, 99), 3), "mean": round(statistics.fmean(ms), 3)}


# --- a centre of our own ---------------------------------------------------------------------
class Centre:
    """Registrar, gateway and the quotes service on a vhost and SQLite file of their own."""

    def __init__(self, port: int, vhost: str) -> None:
        self.port, self.vhost = port, vhost
        self.url = f"http://127.0.0.1:{port}"
        self.tmp = Path(tempfile.mkdtemp(prefix="security-bench-"))
        self.env = {**os.environ,
                    "AMQP_URI": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
                    "ICS_DB_URI": f"sqlite:///{self.tmp / 'ics.db'}",
                    "ICS_LOG_LEVEL": "WARNING"}
        self.env.pop("ICS_TOKENS_FILE", None)
        self.procs: list[subprocess.Popen] = []

    def _vhost(self) -> None:
        if not shutil.which("rabbitmqctl"):
            raise SystemExit("rabbitmqctl is needed to make the bench's vhost (or give --url)")
        subprocess.run(["rabbitmqctl", "delete_vhost", self.vhost], capture_output=True,
                       timeout=60)
        subprocess.run(["rabbitmqctl", "add_vhost", self.vhost], capture_output=True,
                       timeout=60, check=True)
        subprocess.run(["rabbitmqctl", "set_permissions", "-p", self.vhost, "guest", ".*", ".*",
                        ".*"], capture_output=True, timeout=60, check=True)

    def _spawn(self, name: str, cmd: list, cwd: Path = ROOT, env: dict | None = None) -> None:
        out = open(self.tmp / f"{name}.log", "wb")
        self.procs.append(subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env or self.env,
                                           stdout=out, stderr=subprocess.STDOUT,
                                           start_new_session=True))

    def start(self) -> tuple[str, str]:
        """Start it all; the administrator's console terminal and password."""
        self._vhost()
        subprocess.run([VENV / "ics", "db", "upgrade"], env=self.env, check=True,
                       capture_output=True)
        password = uuid.uuid4().hex
        out = subprocess.run([VENV / "ics", "bootstrap", "--phone", ADMIN_PHONE, "--name",
                              "Bench admin", "--branch-code", "53", "--branch-name", "Yunnan"],
                             env={**self.env, "ICS_BOOTSTRAP_PASSWORD": password},
                             capture_output=True, text=True, check=True).stdout
        terminal = json.loads(out.strip().splitlines()[-1])["terminal_id"]
        self._spawn("registrar", [VENV / "python", "-m", "invoke_centre.registrar"])
        self._spawn("gateway", [VENV / "gunicorn", "-c", "deploy/gunicorn.conf.py", "-b",
                                f"127.0.0.1:{self.port}", "invoke_centre.wsgi:application"])
        self._spawn("quotes", [VENV / "nameko", "run", "--config", "config.yaml", "quotes"],
                    cwd=ROOT / "tests" / "outsider",
                    env={**self.env, "PYTHONPATH": str(ROOT / "tests" / "outsider")})
        return terminal, password

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        subprocess.run(["rabbitmqctl", "delete_vhost", self.vhost], capture_output=True,
                       timeout=60)
        shutil.rmtree(self.tmp, ignore_errors=True)


def wait_callable(admin: Client, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            routes = admin.request("GET", "/v1/admin/routes")
            if routes.ok and any(r["name"] == NAME and r["available"]
                                 for r in routes.data["routes"]):
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{NAME} did not become callable within {timeout:.0f} s")


# --- the organisation: as tests/integration/security/security_fixtures.py makes it -------------
class Org:
    def __init__(self, url: str, phone: str, password: str, terminal: str) -> None:
        self.url = url
        self.admin = Client(url, terminal_id=terminal)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.admin.login(phone, password=password)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        self.run = uuid.uuid4().hex[:6]
        self.admin_phone, self.admin_password = phone, password
        self.branch = f"53{int(self.run, 16) % 10_000:04d}"
        self.ok("POST", "/v1/admin/branches", {"code": self.branch, "name": f"Bench {self.run}",
                                               "kind": "prefecture", "parent_code": "53"})
        self.role = f"bench-{self.run}"
        self.ok("POST", "/v1/admin/roles", {"name": self.role, "permissions": ["quote:read"]})
        self._n = 0

    def ok(self, method: str, path: str, body=None):
        answer = self.admin.request(method, path, body)
        if not answer.ok:
            raise SystemExit(f"{method} {path}: {answer.status} {answer.body}")
        return answer.data

    def agent(self, curve: str) -> tuple[Client, str]:
        self._n += 1
        phone = f"137{int(self.run, 16) % 10_000:04d}{self._n:04d}"
        user = self.ok("POST", "/v1/admin/users", {
            "phone": phone, "name": f"Bench agent {self._n}", "kind": "agent",
            "branch_code": self.branch, "pin": PIN, "password": PASSWORD})
        self.ok("POST", f"/v1/admin/users/{user['id']}/grants",
                {"role": self.role, "scope": self.branch})
        enrol = self.ok("POST", "/v1/admin/terminals", {"user_ids": [user["id"]],
                                                        "terminal_class": "phone"})
        client = Client(self.url, device=DeviceKeys.generate(curve))
        client.register(enrol["terminal_id"], enrol["enrolment_code"])
        client.login(phone, pin=PIN, password=PASSWORD)
        return client, phone


# --- measurements ----------------------------------------------------------------------------
def call(client: Client, mode: str) -> tuple[float, dict]:
    """One call of NAME in ``mode``; (total ms, {step: ms}) with the client's crypto apart."""
    steps: dict[str, float] = {}
    t0 = time.perf_counter()
    headers = {"Authorization": f"Bearer {client.access_token}"}
    if mode == "normal":
        headers["Content-Type"] = "application/json"
        body = json.dumps(PARAMS).encode()
    else:
        t = time.perf_counter()
        text = client.sign(NAME, PARAMS)
        steps["sign"] = (time.perf_counter() - t) * 1000
        if mode == "sealed":
            t = time.perf_counter()
            text = client.seal(text)
            steps["seal"] = (time.perf_counter() - t) * 1000
        headers["Content-Type"] = "application/jose"
        body = text.encode()
    t = time.perf_counter()
    resp = client.http.post(f"{client.base_url}/v1/invoke/{NAME}", data=body, headers=headers,
                            timeout=15)
    steps["http"] = (time.perf_counter() - t) * 1000
    if resp.status_code != 200:
        raise SystemExit(f"{mode}: {resp.status_code} {resp.text[:300]}")
    if mode == "sealed":
        if not resp.headers.get("Content-Type", "").startswith("application/jose"):
            raise SystemExit("a sealed call came back unsealed")
        t = time.perf_counter()
        answer = json.loads(jwe.decrypt_compact(resp.text, client.device.enc,
                                                algorithms=JWE_ALGS).plaintext)
        steps["open"] = (time.perf_counter() - t) * 1000
    else:
        answer = resp.json()
    if answer.get("data", {}).get("premium_fen") != 300:
        raise SystemExit(f"{mode}: unexpected answer {answer}")
    return (time.perf_counter() - t0) * 1000, steps


def protection_run(client: Client, n: int, warmup: int) -> dict:
    modes = ["normal", "signed", "sealed"]
    for _ in range(warmup):
        for mode in modes:
            call(client, mode)
    totals: dict[str, list[float]] = {m: [] for m in modes}
    steps: dict[str, dict[str, list[float]]] = {m: {} for m in modes}
    for i in range(n):
        order = modes[i % 3:] + modes[:i % 3]  # each mode first, second and third alike
        for mode in order:
            total, st = call(client, mode)
            totals[mode].append(total)
            for k, v in st.items():
                steps[mode].setdefault(k, []).append(v)
    out: dict = {}
    base = summary(totals["normal"])
    for mode in modes:
        s = summary(totals[mode])
        out[mode] = {"latency_ms": s,
                     "added_ms": {k: round(s[k] - base[k], 3) for k in ("p50", "p90", "p99")},
                     "client_crypto_ms": {k: summary(v) for k, v in steps[mode].items()
                                          if k != "http"},
                     "http_ms": summary(steps[mode]["http"])}
    return out


def crypto_micro(client: Client, n: int = 1000) -> dict:
    """The client's crypto alone, in a tight loop (no network)."""
    jws_text = client.sign(NAME, PARAMS)
    sealed = client.seal(jws_text)
    answer = json.dumps({"ok": True, "data": {"premium_fen": 300, "instance": "quotes-x"},
                         "request_id": uuid.uuid4().hex}).encode()
    reply = jwe.encrypt_compact({"alg": "ECDH-ES+A256KW", "enc": "A256GCM"}, answer,
                                client.device.enc, algorithms=JWE_ALGS)
    out = {}
    for label, fn in (("sign", lambda: client.sign(NAME, PARAMS)),
                      ("seal", lambda: client.seal(jws_text)),
                      ("open", lambda: jwe.decrypt_compact(reply, client.device.enc,
                                                           algorithms=JWE_ALGS))):
        ms = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            ms.append((time.perf_counter() - t) * 1000)
        out[label] = summary(ms)
    out["sizes_bytes"] = {"normal": len(json.dumps(PARAMS)), "signed": len(jws_text),
                          "sealed": len(sealed), "sealed_answer": len(reply),
                          "plain_answer": len(answer)}
    return out


def login_run(org: Org, client: Client, phone: str, n: int) -> dict:
    """Phone login (challenge + login: PIN, password, device proof) and console login."""
    challenge, login_only, whole = [], [], []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.http.post(f"{client.base_url}/v1/auth/challenge",
                             json={"terminal_id": client.terminal_id}, timeout=15)
        t1 = time.perf_counter()
        proof = client.device.sign({"nonce": r.json()["data"]["nonce"],
                                    "terminal_id": client.terminal_id, "phone": phone,
                                    "iat": int(time.time())})
        t2 = time.perf_counter()
        resp = client.http.post(f"{client.base_url}/v1/auth/login", timeout=15, json={
            "phone": phone, "pin": PIN, "password": PASSWORD,
            "terminal_id": client.terminal_id, "proof": proof})
        t3 = time.perf_counter()
        if resp.status_code != 200:
            raise SystemExit(f"login: {resp.status_code} {resp.text[:200]}")
        client._take(resp.json()["data"])
        challenge.append((t1 - t0) * 1000)
        login_only.append((t3 - t2) * 1000)
        whole.append((t3 - t0) * 1000)
    console = []
    for _ in range(n):
        t0 = time.perf_counter()
        resp = org.admin.http.post(f"{org.url}/v1/auth/login", timeout=15, json={
            "phone": org.admin_phone, "password": org.admin_password,
            "terminal_id": org.admin.terminal_id})
        console.append((time.perf_counter() - t0) * 1000)
        if resp.status_code != 200:
            raise SystemExit(f"console login: {resp.status_code} {resp.text[:200]}")
        org.admin._take(resp.json()["data"])
    stored = credentials.hash_secret(PASSWORD)
    argon = []
    for _ in range(max(n, 20)):
        t = time.perf_counter()
        credentials.verify_secret(stored, PASSWORD)
        argon.append((time.perf_counter() - t) * 1000)
    refresh = []
    for _ in range(n):
        t = time.perf_counter()
        answer = client.refresh()
        refresh.append((time.perf_counter() - t) * 1000)
        if not answer.ok:
            raise SystemExit(f"refresh: {answer.status} {answer.body}")
    return {"phone_login_whole_ms": summary(whole), "phone_challenge_ms": summary(challenge),
            "phone_login_request_ms": summary(login_only), "console_login_ms": summary(console),
            "refresh_ms": summary(refresh), "argon2id_verify_ms": summary(argon),
            "argon2id_params": {"time_cost": 2, "memory_kib": 19456, "parallelism": 1}}


def machine() -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    rabbit = subprocess.run(["rabbitmqctl", "version"], capture_output=True, text=True) \
        if shutil.which("rabbitmqctl") else None
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory": mem, "os": platform.platform(),
            "python": platform.python_version(),
            "rabbitmq": rabbit.stdout.strip() if rabbit and rabbit.returncode == 0 else "?",
            "gateway": f"gunicorn gthread, {os.environ.get('ICS_WORKERS', '2')} workers x "
                       f"{os.environ.get('ICS_THREADS', '32')} threads",
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def table(res: dict) -> str:
    lines = []
    for curve, r in res["protection"].items():
        lines.append(f"\nquote.price, {res['n']} sequential calls per mode, device key {curve} "
                     f"(client-side ms, whole round trip)")
        lines.append(f"{'mode':<8} {'p50':>8} {'p90':>8} {'p99':>8} {'+p50':>8} {'+p90':>8} "
                     f"{'+p99':>8}   client crypto p50 (ms)")
        for mode, m in r.items():
            s, a = m["latency_ms"], m["added_ms"]
            crypto = ", ".join(f"{k} {v['p50']:.2f}" for k, v in m["client_crypto_ms"].items())
            lines.append(f"{mode:<8} {s['p50']:>8.2f} {s['p90']:>8.2f} {s['p99']:>8.2f} "
                         f"{a['p50']:>+8.2f} {a['p90']:>+8.2f} {a['p99']:>+8.2f}   {crypto or '-'}")
    lines.append("\nclient crypto alone (tight loop, ms p50 / p99)")
    for curve, c in res["crypto"].items():
        lines.append(f"  {curve:<8} " + "  ".join(f"{k} {c[k]['p50']:.3f} / {c[k]['p99']:.3f}"
                                                  for k in ("sign", "seal", "open"))
                     + f"   sizes {c['sizes_bytes']}")
    lg = res["login"]
    lines.append("\nlogin (ms p50 / p90 / p99)")
    for k in ("phone_login_whole_ms", "phone_challenge_ms", "phone_login_request_ms",
              "console_login_ms", "refresh_ms", "argon2id_verify_ms"):
        s = lg[k]
        lines.append(f"  {k:<24} {s['p50']:>8.2f} {s['p90']:>8.2f} {s['p99']:>8.2f}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=500, help="calls per mode (default 500)")
    ap.add_argument("--warmup", type=int, default=30, help="calls per mode before measuring")
    ap.add_argument("--logins", type=int, default=20, help="logins measured (default 20)")
    ap.add_argument("--curves", default="Ed25519,P-256",
                    help="device signing keys to measure (Ed25519, P-256)")
    ap.add_argument("--port", type=int, default=18097, help="gateway port when it starts one")
    ap.add_argument("--vhost", default="secbench", help="RabbitMQ vhost when it starts one")
    ap.add_argument("--url", help="use this running centre instead of starting one")
    ap.add_argument("--admin-phone", default=ADMIN_PHONE)
    ap.add_argument("--admin-password", default=os.environ.get("ICS_PASSWORD"))
    ap.add_argument("--admin-terminal", default=os.environ.get("ICS_TERMINAL"))
    ap.add_argument("--out", type=Path, default=RESULTS / "security.json")
    args = ap.parse_args()

    centre = None
    if args.url:
        if not (args.admin_password and args.admin_terminal):
            raise SystemExit("with --url give --admin-password and --admin-terminal")
        url, terminal, password = args.url, args.admin_terminal, args.admin_password
    else:
        centre = Centre(args.port, args.vhost)
        log(f"starting a centre on {centre.url}, vhost {args.vhost} (logs in {centre.tmp})")
        terminal, password = centre.start()
        url = centre.url
    try:
        org = Org(url, args.admin_phone, password, terminal)
        wait_callable(org.admin)
        res: dict = {"n": args.n, "warmup": args.warmup, "request": NAME, "params": PARAMS,
                     "url": url, "machine": machine(), "protection": {}, "crypto": {},
                     "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        res["machine"]["database"] = "SQLite file (started by the bench)" if centre else \
            "that of the centre at --url"
        clients = {}
        for curve in [c.strip() for c in args.curves.split(",") if c.strip()]:
            client, phone = org.agent(curve)
            clients[curve] = (client, phone)
            log(f"{curve}: {args.n} calls x normal, signed, sealed")
            res["protection"][curve] = protection_run(client, args.n, args.warmup)
            res["crypto"][curve] = crypto_micro(client)
        client, phone = next(iter(clients.values()))
        log(f"{args.logins} logins")
        res["login"] = login_run(org, client, phone, args.logins)
        res["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        res["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        argv = list(sys.argv)
        for i, a in enumerate(argv[:-1]):  # never keep a password in the results
            if a == "--admin-password":
                argv[i + 1] = "***"
        res["command"] = " ".join([Path(sys.executable).name, *argv])
    finally:
        if centre is not None:
            log("stopping the centre")
            centre.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(table(res))
    print(f"\nJSON: {args.out}")


if __name__ == "__main__":
    main()
