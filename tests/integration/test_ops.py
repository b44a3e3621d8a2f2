"""What ops teams watch: /metrics and the bus view."""

import subprocess

import pika
from meshkit import BIN, OPERATOR_TOKEN, wait_for


def test_metrics_count_requests_and_live_instances(quotes_mesh):
    for _ in range(3):
        quotes_mesh.invoke("quote.price", {"sum_insured": 1})
    quotes_mesh.invoke("quote.price", {})
    # the management API refreshes its figures every few seconds
    text = wait_for(lambda: (t := quotes_mesh.get("/metrics", token=None).text)
                    and 'ics_queue_consumers{queue="rpc-quotes"} 1.0' in t and t, 15, 0.5)
    count = sum(float(line.split()[-1]) for line in text.splitlines()
                if line.startswith('ics_requests_total{name="quote.price",status="200"}'))
    assert count >= 3
    assert 'ics_requests_total{name="quote.price",status="400"}' in text
    assert 'ics_request_seconds_bucket{le="0.025",name="quote.price"}' in text \
        or 'ics_request_seconds_bucket{name="quote.price",le="0.025"}' in text
    assert 'ics_live_instances{service="quotes"} 1.0' in text
    assert 'ics_queue_consumers{queue="rpc-quotes"} 1.0' in text


def test_bus_view_joins_queues_to_services(quotes_mesh):
    # a service queue with messages and nobody consuming it must stand out
    conn = pika.BlockingConnection(pika.URLParameters(quotes_mesh.amqp_uri))
    ch = conn.channel()
    ch.queue_declare("rpc-orphan", durable=True)
    ch.basic_publish("", "rpc-orphan", b"{}")
    ch.queue_declare("audit.dlq", durable=True)
    ch.basic_publish("", "audit.dlq", b"{}")
    conn.close()

    def view():
        data = quotes_mesh.get("/v1/ops/bus").json()["data"]
        queues = {q["name"]: q for q in data["queues"]}
        return (queues.get("rpc-orphan", {}).get("ready") == 1
                and queues.get("audit.dlq", {}).get("dead_letters") == 1
                and queues.get("rpc-quotes", {}).get("consumers") == 1) and data

    data = wait_for(view, 15, 0.5, "the management API to catch up")
    queues = {q["name"]: q for q in data["queues"]}
    rpc = queues["rpc-quotes"]
    assert rpc["role"] == "rpc" and rpc["service"] == "quotes" and rpc["consumers"] == 1
    assert len(rpc["instances"]) == 1 and rpc["alerts"] == []
    assert queues["rpc-orphan"]["alerts"] == ["messages waiting with no consumer"]
    assert data["totals"]["dead_letters"] == 1
    assert any(x["name"] == "ics.registry" for x in data["exchanges"])

    env = {**quotes_mesh.env, "ICS_URL": quotes_mesh.url, "ICS_TOKEN": OPERATOR_TOKEN}
    out = subprocess.run([BIN / "ics", "bus"], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert "rpc-quotes" in out and "messages waiting with no consumer" in out


def test_docs_page_renders_the_spec(quotes_mesh):
    page = quotes_mesh.get("/docs", token=None)
    assert page.status_code == 200 and "openapi.json" in page.text
