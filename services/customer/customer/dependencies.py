"""Dependencies of the customer service beyond the kit's (each a small fix of a kit one).

``Audit`` is the kit's ``AuditTrail`` with one fix: the kit publishes the event dict together
with ``content_type="application/json"``, and kombu then skips serialising it (a given content
type means "the body is already encoded"), so py-amqp fails on the dict ("argument for 's' must
be a bytes object"). Here the body is JSON text. Drop this class once the kit serialises itself.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.orm import sessionmaker

from invoke_centre.kit import AuditTrail, make_engine, upgrade
from invoke_centre.kit import Database as KitDatabase


class Audit(AuditTrail):
    def publish(self, event: dict[str, Any]) -> None:
        self.publisher.publish(json.dumps(event, ensure_ascii=False, default=str),
                               routing_key=f"{event['type']}.{event['source']}",
                               message_id=event["event_id"], content_type="application/json",
                               content_encoding="utf-8", retry=True)


class Database(KitDatabase):
    """The kit's ``Database`` with a connection pool as large as the service's worker pool.

    SQLAlchemy's default pool keeps 5 connections; with nameko's 10 workers the other 5 are
    opened and closed around every call under load — a new PostgreSQL backend per lookup.
    """

    def setup(self) -> None:
        config = self.container.config
        uri = config["DB_URI"]
        workers = int(config.get("max_workers") or 10)
        pool = {} if uri.startswith("sqlite") else {"pool_size": workers, "max_overflow": 2}
        self.engine = make_engine(uri, **pool)
        if self.migrations:
            upgrade(uri, self.migrations, engine=self.engine)
        self.session_factory = sessionmaker(bind=self.engine, expire_on_commit=False)
