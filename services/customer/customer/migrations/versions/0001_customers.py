"""customers and their relations

Revision ID: 0001
Revises:
Create Date: 2026-11-27 09:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def key(length: int) -> sa.String:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("name", key(60), nullable=False),
        sa.Column("name_pinyin", key(120), nullable=False),
        sa.Column("name_initials", key(60), nullable=False),
        sa.Column("gender", sa.String(1), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=False),
        sa.Column("id_type", sa.String(20), nullable=False),
        sa.Column("id_number", key(32), nullable=False),
        sa.Column("mobile", key(20)),
        sa.Column("province", sa.String(40)),
        sa.Column("prefecture", sa.String(60)),
        sa.Column("county", sa.String(60)),
        sa.Column("street", sa.String(200)),
        sa.Column("region_code", key(6)),
        sa.Column("occupation_code", sa.String(10)),
        sa.Column("employer", sa.String(120)),
        sa.Column("email", sa.String(120)),
        sa.Column("branch", key(16), nullable=False),
        sa.Column("manager_id", key(64)),
        sa.Column("latitude", sa.Float()),
        sa.Column("longitude", sa.Float()),
        sa.Column("location_source", sa.String(10)),
        sa.Column("located_at", sa.DateTime()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        sa.UniqueConstraint("id_number", "id_type", name="uq_customers_id_number"),
    )
    for col in ("mobile", "branch", "manager_id", "region_code"):
        op.create_index(f"ix_customers_{col}", "customers", [col])
    for col in ("name", "name_pinyin", "name_initials"):  # (key, id): a page is one range
        op.create_index(f"ix_customers_{col}", "customers", [col, "id"])
    op.create_table(
        "customer_relations",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("customer_id", ID, sa.ForeignKey("customers.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("related_id", ID, sa.ForeignKey("customers.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("customer_id", "related_id", "kind", name="uq_customer_relations"),
    )
    op.create_index("ix_customer_relations_related_id", "customer_relations", ["related_id"])


def downgrade() -> None:
    op.drop_table("customer_relations")
    op.drop_table("customers")
