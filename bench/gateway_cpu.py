"""The gateway's own Python cost per named request, in process, with the bus stubbed out.

Calls the WSGI application directly (no gunicorn, no socket, no pika, one thread) with the
same request wrk sends, after the routing table is read from the database that bench/run.py
left behind (the echo route is in it). Prints JSON: microseconds of CPU per request and a
cProfile summary (top functions by own time and by cumulative time).

    ICS_DB_URI=sqlite:////tmp/ics-bench/bench.db ICS_TOKENS_FILE=/tmp/ics-bench/tokens.json \\
        .venv/bin/python bench/gateway_cpu.py --requests 20000
"""

import argparse
import cProfile
import io
import json
import pstats
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--token", default="benchtok")
    a = ap.parse_args()

    from invoke_centre.gateway import create_app

    app = create_app()
    centre = app.centre
    centre.routes.refresh()  # the table, once; no polling thread
    if "echo.echo" not in centre.routes.table.routes:
        sys.exit("echo.echo is not in the routing table of ICS_DB_URI")
    centre._started = True  # no bus connection, no polling threads
    centre.bus.live.seen("echo", "stub", 3600)
    centre.bus._ready.set()
    if hasattr(centre.bus, "connected_at"):
        try:
            centre.bus.connected_at = time.monotonic()
        except AttributeError:
            pass

    def call(service, method, params, *, headers, timeout_s):
        return {"result": params, "error": None}

    centre.bus.call = call
    body = b'{"n":1}'

    def environ():
        return {
            "REQUEST_METHOD": "POST", "PATH_INFO": "/v1/invoke/echo.echo", "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "18080", "SERVER_PROTOCOL": "HTTP/1.1",
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
            "HTTP_AUTHORIZATION": f"Bearer {a.token}", "HTTP_HOST": "127.0.0.1:18080",
            "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
            "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
            "wsgi.version": (1, 0),
        }

    statuses = {}

    def start_response(status, headers, exc_info=None):
        statuses[status[:3]] = statuses.get(status[:3], 0) + 1

    def run(n):
        for _ in range(n):
            for chunk in app(environ(), start_response):
                pass

    run(500)  # warm-up
    statuses.clear()
    c0, t0 = time.process_time(), time.perf_counter()
    run(a.requests)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    measured = dict(statuses)
    prof = cProfile.Profile()
    prof.enable()
    run(a.requests // 4)
    prof.disable()
    st = pstats.Stats(prof)
    total = sum(v[2] for v in st.stats.values())  # own time of every function

    def top(key, n=15):
        rows = sorted(st.stats.items(), key=lambda kv: kv[1][key], reverse=True)[:n]
        return [[f"{fn} ({file.rsplit('site-packages/', 1)[-1].rsplit('/src/', 1)[-1]}:{line})",
                 round(100 * v[key] / total, 1)] for (file, line, fn), v in rows]

    print(json.dumps({
        "requests": a.requests, "statuses": measured,
        "cpu_us_per_request": round(cpu / a.requests * 1e6, 1),
        "wall_us_per_request": round(wall / a.requests * 1e6, 1),
        "profile_own_pct": top(2), "profile_cumulative_pct": top(3, 25),
    }))


if __name__ == "__main__":
    main()
