"""A service nobody told the centre about joins by deploying itself (P1)."""

import json
import signal
import subprocess
import threading
import time

import pika
from meshkit import BIN, OPERATOR_TOKEN, ROOT, wait_for


def _listen_for_announce(amqp_uri: str, got: dict, ready: threading.Event) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(amqp_uri))
    ch = conn.channel()
    ch.exchange_declare("ics.registry", "topic", durable=True)
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "ics.registry", "announce.quotes")
    ready.set()
    for _method, _props, body in ch.consume(q, auto_ack=True, inactivity_timeout=30):
        if body is not None:
            got["at"] = time.monotonic()
            got["manifest"] = json.loads(body)
        break
    conn.close()


def test_a_new_service_answers_within_a_second_of_announcing(mesh):
    assert mesh.invoke("quote.price", {"sum_insured": 1000}).status_code == 404
    got: dict = {}
    ready = threading.Event()
    listener = threading.Thread(target=_listen_for_announce, args=(mesh.amqp_uri, got, ready))
    listener.start()
    ready.wait(10)
    mesh.start_outsider()
    answer = mesh.wait_callable(timeout=30, settle=False)
    first_ok = time.monotonic()
    listener.join(30)

    assert answer.json()["data"]["premium_fen"] == 300  # 1000 yuan at 3 permille, in fen
    assert got["manifest"]["service"] == "quotes"
    assert first_ok - got["at"] <= 1.0, f"callable {first_ok - got['at']:.3f}s after announcing"

    catalog = mesh.get("/v1/catalog").json()["data"]["requests"]
    price = next(r for r in catalog if r["name"] == "quote.price")
    assert price["input_schema"]["required"] == ["sum_insured"] and price["available"]
    spec = mesh.get("/openapi.json").json()
    assert "/v1/invoke/quote.price" in spec["paths"]
    assert spec["paths"]["/v1/invoke/quote.accept"]["post"]["parameters"][1]["name"] \
        == "Idempotency-Key"


def test_no_file_of_the_core_names_the_outsider():
    hits = subprocess.run(["grep", "-rIl", "-e", "quotes", "-e", "quote\\.", "invoke_centre"],
                          cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert [h for h in hits if "__pycache__" not in h] == []


def test_the_centre_restarts_and_rebuilds_its_table_by_rollcall(mesh_factory, tmp_path):
    mesh = mesh_factory(f"sqlite:///{tmp_path / 'first.db'}")
    mesh.start_centre()
    mesh.start_outsider()
    mesh.wait_callable()
    mesh.stop_centre()

    # a centre with an empty database must learn the service from the rollcall alone
    mesh.db_uri = mesh.env["ICS_DB_URI"] = f"sqlite:///{tmp_path / 'second.db'}"
    mesh.start_centre()
    answer = mesh.wait_callable(timeout=5)
    assert answer.json()["ok"] is True


def test_two_instances_share_the_work(quotes_mesh):
    quotes_mesh.start_outsider("quotes-2")
    wait_for(lambda: len(quotes_mesh.admin("GET", "/v1/admin/services").json()["data"][0]
                         ["live_instances"]) == 2, 20, what="two live instances")
    seen = {quotes_mesh.invoke("quote.price", {"sum_insured": 10}).json()["data"]["instance"]
            for _ in range(60)}
    assert len(seen) == 2


def test_caller_context_reaches_the_service(quotes_mesh):
    from meshkit import AGENT_TOKEN

    r = quotes_mesh.invoke("quote.whoami", {}, token=AGENT_TOKEN,
                           headers={"X-Request-Id": "req-abc-123"})
    data = r.json()["data"]
    assert r.headers["X-Request-Id"] == "req-abc-123" and r.json()["request_id"] == "req-abc-123"
    assert data["request_id"] == "req-abc-123"
    assert data["user_id"] == "agent-7" and data["roles"] == ["agent"]
    assert data["branch"] == "530102" and data["named_request"] == "quote.whoami"
    assert 0 < data["deadline_left_s"] <= 3.0


def test_the_gateway_logs_carry_the_request_id(quotes_mesh):
    quotes_mesh.invoke("quote.crash", {}, headers={"X-Request-Id": "trace-me-42"})
    assert wait_for(lambda: "request_id=trace-me-42" in quotes_mesh.log("gateway"), 5)


def test_the_ics_tool_lists_what_runs(quotes_mesh):
    env = {**quotes_mesh.env, "ICS_URL": quotes_mesh.url, "ICS_TOKEN": OPERATOR_TOKEN}
    out = subprocess.run([BIN / "ics", "--json", "routes"], env=env, capture_output=True,
                         text=True, check=True).stdout
    names = {r["name"] for r in json.loads(out)["routes"]}
    assert {"quote.price", "quote.accept", "quote.whoami"} <= names
    out = subprocess.run([BIN / "ics", "instances"], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert "quotes" in out


def test_heartbeat_period_is_the_services_own(quotes_mesh):
    inst = quotes_mesh.admin("GET", "/v1/admin/instances").json()["data"]
    assert inst[0]["heartbeat_s"] == 1.0 and inst[0]["live"] is True


def test_clean_stop_says_goodbye(quotes_mesh):
    quotes_mesh.stop("quotes", signal.SIGTERM)
    wait_for(lambda: quotes_mesh.invoke("quote.price", {"sum_insured": 1}).status_code == 503,
             2, what="503 after goodbye")
    inst = wait_for(lambda: (d := quotes_mesh.admin("GET", "/v1/admin/instances")
                             .json()["data"]) and d[0]["gone_at"] and d, 5)
    assert inst[0]["live"] is False


def test_a_fresh_gateway_serves_its_first_request(quotes_mesh):
    """Rollcall answers arrive after the connection: the first call must not be refused."""
    for _ in range(2):
        quotes_mesh.stop("gateway")
        quotes_mesh._spawn("gateway", [BIN / "gunicorn", "-k", "gthread", "-w", "2",
                                       "--threads", "8", "-b", f"127.0.0.1:{quotes_mesh.port}",
                                       "invoke_centre.wsgi:application"])
        wait_for(quotes_mesh._healthy, 20, 0.01, "the gateway")
        assert quotes_mesh.invoke("quote.price", {"sum_insured": 1}).status_code == 200
