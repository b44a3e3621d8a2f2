"""Closed-loop RPC load over raw pika: keep N calls in flight for a while, report calls/s.

    python pika_rpc.py --mode bare   --inflight 32 --duration 10   # against bare_echo.py
    python pika_rpc.py --mode nameko --inflight 32 --duration 10   # against the nameko service

``nameko`` mode speaks nameko's RPC wire protocol by hand: publish to exchange ``nameko-rpc``
with routing key ``echo.echo``, body ``{"args": [params], "kwargs": {}}``, ``reply_to`` a
routing key bound to our own queue on ``nameko-rpc``, and a ``correlation_id``. One
connection, one channel, one thread; a reply's callback publishes the next call.
Prints one JSON object on stdout.
"""

import argparse
import json
import os
import time
import uuid

import pika
from benchlib import pct


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["bare", "nameko"], required=True)
    ap.add_argument("--inflight", type=int, default=32)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--uri", default=os.environ.get("AMQP_URI",
                                                    "amqp://guest:guest@127.0.0.1:5672/"))
    ap.add_argument("--routing-key", default="echo.echo")
    a = ap.parse_args()

    conn = pika.BlockingConnection(pika.URLParameters(a.uri))
    ch = conn.channel()
    reply_q = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
    if a.mode == "nameko":
        ch.exchange_declare("nameko-rpc", "topic", durable=True)
        reply_key = f"bench-{uuid.uuid4().hex}"
        ch.queue_bind(reply_q, "nameko-rpc", routing_key=reply_key)
        exchange, key = "nameko-rpc", a.routing_key
        body = json.dumps({"args": [{"n": 1}], "kwargs": {}}).encode()
    else:
        reply_key = reply_q  # the default exchange routes by queue name
        exchange, key = "", "bench.bare"
        body = b'{"n": 1}'

    sent: dict[str, float] = {}
    lat: list[float] = []
    state = {"measuring": False, "stop": False, "done": 0, "errors": 0}

    def publish() -> None:
        corr = uuid.uuid4().hex
        sent[corr] = time.perf_counter()
        ch.basic_publish(exchange, key, body, pika.BasicProperties(
            reply_to=reply_key, correlation_id=corr, content_type="application/json",
            content_encoding="utf-8", delivery_mode=1))

    def on_reply(_ch, _method, props, rbody) -> None:
        t0 = sent.pop(props.correlation_id, None)
        if t0 is None:
            return
        if state["measuring"]:
            lat.append(time.perf_counter() - t0)
            state["done"] += 1
            if a.mode == "nameko" and json.loads(rbody).get("error") is not None:
                state["errors"] += 1
        if not state["stop"]:
            publish()

    ch.basic_consume(reply_q, on_reply, auto_ack=True)
    for _ in range(a.inflight):
        publish()
    t_start = time.perf_counter()
    while time.perf_counter() - t_start < a.warmup:
        conn.process_data_events(time_limit=0.05)
    state["measuring"] = True
    m0, c0 = time.perf_counter(), time.process_time()
    while time.perf_counter() - m0 < a.duration:
        conn.process_data_events(time_limit=0.05)
    elapsed, cpu = time.perf_counter() - m0, time.process_time() - c0
    state["measuring"] = False
    state["stop"] = True
    drain = time.perf_counter()
    while sent and time.perf_counter() - drain < 5:
        conn.process_data_events(time_limit=0.05)
    conn.close()
    lat.sort()
    print(json.dumps({
        "mode": a.mode, "inflight": a.inflight, "duration_s": round(elapsed, 3),
        "calls": state["done"], "errors": state["errors"],
        "calls_per_s": round(state["done"] / elapsed, 1),
        "client_cpu_s": round(cpu, 3), "t_start": time.time() - (time.perf_counter() - m0),
        "t_end": time.time() - (time.perf_counter() - m0) + elapsed,
        "latency_ms": {k: round(v * 1000, 3) for k, v in (
            ("p50", pct(lat, 50)), ("p99", pct(lat, 99)), ("max", lat[-1] if lat else None))
            if v is not None},
    }))


if __name__ == "__main__":
    main()
