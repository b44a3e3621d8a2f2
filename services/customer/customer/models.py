"""The customer service's tables (SQLAlchemy Core; the domain objects are plain dataclasses).

Search keys are stored, not computed at query time: ``name_pinyin`` and ``name_initials`` (张三 →
``zhangsan``, ``zs``). On PostgreSQL the text keys use the "C" collation, so one plain B-tree
index serves exact match, prefix ranges and ORDER BY alike (a prefix search is a range
``key >= 'zs' AND key < 'zs' || U+10FFFF``, the same on SQLite).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)


def key(length: int) -> String:
    """A text search key: byte-order collation on PostgreSQL, SQLite's BINARY elsewhere."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


# SQLite's INTEGER PRIMARY KEY is its rowid; BIGINT on PostgreSQL
ID = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

customers = Table(
    "customers", metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("name", key(60), nullable=False),
    Column("name_pinyin", key(120), nullable=False),
    Column("name_initials", key(60), nullable=False),
    Column("gender", String(1), nullable=False),
    Column("birth_date", Date, nullable=False),
    Column("id_type", String(20), nullable=False),
    Column("id_number", key(32), nullable=False),
    Column("mobile", key(20)),
    Column("province", String(40)),
    Column("prefecture", String(60)),
    Column("county", String(60)),
    Column("street", String(200)),
    Column("region_code", key(6)),
    Column("occupation_code", String(10)),
    Column("employer", String(120)),
    Column("email", String(120)),
    Column("branch", key(16), nullable=False),
    Column("manager_id", key(64)),
    Column("latitude", Float),
    Column("longitude", Float),
    Column("location_source", String(10)),
    Column("located_at", DateTime),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("version", Integer, nullable=False, server_default="1"),
    UniqueConstraint("id_number", "id_type", name="uq_customers_id_number"),
)
# (key, id): the keyset of a page of results is one index range
Index("ix_customers_mobile", customers.c.mobile)
Index("ix_customers_name", customers.c.name, customers.c.id)
Index("ix_customers_name_pinyin", customers.c.name_pinyin, customers.c.id)
Index("ix_customers_name_initials", customers.c.name_initials, customers.c.id)
Index("ix_customers_branch", customers.c.branch)
Index("ix_customers_manager_id", customers.c.manager_id)
Index("ix_customers_region_code", customers.c.region_code)

relations = Table(
    "customer_relations", metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("customer_id", ID, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("related_id", ID, ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("customer_id", "related_id", "kind", name="uq_customer_relations"),
)
Index("ix_customer_relations_related_id", relations.c.related_id)
