"""Prometheus figures of the gateway: per named request counts and latencies, live instances, bus.

Under gunicorn the run command sets ``PROMETHEUS_MULTIPROC_DIR`` so that every
worker's counters add up; live instances and bus figures are read at scrape
time by the scraped worker (each worker sees the whole bus).
"""

from __future__ import annotations

import os
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

REQUESTS = Counter("ics_requests_total", "Named requests answered, by name and HTTP status",
                   ["name", "status"])
LATENCY = Histogram("ics_request_seconds", "Time to answer a named request", ["name"],
                    buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))


class _LiveCollector:
    def __init__(self, live: Callable[[], dict[str, list[str]]],
                 bus: Callable[[], dict | None]) -> None:
        self._live, self._bus = live, bus

    def collect(self):
        g = GaugeMetricFamily("ics_live_instances", "Live instances per service",
                              labels=["service"])
        for service, instances in sorted(self._live().items()):
            g.add_metric([service], len(instances))
        yield g
        view = self._bus()
        if view is None:
            return
        depth = GaugeMetricFamily("ics_queue_messages", "Messages in a queue",
                                  labels=["queue", "state"])
        consumers = GaugeMetricFamily("ics_queue_consumers", "Consumers of a queue",
                                      labels=["queue"])
        dead = GaugeMetricFamily("ics_dead_letters", "Messages in dead-letter queues",
                                 labels=["queue"])
        for q in view["queues"]:
            depth.add_metric([q["name"], "ready"], q["ready"])
            depth.add_metric([q["name"], "unacked"], q["unacked"])
            consumers.add_metric([q["name"]], q["consumers"])
            if q["role"] == "dead-letter":
                dead.add_metric([q["name"]], q["dead_letters"])
        yield depth
        yield consumers
        yield dead


def exposition(live: Callable[[], dict[str, list[str]]], bus: Callable[[], dict | None]) -> bytes:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REQUESTS)
        registry.register(LATENCY)
    registry.register(_LiveCollector(live, bus))
    return generate_latest(registry)
