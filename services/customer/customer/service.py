"""The customer service: find, create and edit the people agents serve (F1.1, F1.2), their
relations, locations (F5.8), import and export (F5.6) and analyses (F6).

Entrypoints only: load the request, call the domain, use the repository in a unit of work,
answer, then tell the others (events after commit, audit events for unmasked personal data).
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
from datetime import date
from logging import getLogger
from pathlib import Path
from typing import Any

from nameko.events import EventDispatcher

from customer import dictionaries as dicts
from customer import domain, files, schemas
from customer.exceptions import (
    CustomerError,
    Duplicate,
    Invalid,
    Missing,
    OutOfScope,
    StaleVersion,
)
from customer.repository import CustomerRepository, duplicate
from customer.schemas import ShapeError, json_schema
from invoke_centre.kit import (
    AuditTrail,
    Caller,
    Conflict,
    Database,
    Forbidden,
    Member,
    NotFound,
    ValidationError,
    serves,
)

__version__ = "1.0.0"
_log = getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
READ, WRITE, PII = "customer:read", "customer:write", "customer:pii"
IMPORT, EXPORT, ANALYSE = "customer:import", "customer:export", "customer:analyse"
IMPORT_CHUNK = 500


def _sensitivity(wanted: str) -> str:
    """The protection a request asks of the caller's payloads (P2): what its data deserves —
    sealed for answers with personal data, signed for changes — capped by
    ``CUSTOMER_MAX_SENSITIVITY`` (read at import: the manifest is built from the class). A
    development mesh whose tokens have no device keys runs with the cap ``normal``."""
    levels = ("normal", "signed", "sealed")
    cap = os.environ.get("CUSTOMER_MAX_SENSITIVITY", "sealed")
    return min(wanted, cap if cap in levels else "sealed", key=levels.index)


SEALED, SIGNED = _sensitivity("sealed"), _sensitivity("signed")

_MAPPED = {Invalid: ValidationError, Missing: NotFound, OutOfScope: Forbidden,
           StaleVersion: Conflict, Duplicate: Conflict}


def _flat(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for k, v in messages.items():
            out.update(_flat(v, f"{prefix}{k}" if not prefix else f"{prefix}.{k}"))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        out[prefix or "_"] = list(messages)
    else:
        out[prefix or "_"] = [str(messages)]
    return out


def translated(fn):
    """Domain refusals and shape errors become the kit's typed errors (the centre's statuses)."""

    @functools.wraps(fn)
    def entrypoint(self, params=None):
        try:
            return fn(self, params if params is not None else {})
        except ShapeError as exc:
            raise ValidationError("the parameters are not valid", _flat(exc.messages)) from None
        except CustomerError as exc:
            fields = dict(exc.fields)
            if exc.extra.get("existing_id"):
                fields["existing_id"] = [str(exc.extra["existing_id"])]
            raise _MAPPED[type(exc)](exc.message, fields) from None

    return entrypoint


class CustomerService:
    name = "customer"
    member = Member(version=__version__)
    caller = Caller()
    uow = Database(migrations=MIGRATIONS, repositories={"customers": CustomerRepository})
    audit = AuditTrail()
    dispatch = EventDispatcher()

    # --- helpers ------------------------------------------------------------------------------
    def _scope(self, permission: str) -> domain.Scope:
        scope = domain.Scope.of(self.caller, permission)
        if scope.nothing:
            raise Forbidden(f"you need {permission}", {"_": [f"{permission} is not yours"]})
        return scope

    def _visible(self, uow, customer_id: int) -> domain.Customer:
        """The customer, if the caller may read it; otherwise as if there were none (404)."""
        c = uow.customers.get(customer_id)
        if c is None or not self.caller.may_at(READ, branch=c.branch, owner=c.manager_id):
            raise Missing(f"no customer {customer_id}", {"id": ["no such customer"]})
        return c

    def _present(self, items: list[domain.Customer], today: date | None = None) -> list[dict]:
        out, unmasked = [], []
        for c in items:
            see = domain.sees_pii(self.caller, c)
            out.append(schemas.present(c, unmasked=see, today=today))
            if see:
                unmasked.append(c.id)
        if unmasked:
            self._audit_unmasked(unmasked)
        return out

    def _audit_unmasked(self, ids: list[int]) -> None:
        if len(ids) == 1:
            self.audit.sensitive_read(object=f"customer:{ids[0]}", fields=list(schemas.PII_FIELDS))
        else:
            self.audit.record("sensitive_read", object=f"customer:{ids[0]}+{len(ids) - 1}",
                              detail={"fields": list(schemas.PII_FIELDS), "ids": ids})

    def _changed(self, c: domain.Customer, changed: list[str]) -> None:
        self.dispatch("customer_changed", schemas.event(c, changed=changed))
        if domain.moved(changed):
            self.dispatch("customer_moved", schemas.event(c))
        self.audit.record("data_change", object=f"customer:{c.id}",
                          detail={"changed": changed, "version": c.version})

    # --- finding ------------------------------------------------------------------------------
    @serves("customer.search", permission=READ, sensitivity=SEALED, timeout_ms=5000,
            input_schema=json_schema(schemas.SearchSchema()))
    @translated
    def search_customers(self, params):
        """Find customers by ID number, mobile, name, name prefix or pinyin initials (F1.1)."""
        crit = domain.criteria(schemas.load(schemas.SearchSchema, params))
        scope = self._scope(READ)
        with self.uow.read() as uow:
            found = uow.customers.search(crit, scope, limit=crit.limit + 1)
        more = len(found) > crit.limit
        items = found[:crit.limit]
        return {"items": self._present(items), "sort": crit.sort,
                "order": "desc" if crit.descending else "asc",
                "next_cursor": domain.encode_cursor(items[-1], crit.sort) if more else None}

    @serves("customer.get", permission=READ, sensitivity=SEALED,
            input_schema=json_schema(schemas.GetCustomerSchema()))
    @translated
    def get_customer(self, params):
        """One customer with their relations (the household)."""
        data = schemas.load(schemas.GetCustomerSchema, params)
        with self.uow.read() as uow:
            c = self._visible(uow, data["id"])
            related = uow.customers.relations_of(c.id)
        answer = self._present([c])[0]
        answer["relations"] = self._relations(related)
        return answer

    def _relations(self, related: list[tuple[str, domain.Customer]]) -> list[dict]:
        out, unmasked = [], []
        for kind, r in related:
            rel = dicts.RELATIONSHIPS[kind]
            item: dict[str, Any] = {"kind": kind, "kind_name": rel.name, "id": r.id}
            if self.caller.may_at(READ, branch=r.branch, owner=r.manager_id):
                see = domain.sees_pii(self.caller, r)
                full = schemas.present(r, unmasked=see)
                item.update({k: full[k] for k in ("name", "gender", "age", "id_type",
                                                  "id_number", "mobile", "branch")})
                if see:
                    unmasked.append(r.id)
            out.append(item)
        if unmasked:
            self._audit_unmasked(unmasked)
        return out

    # --- writing ------------------------------------------------------------------------------
    @serves("customer.create", permission=WRITE, sensitivity=SIGNED, mutating=True,
            input_schema=json_schema(schemas.CreateCustomerSchema()))
    @translated
    def create_customer(self, params):
        """Create a customer from the phone (F1.2); one record per person (409 on a taken ID)."""
        c = domain.new_customer(schemas.load(schemas.CreateCustomerSchema, params),
                                caller=self.caller)
        domain.require_write(self.caller, c)
        with self.uow as uow:
            holder = uow.customers.by_id_number(c.id_number)
            if holder is not None:
                raise duplicate(c.id_number, holder.id)
            uow.customers.add(c)
            uow.commit()
        self.dispatch("customer_created", schemas.event(c))
        if c.latitude is not None:
            self.dispatch("customer_moved", schemas.event(c))
        self.audit.record("data_change", object=f"customer:{c.id}", detail={"created": True})
        return self._present([c])[0]

    @serves("customer.update", permission=WRITE, sensitivity=SIGNED, mutating=True,
            input_schema=json_schema(schemas.UpdateCustomerSchema()))
    @translated
    def update_customer(self, params):
        """Edit a customer; ``version`` is the one read (a stale one is refused with 409)."""
        data = schemas.load(schemas.UpdateCustomerSchema, params)
        customer_id, version = data.pop("id"), data.pop("version")
        with self.uow as uow:
            c = self._visible(uow, customer_id)
            domain.require_write(self.caller, c)
            updated, changed = domain.change(c, data, version=version)
            if changed:
                domain.require_write(self.caller, updated)  # not moved out of one's reach
                if updated.id_number != c.id_number:
                    holder = uow.customers.by_id_number(updated.id_number)
                    if holder is not None and holder.id != c.id:
                        raise duplicate(updated.id_number, holder.id)
                uow.customers.save(updated, expected_version=c.version)
                uow.commit()
        if changed:
            self._changed(updated, changed)
        answer = self._present([updated])[0]
        answer["changed"] = changed
        return answer

    @serves("customer.relate", permission=WRITE, sensitivity=SIGNED, mutating=True,
            input_schema=json_schema(schemas.RelateSchema()))
    @translated
    def relate_customers(self, params):
        """Record that ``related_id`` is ``kind`` of ``customer_id`` (and the inverse)."""
        data = schemas.load(schemas.RelateSchema, params)
        with self.uow as uow:
            a = self._visible(uow, data["customer_id"])
            domain.require_write(self.caller, a)
            b = self._visible(uow, data["related_id"])
            pairs = domain.relation_pair(data["kind"], a.id, b.id)
            added = uow.customers.relate(pairs, domain.now_utc())
            uow.commit()
        if added:
            for cid in (a.id, b.id):
                self.dispatch("customer_changed", {"id": cid, "changed": ["relations"]})
        return {"customer_id": a.id, "related_id": b.id, "kind": data["kind"],
                "inverse": pairs[1][2], "added": bool(added)}

    @serves("customer.unrelate", permission=WRITE, sensitivity=SIGNED, mutating=True,
            input_schema=json_schema(schemas.UnrelateSchema()))
    @translated
    def unrelate_customers(self, params):
        """Remove a relation (both directions); without ``kind``, every relation of the two."""
        data = schemas.load(schemas.UnrelateSchema, params)
        with self.uow as uow:
            a = self._visible(uow, data["customer_id"])
            domain.require_write(self.caller, a)
            b = self._visible(uow, data["related_id"])
            kind = data.get("kind")
            if kind:
                pairs = domain.relation_pair(kind, a.id, b.id)
            else:
                pairs = ((a.id, b.id, None), (b.id, a.id, None))
            removed = uow.customers.unrelate(pairs)
            uow.commit()
        if removed:
            for cid in (a.id, b.id):
                self.dispatch("customer_changed", {"id": cid, "changed": ["relations"]})
        return {"customer_id": a.id, "related_id": b.id, "removed": removed}

    @serves("customer.locate", permission=WRITE, sensitivity=SIGNED, mutating=True,
            input_schema=json_schema(schemas.LocateSchema()))
    @translated
    def locate_customer(self, params):
        """Store a location fix of a customer from the phone's GPS (F5.8)."""
        data = schemas.load(schemas.LocateSchema, params)
        with self.uow as uow:
            c = self._visible(uow, data["id"])
            domain.require_write(self.caller, c)
            updated = domain.locate(c, data["latitude"], data["longitude"],
                                    source=data.get("source", "gps"),
                                    version=data.get("version"))
            uow.customers.save(updated, expected_version=c.version)
            uow.commit()
        self.dispatch("customer_moved", schemas.event(updated, accuracy_m=data.get("accuracy_m")))
        return {"id": updated.id, "version": updated.version,
                "location": schemas.present(updated, unmasked=False)["location"]}

    # --- analysis, import, export -------------------------------------------------------------
    @serves("customer.analysis", permission=ANALYSE, timeout_ms=30000,
            input_schema=json_schema(schemas.AnalysisSchema()))
    @translated
    def analyse_customers(self, params):
        """Age, gender and occupation mix of one's customers, by branch, region or manager (F6)."""
        data = schemas.load(schemas.AnalysisSchema, params)
        by = data.pop("by", "branch")
        scope = self._scope(ANALYSE)
        crit = domain.criteria(data)
        today = date.today()
        with self.uow.read() as uow:
            rows = uow.customers.analysis(by, crit, scope, today)
        groups = domain.summarise(rows)
        for g in groups:
            g["label"] = _label(by, g["group"])
        return {"by": by, "on": today.isoformat(), "total": sum(g["total"] for g in groups),
                "groups": groups}

    @serves("customer.import", permission=IMPORT, sensitivity=SIGNED, mutating=True,
            timeout_ms=30000, input_schema=json_schema(schemas.ImportSchema()))
    @translated
    def import_customers(self, params):
        """Import customers from CSV or XLSX: every refused row is reported; ``mode``
        all_or_nothing (default) stores nothing when a row is refused, valid_rows the rest."""
        data = schemas.load(schemas.ImportSchema, params)
        mode = data.get("mode", "all_or_nothing")
        try:
            content = base64.b64decode(data["content_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise Invalid("not base64", {"content_base64": ["is not base64"]}) from None
        rows = files.read_table(data["format"], content)
        errors: list[dict] = []
        good: list[tuple[int, domain.Customer]] = []
        seen: dict[str, int] = {}
        for n, row in enumerate(rows, start=2):  # spreadsheet row numbers: 1 is the header
            try:
                c = domain.new_customer(domain.row_values(row), caller=self.caller)
                domain.require_write(self.caller, c, IMPORT)
            except CustomerError as exc:
                errors.append({"row": n, "message": exc.message, "fields": exc.fields})
                continue
            if c.id_number in seen:
                errors.append({"row": n, "message": f"same ID number as row {seen[c.id_number]}",
                               "fields": {"id_number": [f"repeats row {seen[c.id_number]}"]}})
                continue
            seen[c.id_number] = n
            good.append((n, c))
        with self.uow as uow:
            taken = uow.customers.holders_of(c.id_number for _, c in good)
            stored: list[domain.Customer] = []
            for n, c in good:
                if c.id_number in taken:
                    errors.append({"row": n, "message": f"customer {taken[c.id_number]} already "
                                   "has this ID number", "fields": {"id_number": [
                                       f"already belongs to customer {taken[c.id_number]}"]}})
            keep = [c for _, c in good if c.id_number not in taken]
            if not errors or mode == "valid_rows":
                for i in range(0, len(keep), IMPORT_CHUNK):
                    stored += uow.customers.add_many(keep[i:i + IMPORT_CHUNK])
                uow.commit()
        for c in stored:
            self.dispatch("customer_created", schemas.event(c))
        if stored:
            self.audit.record("data_change", object=f"customer:import:{len(stored)}",
                              detail={"imported": len(stored), "refused": len(errors)})
        errors.sort(key=lambda e: e["row"])
        return {"mode": mode, "rows": len(rows), "stored": len(stored), "refused": len(errors),
                "stored_ids": [c.id for c in stored], "errors": errors}

    @serves("customer.export", permission=EXPORT, sensitivity=SEALED, timeout_ms=30000,
            input_schema=json_schema(schemas.ExportSchema()))
    @translated
    def export_customers(self, params):
        """Export the customers a search finds as CSV or XLSX (masked unless customer:pii)."""
        data = schemas.load(schemas.ExportSchema, params)
        fmt, limit = data.pop("format"), data.pop("limit", 5000)
        crit = domain.criteria(data)
        scope = self._scope(EXPORT)
        with self.uow.read() as uow:
            found = uow.customers.search(crit, scope, limit=limit + 1)
        truncated = len(found) > limit
        found = found[:limit]
        rows, unmasked = [], []
        for c in found:
            see = domain.sees_pii(self.caller, c)
            rows.append(schemas.flat(c, unmasked=see))
            if see:
                unmasked.append(c.id)
        if unmasked:
            self._audit_unmasked(unmasked)
        content = files.write_table(fmt, ("id", *domain.IMPORT_COLUMNS, "version"), rows)
        return {"format": fmt, "rows": len(rows), "truncated": truncated,
                "filename": f"customers-{date.today():%Y%m%d}.{fmt}",
                "content_base64": base64.b64encode(content).decode()}

    @serves("customer.dictionaries", permission=READ)
    @translated
    def customer_dictionaries(self, params):
        """The code lists a phone picks from: occupations, relationships, ID types …"""
        return dicts.as_lists()


def _label(by: str, group: Any) -> str | None:
    if group is None:
        return None
    if by in ("prefecture", "county"):
        _province, prefecture, county = dicts.region_names(str(group))
        return county if by == "county" else prefecture
    return str(group)
