"""Dependencies of the customer service beyond the kit's.

``Audit`` is the kit's ``AuditTrail`` with one fix: the kit publishes the event dict together
with ``content_type="application/json"``, and kombu then skips serialising it (a given content
type means "the body is already encoded"), so py-amqp fails on the dict ("argument for 's' must
be a bytes object"). Here the body is JSON text. Drop this class once the kit serialises itself.
"""

from __future__ import annotations

import json
from typing import Any

from invoke_centre.kit import AuditTrail


class Audit(AuditTrail):
    def publish(self, event: dict[str, Any]) -> None:
        self.publisher.publish(json.dumps(event, ensure_ascii=False, default=str),
                               routing_key=f"{event['type']}.{event['source']}",
                               message_id=event["event_id"], content_type="application/json",
                               content_encoding="utf-8", retry=True)
