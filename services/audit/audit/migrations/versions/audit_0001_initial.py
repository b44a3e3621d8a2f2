"""audit records, chain head, policy versions

Revision ID: audit_0001
Revises:
Create Date: 2026-11-27 09:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "audit_0001"
down_revision = None
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _text(name):
    return sa.Column(name, sa.Text(), nullable=False, server_default="")


def upgrade() -> None:
    op.create_table(
        "audit_records",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("at", sa.String(24), nullable=False),
        sa.Column("received_at", sa.String(24), nullable=False),
        *[_text(c) for c in ("source", "user_id", "roles", "branch", "terminal_id",
                             "request_id", "named_request", "service", "instance", "operation",
                             "object", "params")],
        sa.Column("outcome", sa.String(16), nullable=False),
        _text("detail"),
        sa.Column("mac", sa.String(64), nullable=False),
        sa.UniqueConstraint("event_id", name="uq_audit_records_event_id"),
    )
    op.create_index("ix_audit_records_user_seq", "audit_records", ["user_id", "seq"])
    op.create_index("ix_audit_records_type_seq", "audit_records", ["type", "seq"])
    op.create_index("ix_audit_records_named_request_seq", "audit_records",
                    ["named_request", "seq"])
    op.create_index("ix_audit_records_request_id", "audit_records", ["request_id"])
    op.create_index("ix_audit_records_at", "audit_records", ["at"])
    head = op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("mac", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "mac": "00" * 32}])
    op.create_table(
        "audit_policy",
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("rules", sa.Text(), nullable=False),
        _text("set_by"),
        sa.Column("set_at", sa.String(24), nullable=False),
        _text("note"),
    )


def downgrade() -> None:
    op.drop_table("audit_policy")
    op.drop_table("audit_chain_head")
    op.drop_table("audit_records")
