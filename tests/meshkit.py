"""What the tests share besides fixtures: the Mesh of processes, databases, waiting.

Imported as ``from meshkit import ...`` (not from ``conftest``: pytest keeps one module named
``conftest`` at a time, and nested test folders have their own).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
OUTSIDER = Path(__file__).parent / "outsider"
RABBIT_HOST = os.environ.get("ICS_TEST_RABBIT_HOST", "127.0.0.1")
MGMT = os.environ.get("ICS_TEST_MANAGEMENT_URL", f"http://{RABBIT_HOST}:15672")
MGMT_AUTH = ("guest", "guest")
OPERATOR_TOKEN = "test-operator-token"
AGENT_TOKEN = "test-agent-token"
READER_TOKEN = "test-reader-token"


def _rabbit_problem() -> str | None:
    try:
        r = requests.get(f"{MGMT}/api/overview", auth=MGMT_AUTH, timeout=3)
    except requests.RequestException as exc:
        return f"RabbitMQ management API unreachable at {MGMT}: {exc}"
    return None if r.status_code == 200 else f"management API answered {r.status_code}"


def _pg_dsn() -> str | None:
    return os.environ.get("ICS_TEST_PG_DSN") or None


class Databases:
    """Fresh databases for one test: SQLite files, or PostgreSQL databases dropped after."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self._pg: list[str] = []

    def new(self, kind: str, name: str = "ics") -> str:
        if kind == "sqlite":
            return f"sqlite:///{self.tmp_path / f'{name}.db'}"
        dsn = _pg_dsn()
        if not dsn:
            if os.environ.get("CI"):
                pytest.fail("ICS_TEST_PG_DSN is not set in CI")
            pytest.skip("ICS_TEST_PG_DSN not set")
        import psycopg2

        db = f"{name}_test_{uuid.uuid4().hex[:10]}"
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{db}"')
        conn.close()
        self._pg.append(db)
        base = dsn.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://", 1)
        return f"{base}/{db}"

    def drop_all(self) -> None:
        if not self._pg:
            return
        import psycopg2

        conn = psycopg2.connect(_pg_dsn())
        conn.autocommit = True
        with conn.cursor() as cur:
            for db in self._pg:
                cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = %s AND pid <> pg_backend_pid()", (db,))
                cur.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], Any], timeout: float, interval: float = 0.02,
             what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Mesh:
    """The centre and services of one test, as separate processes."""

    def __init__(self, amqp_uri: str, db_uri: str, workdir: Path,
                 tokens: dict[str, dict] | None = None) -> None:
        self.amqp_uri, self.db_uri, self.workdir = amqp_uri, db_uri, workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen] = {}
        tokens_file = workdir / "tokens.json"
        tokens_file.write_text(json.dumps({
            OPERATOR_TOKEN: {"user_id": "operator", "roles": ["operator"],
                             "permissions": ["*"]},
            AGENT_TOKEN: {"user_id": "agent-7", "roles": ["agent"], "branch": "530102",
                          "permissions": ["quote:read", "quote:write"]},
            READER_TOKEN: {"user_id": "reader-1", "roles": ["agent"], "branch": "530300",
                           "permissions": ["quote:read"]},
            **(tokens or {}),
        }))
        self.env = {
            **os.environ,
            "AMQP_URI": amqp_uri,
            "ICS_DB_URI": db_uri,
            "ICS_TOKENS_FILE": str(tokens_file),
            "ICS_MANAGEMENT_URI": MGMT.replace("http://", "http://guest:guest@"),
            "ICS_HEARTBEAT_S": "1",
            "ICS_MAX_BODY_BYTES": "65536",
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.http = requests.Session()

    def _spawn(self, name: str, args: list[str], cwd: Path = ROOT,
               env: dict | None = None) -> subprocess.Popen:
        with open(self.workdir / f"{name}.log", "ab") as log:  # the child keeps its own copy
            proc = subprocess.Popen(args, cwd=cwd, env={**self.env, **(env or {})}, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def migrate(self) -> None:
        subprocess.run([BIN / "ics", "db", "upgrade"], env=self.env, check=True,
                       capture_output=True)

    def start_centre(self, workers: int = 2) -> None:
        self.migrate()
        self._spawn("registrar", [BIN / "python", "-m", "invoke_centre.registrar"])
        self._spawn("gateway", [BIN / "gunicorn", "-k", "gthread", "-w", str(workers),
                                "--threads", "8", "-b", f"127.0.0.1:{self.port}",
                                "--graceful-timeout", "2", "invoke_centre.wsgi:application"])
        wait_for(self._healthy, 20, 0.05, "the gateway")

    def _healthy(self) -> bool:
        try:
            return self.http.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def stop_centre(self) -> None:
        for name in ("gateway", "registrar"):
            self.stop(name)

    def start_service(self, name: str, **env: str) -> subprocess.Popen:
        """Start ``services/<name>`` as production does, its database in this test's dir."""
        here = ROOT / "services" / name
        db = env.pop("DB_URI", f"sqlite:///{self.workdir / f'{name}.db'}")
        return self._spawn(name, [BIN / "nameko", "run", "--config", str(here / "config.yaml"),
                                  f"{name}.service"], cwd=ROOT,
                           env={"PYTHONPATH": str(here), f"{name.upper()}_DB_URI": db, **env})

    def start_outsider(self, name: str = "quotes", **env: str) -> subprocess.Popen:
        return self._spawn(name, [BIN / "nameko", "run", "--config", "config.yaml", "quotes"],
                           cwd=OUTSIDER, env={"PYTHONPATH": str(OUTSIDER), **env})

    def stop(self, name: str, sig: int = signal.SIGTERM, wait: float = 15) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name, wait=5)

    # --- as a client -----------------------------------------------------------
    def invoke(self, name: str, params: Any = None, *, token: str | None = OPERATOR_TOKEN,
               headers: dict | None = None, data: bytes | None = None,
               timeout: float = 10) -> requests.Response:
        h = {"Content-Type": "application/json", **(headers or {})}
        if token:
            h["Authorization"] = f"Bearer {token}"
        body = data if data is not None else json.dumps(params if params is not None else {})
        return self.http.post(f"{self.url}/v1/invoke/{name}", data=body, headers=h,
                              timeout=timeout)

    def get(self, path: str, token: str | None = OPERATOR_TOKEN, **kw) -> requests.Response:
        h = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.get(f"{self.url}{path}", headers=h, timeout=10, **kw)

    def admin(self, method: str, path: str, body: Any = None,
              token: str = OPERATOR_TOKEN) -> requests.Response:
        return self.http.request(method, f"{self.url}{path}", json=body, timeout=10,
                                 headers={"Authorization": f"Bearer {token}"})

    def wait_callable(self, name: str = "quote.price", params: Any = None,
                      timeout: float = 30, settle: bool = True) -> requests.Response:
        """Wait until ``name`` answers; with ``settle``, also until every gateway worker has
        re-read the routing table (each polls every ICS_POLL_S = 0.2 s on its own)."""
        params = params if params is not None else {"sum_insured": 1000}
        answer = wait_for(lambda: (r := self.invoke(name, params)).status_code == 200 and r,
                          timeout, 0.02, f"{name} to answer")
        if settle:
            time.sleep(0.5)
        return answer


