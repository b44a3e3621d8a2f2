"""Helpers of the audit service's integration tests (imported as ``audit_kit``)."""

import json

import pika
from meshkit import wait_for

KEY = "integration-chain-key"


def audit_env(tmp_path, **extra):
    return {"AUDIT_CHAIN_KEY": KEY, "AUDIT_CHECKPOINTS": str(tmp_path / "checkpoints.jsonl"),
            "AUDIT_SIGNING_KEY": str(tmp_path / "signing.key"), **extra}


def start_audit(mesh, db, tmp_path, **extra):
    before = mesh.log("audit").count("consuming audit.ingest") \
        if (tmp_path / "audit.log").exists() else 0
    mesh.start_service("audit", DB_URI=db, **audit_env(tmp_path, **extra))
    wait_for(lambda: mesh.log("audit").count("consuming audit.ingest") > before, 30, 0.05,
             "the audit service to consume")


class Publisher:
    """Publishes kit-format events, persistent and confirmed, as a service's AuditTrail does."""

    def __init__(self, amqp_uri):
        self.conn = pika.BlockingConnection(pika.URLParameters(amqp_uri))
        self.ch = self.conn.channel()
        self.ch.exchange_declare("ics.audit", "topic", durable=True)
        self.ch.confirm_delivery()

    def publish(self, event):
        self.ch.basic_publish("ics.audit", f"{event['type']}.{event['source']}",
                              json.dumps(event).encode(),
                              pika.BasicProperties(content_type="application/json",
                                                   delivery_mode=2,
                                                   message_id=event["event_id"]))

    def close(self):
        self.conn.close()
