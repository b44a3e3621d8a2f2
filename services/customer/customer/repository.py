"""Customers in the database: queries and writes, given one session (the unit of work's).

Rows come back as the domain's ``Customer`` dataclasses; no business rule is decided here. Every
query that lists customers takes the caller's ``Scope`` and turns it into SQL, so a customer out
of reach never leaves the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, case, delete, false, func, insert, literal, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from customer.domain import COLUMNS, Customer, Scope, SearchCriteria, band_edges
from customer.exceptions import Duplicate, StaleVersion
from customer.models import customers, relations

_C = customers.c
_TOP = "\U0010ffff"  # above every character: [p, p + _TOP) is every string starting with p
_WRITABLE = tuple(k for k in COLUMNS if k != "id")


def starts_with(column, prefix: str):
    """``column`` starts with ``prefix``, as an index range (no LIKE, nothing to escape)."""
    return and_(column >= prefix, column < prefix + _TOP)


def scope_clause(scope: Scope):
    """SQL for the customers ``scope`` reaches (None: no restriction)."""
    if scope.everywhere:
        return None
    parts = [starts_with(_C.branch, p) for p in scope.prefixes]
    if scope.owner is not None:
        parts.append(_C.manager_id == scope.owner)
    return or_(*parts) if parts else false()


def _customer(row) -> Customer:
    m = row._mapping
    return Customer(**{k: m[k] for k in COLUMNS})


def _values(c: Customer) -> dict[str, Any]:
    return {k: getattr(c, k) for k in _WRITABLE}


class CustomerRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- reading ------------------------------------------------------------------------------
    def get(self, customer_id: int) -> Customer | None:
        row = self.session.execute(select(customers).where(_C.id == customer_id)).first()
        return _customer(row) if row else None

    def get_many(self, ids: Iterable[int]) -> dict[int, Customer]:
        ids = list(set(ids))
        if not ids:
            return {}
        rows = self.session.execute(select(customers).where(_C.id.in_(ids)))
        return {c.id: c for c in map(_customer, rows)}

    def by_id_number(self, number: str) -> Customer | None:
        row = self.session.execute(select(customers).where(_C.id_number == number)
                                   .order_by(_C.id).limit(1)).first()
        return _customer(row) if row else None

    def holders_of(self, numbers: Iterable[str]) -> dict[str, int]:
        """Which of ``numbers`` some customer already has: number → customer id."""
        numbers = list(set(numbers))
        found: dict[str, int] = {}
        for i in range(0, len(numbers), 500):
            for num, cid in self.session.execute(
                    select(_C.id_number, _C.id).where(_C.id_number.in_(numbers[i:i + 500]))):
                found.setdefault(num, cid)
        return found

    def _filters(self, crit: SearchCriteria, scope: Scope) -> list:
        conds = []
        if crit.id_number:
            conds.append(_C.id_number == crit.id_number)
        if crit.mobile:
            conds.append(_C.mobile == crit.mobile)
        if crit.name:
            column = {"exact": _C.name, "prefix": _C.name, "initials": _C.name_initials,
                      "pinyin": _C.name_pinyin}[crit.name_mode]
            conds.append(column == crit.name if crit.name_mode == "exact"
                         else starts_with(column, crit.name))
        if crit.branch:
            conds.append(starts_with(_C.branch, crit.branch))
        if crit.manager_id:
            conds.append(_C.manager_id == crit.manager_id)
        if crit.born_after:
            conds.append(_C.birth_date >= crit.born_after)
        if crit.born_before:
            conds.append(_C.birth_date <= crit.born_before)
        if crit.occupation_code:
            conds.append(_C.occupation_code == crit.occupation_code)
        if crit.region:
            conds.append(starts_with(_C.region_code, crit.region))
        where = scope_clause(scope)
        if where is not None:
            conds.append(where)
        return conds

    def search(self, crit: SearchCriteria, scope: Scope, *, limit: int | None = None
               ) -> list[Customer]:
        """Up to ``limit`` customers in ``crit.sort`` order after the keyset ``crit.after``."""
        conds = self._filters(crit, scope)
        column = _C[crit.sort]
        if crit.after is not None:
            value, last_id = crit.after
            if crit.sort == "id":
                conds.append(_C.id < last_id if crit.descending else _C.id > last_id)
            elif crit.descending:
                conds += [column <= value, tuple_(column, _C.id) < tuple_(value, last_id)]
            else:
                conds += [column >= value, tuple_(column, _C.id) > tuple_(value, last_id)]
        order = [column.desc(), _C.id.desc()] if crit.descending else [column, _C.id]
        if crit.sort == "id":
            order = order[:1]
        q = select(customers).where(*conds).order_by(*order).limit(limit or crit.limit)
        return [_customer(r) for r in self.session.execute(q)]

    def relations_of(self, customer_id: int) -> list[tuple[str, Customer]]:
        r = relations.c
        rows = self.session.execute(
            select(r.kind, customers).join(customers, customers.c.id == r.related_id)
            .where(r.customer_id == customer_id).order_by(r.kind, r.related_id))
        return [(row.kind, _customer(row)) for row in rows]

    def analysis(self, grouping: str, crit: SearchCriteria, scope: Scope, today: date
                 ) -> list[tuple[Any, str, str, str | None, int]]:
        """Counts per (group, gender, age band, occupation) of the customers in reach."""
        group = {"branch": _C.branch, "county": _C.region_code,
                 "prefecture": func.substr(_C.region_code, 1, 4), "manager": _C.manager_id,
                 "none": literal(None)}[grouping].label("grp")
        band = case(*[(and_(_C.birth_date >= first, _C.birth_date <= last), label)
                      for label, first, last in band_edges(today)], else_="?").label("band")
        q = (select(group, _C.gender, band, _C.occupation_code, func.count())
             .where(*self._filters(crit, scope))
             .group_by(group, _C.gender, band, _C.occupation_code))
        return [tuple(row) for row in self.session.execute(q)]

    # --- writing ------------------------------------------------------------------------------
    def add(self, c: Customer) -> Customer:
        try:
            with self.session.begin_nested():
                result = self.session.execute(insert(customers).values(**_values(c)))
        except IntegrityError:
            raise self._duplicate(c.id_number) from None
        c.id = result.inserted_primary_key[0]
        return c

    def add_many(self, batch: Sequence[Customer]) -> list[Customer]:
        """Insert ``batch`` in one statement; each gets its id."""
        if not batch:
            return []
        try:
            with self.session.begin_nested():
                rows = self.session.execute(
                    insert(customers).returning(_C.id, sort_by_parameter_order=True),
                    [_values(c) for c in batch]).all()
        except IntegrityError:
            raise Duplicate("an ID number is already taken", {"id_number": ["already taken"]}
                            ) from None
        for c, row in zip(batch, rows, strict=True):
            c.id = row[0]
        return list(batch)

    def save(self, c: Customer, *, expected_version: int) -> None:
        """Write ``c`` if nobody changed it since ``expected_version`` (else 409)."""
        values = _values(c)
        values.pop("created_at")
        try:
            with self.session.begin_nested():
                result = self.session.execute(
                    update(customers).where(_C.id == c.id, _C.version == expected_version)
                    .values(**values))
        except IntegrityError:
            raise self._duplicate(c.id_number) from None
        if result.rowcount != 1:
            now = self.get(c.id)
            raise StaleVersion(f"customer {c.id} changed meanwhile",
                               {"version": [f"is {now.version if now else '?'} now"]},
                               current=now.version if now else None)

    def _duplicate(self, number: str) -> Duplicate:
        holder = self.by_id_number(number)
        return duplicate(number, holder.id if holder else None)

    def relate(self, pairs: Iterable[tuple[int, int, str]], now: datetime) -> int:
        """Store relation rows that are not there yet; how many were new."""
        r = relations.c
        added = 0
        for a, b, kind in pairs:
            exists = self.session.execute(select(r.id).where(
                r.customer_id == a, r.related_id == b, r.kind == kind)).first()
            if not exists:
                self.session.execute(insert(relations).values(customer_id=a, related_id=b,
                                                              kind=kind, created_at=now))
                added += 1
        return added

    def unrelate(self, pairs: Iterable[tuple[int, int, str | None]]) -> int:
        r = relations.c
        removed = 0
        for a, b, kind in pairs:
            q = delete(relations).where(r.customer_id == a, r.related_id == b)
            if kind:
                q = q.where(r.kind == kind)
            removed += self.session.execute(q).rowcount
        return removed


def duplicate(number: str, holder_id: int | None) -> Duplicate:
    who = f"customer {holder_id}" if holder_id else "another customer"
    return Duplicate(f"{who} already has this ID number",
                     {"id_number": [f"already belongs to {who}"]}, existing_id=holder_id)
