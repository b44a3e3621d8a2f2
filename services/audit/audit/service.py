"""The audit service (F10): named requests over the tamper-evident trail.

Events come in over the bus (``audit.dependencies.Trail`` runs the ingest loop); these
entrypoints let auditors and administrators search, read, export and verify the trail and
let administrators choose what is logged beyond the always-audited kinds.

Run: ``PYTHONPATH=services/audit nameko run --config services/audit/config.yaml audit.service``
"""

from __future__ import annotations

import csv
import io
from logging import getLogger
from pathlib import Path

from audit import chain, domain, schemas
from audit.dependencies import Trail
from audit.repository import REPOSITORIES
from invoke_centre.audit_events import who_of
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

_log = getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
READ = "audit:read"
ADMIN = "audit:admin"


class AuditService:
    name = "audit"
    member = Member(version="1.0.0")
    caller = Caller()
    uow = Database(migrations=MIGRATIONS, repositories=REPOSITORIES)
    trail = Trail()
    audit = AuditTrail()

    # --- helpers ----------------------------------------------------------------------
    def _require(self, permission: str) -> None:
        """Re-check the caller (the centre did too); a refusal is an over-privilege event."""
        c = self.caller
        if c.may(permission) or (permission == READ and c.may(ADMIN)):
            return
        self._alarm("over_privilege", outcome="refused", detail={"needs": permission})
        raise Forbidden(f"{c.named_request or 'this request'} needs the permission "
                        f"{permission}: auditors and administrators only")

    def _alarm(self, type_: str, **kw) -> None:
        """An audit event of the service's own; a broker problem must not change the answer."""
        try:
            self.audit.record(type_, **kw)
        except Exception:  # noqa: BLE001 - logged in full instead
            _log.exception("audit event %s not published: %s", type_, kw)

    def _where(self) -> dict:
        c = self.caller
        return {"request_id": c.request_id, "named_request": c.named_request,
                "service": self.member.service, "instance": self.member.instance}

    def _page(self, query: dict) -> tuple[list[dict], str | None]:
        limit = query["limit"]
        descending = query["order"] == "desc"
        with self.uow as uow:
            rows = uow.records.search(
                user_id=query.get("user_id"), types=query.get("types", ()),
                since=query.get("since"), until=query.get("until"),
                request_id=query.get("request_id"), named_request=query.get("named_request"),
                outcome=query.get("outcome"), source=query.get("source"),
                object_=query.get("object_"),
                after=int(query["cursor"]) if query.get("cursor") else None,
                descending=descending, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (str(rows[-1]["seq"]) if more and rows else None)

    # --- named requests ---------------------------------------------------------------
    @serves("audit.search", permission=READ, input_schema=schemas.SEARCH_INPUT,
            timeout_ms=10000)
    def search_records(self, params):
        """Search the audit trail (by user, type, time, request, outcome), a page at a time."""
        self._require(READ)
        query = schemas.load(schemas.SearchSchema(), params)
        rows, next_cursor = self._page(query)
        return {"items": [domain.record_view(r) for r in rows], "next_cursor": next_cursor,
                "limit": query["limit"], "order": query["order"]}

    @serves("audit.get", permission=READ, input_schema=schemas.GET_INPUT)
    def get_record(self, params):
        """One audit record by seq or event_id."""
        self._require(READ)
        data = schemas.load(schemas.GetSchema(), params)
        with self.uow as uow:
            row = uow.records.get(seq=data.get("seq"), event_id=data.get("event_id"))
        if row is None:
            which = f"seq {data['seq']}" if "seq" in data else f"event_id {data['event_id']}"
            raise NotFound(f"no audit record with {which}")
        return domain.record_view(row)

    @serves("audit.export", permission=READ, input_schema=schemas.EXPORT_INPUT,
            timeout_ms=30000)
    def export_records(self, params):
        """Export audit records as CSV (the search filters; next_cursor for the rest)."""
        self._require(READ)
        query = schemas.load(schemas.ExportSchema(), params)
        rows, next_cursor = self._page(query)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(domain.CSV_COLUMNS)
        for r in rows:
            writer.writerow([domain.csv_cell(r[c]) for c in domain.CSV_COLUMNS])
        return {"content_type": "text/csv; charset=utf-8",
                "filename": f"audit-{domain.now_text().replace(':', '')}.csv",
                "rows": len(rows), "next_cursor": next_cursor, "csv": out.getvalue()}

    @serves("audit.verify", permission=READ, input_schema=schemas.VERIFY_INPUT,
            timeout_ms=30000)
    def verify_trail(self, params):
        """Re-walk the hash chain and the signed checkpoints; report the first bad record."""
        self._require(READ)
        data = schemas.load(schemas.VerifySchema(), params)
        report = self.trail.verify(data.get("since_seq"))
        if not report["ok"]:
            self._alarm("abnormal", outcome="failure", operation="audit.verify",
                        detail={"first_bad": report["first_bad"]})
        return report

    @serves("audit.status", permission=READ, input_schema=schemas.EMPTY_INPUT)
    def get_status(self, params):
        """Records, chain head, policy version and this instance's ingest figures."""
        self._require(READ)
        schemas.load(schemas.EmptySchema(), params)
        with self.uow as uow:
            head_seq, head_mac = uow.records.head()
            count = uow.records.count()
            version = uow.policies.current_version()
        return {"records": count, "head_seq": head_seq, "head_mac": head_mac,
                "policy_version": version, "instance": self.member.instance,
                "ingest": self.trail.ingest_stats()}

    @serves("audit.policy.get", permission=READ, input_schema=schemas.EMPTY_INPUT)
    def get_policy(self, params):
        """What is logged beyond the always-audited kinds."""
        self._require(READ)
        schemas.load(schemas.EmptySchema(), params)
        with self.uow as uow:
            return uow.policies.current().as_dict()

    @serves("audit.policy.set", permission=ADMIN, mutating=True,
            input_schema=schemas.POLICY_SET_INPUT)
    def set_policy(self, params):
        """Choose which users, operations and sensitive data accesses are logged."""
        self._require(ADMIN)
        data = schemas.load(schemas.PolicySetSchema(), params)
        try:
            rules = domain.parse_rules(data["rules"])
        except domain.PolicyError as err:
            raise ValidationError("the audit policy does not make sense", err.fields)
        try:
            with self.uow as uow:
                policy, appended = chain.set_policy(
                    uow, rules=rules, note=data["note"], key=self.trail.key,
                    who=who_of(self.caller), where=self._where(),
                    expected_version=data.get("expected_version"))
        except chain.VersionConflict as exc:
            raise Conflict(f"the policy changed meanwhile: version {exc.current} is in force",
                           {"expected_version": [f"is {exc.current} now"]})
        self.trail.appended(appended)
        _log.info("audit policy version %d set by %s", policy.version, policy.set_by)
        return {**policy.as_dict(), "record_seq": appended.head_seq}
