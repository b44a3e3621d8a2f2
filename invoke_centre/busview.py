"""The ops view of the message bus: RabbitMQ's management API joined to the registry.

Every queue and exchange of the mesh's vhost with depth (ready / unacked),
consumers, publish and deliver rates and dead-letter counts, each queue named
for what uses it (which service's RPC queue, which event handler, which
gateway's reply queue) and flagged when messages wait with nobody to take them.
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import requests

_RPC = re.compile(r"^rpc-(?P<service>[a-z0-9_]+)$")
_EVT = re.compile(r"^evt-(?P<source>[^-]+)-(?P<event>.+)--(?P<service>[a-z0-9_]+)\.(?P<method>.+)$")


class BusViewError(Exception):
    pass


def vhost_of(amqp_uri: str) -> str:
    path = urlsplit(amqp_uri).path
    return unquote(path[1:]) if path and path != "/" else "/"


def is_dead_letter_queue(name: str) -> bool:
    return name.endswith((".dlq", ".dead", ".dead-letter")) or ".dlq." in name


def describe_queue(name: str) -> dict[str, str | None]:
    """What a queue is for, from the naming conventions of nameko and the centre."""
    if m := _RPC.match(name):
        return {"role": "rpc", "service": m["service"]}
    if m := _EVT.match(name):
        return {"role": "event-handler", "service": m["service"],
                "detail": f"{m['source']}.{m['event']} -> {m['method']}"}
    if name.startswith("ics.live."):
        return {"role": "gateway-liveness", "service": "invoke_centre"}
    if name.startswith("ics.reply."):
        return {"role": "gateway-reply", "service": "invoke_centre"}
    if name.startswith("ics.rollcall."):
        return {"role": "rollcall", "service": name.removeprefix("ics.rollcall.").split("-")[0]}
    if name.startswith("ics.registrar"):
        return {"role": "registrar", "service": "invoke_centre"}
    if name.startswith("rpc.reply-"):
        return {"role": "rpc-reply", "service": None}
    if is_dead_letter_queue(name):
        return {"role": "dead-letter", "service": None}
    return {"role": "other", "service": None}


def _rate(stats: dict | None, key: str) -> float:
    return float(((stats or {}).get(f"{key}_details") or {}).get("rate") or 0.0)


class BusView:
    def __init__(self, management_uri: str, amqp_uri: str, cache_s: float = 1.0) -> None:
        parts = urlsplit(management_uri)
        self.base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}"
        self.auth = (unquote(parts.username or "guest"), unquote(parts.password or "guest"))
        self.vhost = vhost_of(amqp_uri)
        self.cache_s = cache_s
        self._cached: tuple[float, dict] | None = None
        self._http = requests.Session()

    def _get(self, path: str) -> Any:
        url = f"{self.base}/api/{path}/{quote(self.vhost, safe='')}"
        try:
            resp = self._http.get(url, auth=self.auth, timeout=3)
        except requests.RequestException as exc:
            raise BusViewError(f"RabbitMQ management API unreachable at {self.base}: {exc}")
        if resp.status_code != 200:
            raise BusViewError(f"RabbitMQ management API answered {resp.status_code} for {path}")
        return resp.json()

    def snapshot(self, live: dict[str, list[str]] | None = None) -> dict[str, Any]:
        """Queues and exchanges, joined to ``live`` (service -> live instance ids)."""
        now = time.monotonic()
        if self._cached and now - self._cached[0] < self.cache_s and live is None:
            return self._cached[1]
        live = live or {}
        queues = []
        for q in self._get("queues"):
            desc = describe_queue(q["name"])
            stats = q.get("message_stats")
            ready = int(q.get("messages_ready") or 0)
            unacked = int(q.get("messages_unacknowledged") or 0)
            consumers = int(q.get("consumers") or 0)
            alerts = []
            if ready and not consumers:
                alerts.append("messages waiting with no consumer")
            if desc["role"] == "rpc" and desc["service"] and not live.get(desc["service"]) \
                    and consumers:
                alerts.append("consumed but no live instance announced")
            queues.append({
                "name": q["name"],
                **desc,
                "instances": live.get(desc["service"] or "", []),
                "ready": ready,
                "unacked": unacked,
                "consumers": consumers,
                "publish_rate": _rate(stats, "publish"),
                "deliver_rate": _rate(stats, "deliver_get"),
                "dead_letter_exchange": (q.get("arguments") or {}).get("x-dead-letter-exchange"),
                "dead_letters": ready + unacked if desc["role"] == "dead-letter" else 0,
                "durable": bool(q.get("durable")),
                "alerts": alerts,
            })
        exchanges = [{
            "name": x["name"] or "(default)",
            "type": x["type"],
            "durable": bool(x.get("durable")),
            "publish_in_rate": _rate(x.get("message_stats"), "publish_in"),
            "publish_out_rate": _rate(x.get("message_stats"), "publish_out"),
        } for x in self._get("exchanges") if not x["name"].startswith("amq.")]
        view = {
            "vhost": self.vhost,
            "queues": sorted(queues, key=lambda q: q["name"]),
            "exchanges": sorted(exchanges, key=lambda x: x["name"]),
            "totals": {
                "queues": len(queues),
                "ready": sum(q["ready"] for q in queues),
                "unacked": sum(q["unacked"] for q in queues),
                "dead_letters": sum(q["dead_letters"] for q in queues),
                "alerts": sum(len(q["alerts"]) for q in queues),
            },
        }
        self._cached = (now, view)
        return view
