"""Gunicorn settings for the invoke-centre gateway.

One file for every way the gateway runs: scripts/run, the container image, compose and the
Kubernetes manifests. Settings come from the environment, with defaults that work on one machine:

    ICS_BIND      host:port to listen on (several, comma-separated)   127.0.0.1:8080
    ICS_WORKERS   worker processes                                    2
    ICS_THREADS   threads per worker (gthread)                        16
    ICS_ACCESS_LOG  where to write the access log, "-" for stdout     off
    ICS_LOG_LEVEL gunicorn's own log level                            info
    ICS_CONTROL_SOCKET  path of gunicorn's control socket (gunicornc)   none

Usage: gunicorn -c deploy/gunicorn.conf.py invoke_centre.wsgi:application
"""

import os

bind = [b.strip() for b in os.environ.get("ICS_BIND", "127.0.0.1:8080").split(",") if b.strip()]
workers = int(os.environ.get("ICS_WORKERS", "2"))
# A request spends most of its time waiting for an RPC reply over AMQP: many threads per worker
# keep many requests in flight at little cost.
worker_class = "gthread"
threads = int(os.environ.get("ICS_THREADS", "16"))

timeout = 30  # a worker silent this long is restarted; request deadlines are far below it
graceful_timeout = 10  # on SIGTERM, in-flight requests get this long to finish
keepalive = 5

# The access log is off by default (a line per request is costly under load); ICS_ACCESS_LOG=-
# turns it on.
accesslog = os.environ.get("ICS_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("ICS_LOG_LEVEL", "info")
proc_name = "ics-gateway"

# Newer gunicorns open a control socket at one fixed path per user, which two gateways on one
# machine (scripts/run beside a test run) would both claim, and which a read-only home in a
# container can't hold: only where asked for. Older gunicorns ignore both settings.
control_socket_disable = not os.environ.get("ICS_CONTROL_SOCKET")
if not control_socket_disable:
    control_socket = os.environ["ICS_CONTROL_SOCKET"]

# Heartbeat files on a memory filesystem: a container's overlay /tmp can stall them.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"


def on_starting(server):
    """Make sure prometheus_client's multiprocess directory exists before any worker writes."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)


def child_exit(server, worker):
    """Drop a dead worker's live gauges, so /metrics does not report processes that are gone."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
