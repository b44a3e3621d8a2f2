"""Fixtures, imported by the security tests: a centre with real accounts — an administrator
made by ``ics bootstrap``, a Kunming branch tree, roles, and agents on registered phones."""

from __future__ import annotations

import json
import subprocess
import threading
import uuid
from dataclasses import dataclass

import pika
import pytest
from meshkit import BIN, Mesh

from invoke_centre.client import Client, DeviceKeys

ADMIN_PHONE = "13900000001"
ADMIN_PASSWORD = "kunming-dianchi-2026"
PIN = "845302"
PASSWORD = "yunnan-tea-garden"


@dataclass
class Agent:
    user_id: str
    phone: str
    terminal_id: str
    client: Client
    imei: str


class AuditTap:
    """Every audit event published in the test's vhost."""

    def __init__(self, amqp_uri: str) -> None:
        self.events: list[dict] = []
        self._conn = pika.BlockingConnection(pika.URLParameters(amqp_uri))
        ch = self._conn.channel()
        ch.exchange_declare("ics.audit", "topic", durable=True)
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(q, "ics.audit", "#")
        ch.basic_consume(q, lambda c, m, p, b: self.events.append(json.loads(b)), auto_ack=True)
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            self._conn.process_data_events(time_limit=0.1)

    def of(self, type_: str) -> list[dict]:
        return [e for e in self.events if e["type"] == type_]

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self._conn.close()


class Org:
    def __init__(self, mesh: Mesh) -> None:
        self.mesh = mesh
        out = subprocess.run([BIN / "ics", "bootstrap", "--phone", ADMIN_PHONE, "--name",
                              "Admin", "--branch-code", "53", "--branch-name", "Yunnan"],
                             env={**mesh.env, "ICS_BOOTSTRAP_PASSWORD": ADMIN_PASSWORD},
                             capture_output=True, text=True, check=True).stdout
        boot = json.loads(out.strip().splitlines()[-1])
        self.admin = Client(mesh.url, terminal_id=boot["terminal_id"])
        self.admin.login(ADMIN_PHONE, password=ADMIN_PASSWORD)
        for code, name, kind, parent in (("5301", "Kunming", "prefecture", "53"),
                                         ("530102", "Wuhua", "county", "5301"),
                                         ("5303", "Qujing", "prefecture", "53")):
            self.ok("POST", "/v1/admin/branches", {"code": code, "name": name, "kind": kind,
                                                   "parent_code": parent})
        self.ok("POST", "/v1/admin/roles", {"name": "agent",
                                            "permissions": ["quote:read", "quote:write"]})
        self.ok("POST", "/v1/admin/roles", {"name": "reader", "permissions": ["quote:read"]})
        self._n = 0

    def ok(self, method: str, path: str, body=None):
        answer = self.admin.request(method, path, body)
        assert answer.ok, answer.body
        return answer.data

    def agent(self, *, role: str = "agent", branch: str = "530102", scope: str | None = None,
              curve: str = "Ed25519", terminal_class: str = "phone") -> Agent:
        self._n += 1
        phone = f"1370000{self._n:04d}"
        user = self.ok("POST", "/v1/admin/users", {"phone": phone, "name": f"Agent {self._n}",
                                                   "kind": "agent", "branch_code": branch,
                                                   "pin": PIN, "password": PASSWORD})
        self.ok("POST", f"/v1/admin/users/{user['id']}/grants",
                {"role": role, "scope": scope or branch})
        imei = f"86{self._n:013d}"
        enrol = self.ok("POST", "/v1/admin/terminals", {
            "user_ids": [user["id"]], "terminal_class": terminal_class, "imei": imei,
            "imsi": f"46000{self._n:010d}"})
        client = Client(self.mesh.url, device=DeviceKeys.generate(curve))
        client.register(enrol["terminal_id"], enrol["enrolment_code"])
        client.login(phone, pin=PIN, password=PASSWORD, imei=imei)
        return Agent(user["id"], phone, enrol["terminal_id"], client, imei)


@pytest.fixture
def org(mesh_factory, sqlite_uri):
    mesh = mesh_factory(sqlite_uri)
    mesh.start_centre()
    mesh.start_outsider()
    mesh.wait_callable()
    return Org(mesh)


@pytest.fixture
def tap(org):
    t = AuditTap(org.mesh.amqp_uri)
    yield t
    t.close()


def key() -> str:
    return uuid.uuid4().hex
