"""Audit events: how the centre and every service tell the audit trail what happened.

An event is a JSON object published, persistent and confirmed, on the durable topic exchange
``ics.audit`` with routing key ``<type>.<source>``; see ``docs/wire-contract.md``. The audit
service keeps them (at least once; it drops duplicates by ``event_id``) and applies the
administrators' audit policy to the optional kinds.

In a service::

    audit = AuditTrail()
    ...
    self.audit.sensitive_read(object=f"customer:{c.id}", fields=["id_number", "mobile"])
    self.audit.record("data_change", operation="customer.update", object=f"customer:{c.id}")
"""

from __future__ import annotations

import json
import os
import socket
from logging import getLogger
from typing import Any

from kombu import Exchange
from nameko.amqp.publish import Publisher, UndeliverableMessage
from nameko.constants import AMQP_URI_CONFIG_KEY, PERSISTENT
from nameko.extensions import DependencyProvider

from invoke_centre import wire
from invoke_centre.audit_events import audit_event, who_of
from invoke_centre.kit.context import CallerContext

_log = getLogger(__name__)


class _Recorder:
    def __init__(self, trail: "AuditTrail", caller: CallerContext) -> None:
        self._trail, self._caller = trail, caller

    def record(self, type_: str, *, operation: str | None = None, object: str | None = None,
               params: Any = None, outcome: str = "success",
               detail: dict[str, Any] | None = None) -> dict[str, Any]:
        c = self._caller
        event = audit_event(
            type_, source=self._trail.service, who=who_of(c),
            where={"request_id": c.request_id, "named_request": c.named_request,
                   "service": self._trail.service, "instance": self._trail.instance},
            operation=operation or c.named_request, object_=object, params=params,
            outcome=outcome, detail=detail)
        self._trail.publish(event)
        return event

    def sensitive_read(self, *, object: str, fields: list[str],
                       operation: str | None = None) -> dict[str, Any]:
        """Say that unmasked personal data (``fields`` of ``object``) left the service."""
        return self.record("sensitive_read", operation=operation, object=object,
                           detail={"fields": sorted(fields)})


class AuditTrail(DependencyProvider):
    """``audit = AuditTrail()``: each worker gets a recorder bound to its caller."""

    def setup(self) -> None:
        config = self.container.config
        self.service = self.container.service_name
        self.instance = f"{self.service}-{socket.gethostname()}-{os.getpid()}"
        self.exchange = Exchange(wire.AUDIT_EXCHANGE, type="topic", durable=True)
        self.publisher = Publisher(config[AMQP_URI_CONFIG_KEY], exchange=self.exchange,
                                   declare=[self.exchange], use_confirms=True,
                                   delivery_mode=PERSISTENT, serializer="json")

    def publish(self, event: dict[str, Any]) -> None:
        # JSON text: given a content type, kombu does not serialise a dict (py-amqp then fails)
        body = json.dumps(event, ensure_ascii=False)
        try:
            self.publisher.publish(body, routing_key=f"{event['type']}.{event['source']}",
                                   message_id=event["event_id"],
                                   content_type="application/json", content_encoding="utf-8",
                                   retry=True, mandatory=True)
        except UndeliverableMessage:
            # no audit queue on this vhost (the audit service never started here): say so, in
            # full, rather than lose the event without a trace
            _log.error("audit event not delivered, no queue takes it: %s", body)

    def get_dependency(self, worker_ctx) -> _Recorder:
        return _Recorder(self, CallerContext.from_data(worker_ctx.data))
