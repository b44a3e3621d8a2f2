"""The audit trail's rules, free of nameko and SQLAlchemy.

- ``parse_event``: an audit event off the bus (``invoke_centre.kit.audit.audit_event``'s shape)
  checked and normalised into an ``Entry``; personal data in ``params`` masked again, whoever
  sent it.
- The chain: record *i* is ``canonical(record_i)`` — its columns joined by ``SEP`` — and
  ``mac_i = HMAC-SHA256(key, mac_{i-1} || canonical_i)`` with ``mac_0`` 32 zero bytes.
  ``link`` gives new records their ``seq`` and ``mac``; ``verify_chain`` walks stored ones.
- The policy: which events of the optional kinds are kept (``Policy.keeps``).

Why the canonical form is a plain join: a verifier over a million records must be quick, and the
database can build the same string itself (``a || sep || b …``), so it sends one column per
record instead of twenty. No stored value contains ``SEP`` or any other control character
(``clean_text`` escapes them), which makes the join unambiguous.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

from invoke_centre import wire
from invoke_centre.kit.privacy import mask_params

SEP = "\x1f"
GENESIS = bytes(32)
MAX_EVENT_BYTES = 64 * 1024
MAX_KEY_TEXT = 200        # user, request id, named request, source: indexed search keys
MAX_TEXT = 1000
OPTIONAL_TYPES = tuple(t for t in wire.AUDIT_TYPES if t not in wire.ALWAYS_AUDITED)

# The columns of a record, in chain order; every one is text, "" when absent.
CHAIN_COLUMNS = ("seq", "event_id", "type", "at", "received_at", "source", "user_id", "roles",
                 "branch", "terminal_id", "request_id", "named_request", "service", "instance",
                 "operation", "object", "params", "outcome", "detail")

_EVENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class InvalidEvent(ValueError):
    """A message that is not an audit event this service can keep (it goes to the DLQ)."""


class PolicyError(ValueError):
    """An audit policy that does not make sense; ``fields`` says where."""

    def __init__(self, fields: dict[str, list[str]]):
        super().__init__("invalid audit policy")
        self.fields = fields


# --- time ---------------------------------------------------------------------------------

def utc_text(moment: datetime) -> str:
    """The one text form of an instant: ``2026-11-27T08:26:50.123Z`` (sorts as it ticks)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def now_text() -> str:
    return utc_text(datetime.now(UTC))


def parse_instant(value: Any) -> str:
    """An ISO 8601 instant with a zone, as ``utc_text``; ValueError with a reason otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be an ISO 8601 date-time with a zone, e.g. "
                         "2026-11-27T08:00:00Z or 2026-11-27T16:00:00+08:00")
    text = value.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO 8601 date-time, e.g. 2026-11-27T08:00:00Z")
    if moment.tzinfo is None or len(text) <= 10:
        raise ValueError(f"{value!r} has no time zone: add one, e.g. {text[:10]}T00:00:00Z "
                         f"or {text[:10]}T00:00:00+08:00")
    return utc_text(moment)


# --- events --------------------------------------------------------------------------------

def clean_text(value: Any, name: str, limit: int = MAX_TEXT) -> str:
    """A scalar as stored text: "" for None, control characters and lone surrogates escaped."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidEvent(f"{name} must be a string")
    text = str(value)
    if _CONTROL.search(text):
        text = _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > limit:
        raise InvalidEvent(f"{name} is longer than {limit} characters")
    return text


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces; ASCII-escaped only when it must be."""
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidEvent(f"not plain JSON: {exc}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text


@dataclass(frozen=True)
class Entry:
    """One audit event, checked: every column but ``seq``, ``received_at`` and ``mac``."""

    event_id: str
    type: str
    at: str
    source: str
    user_id: str = ""
    roles: str = ""
    branch: str = ""
    terminal_id: str = ""
    request_id: str = ""
    named_request: str = ""
    service: str = ""
    instance: str = ""
    operation: str = ""
    object: str = ""
    params: str = "null"
    outcome: str = "success"
    detail: str = "{}"
    fields: tuple[str, ...] = ()   # detail.fields of a sensitive read, for the policy

    @property
    def role_list(self) -> tuple[str, ...]:
        return tuple(r for r in self.roles.split(",") if r)


def _dict(body: Mapping, key: str) -> Mapping:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidEvent(f"{key} must be an object")
    return value


def parse_event(body: Any) -> Entry:
    """Check and normalise one decoded event; InvalidEvent says what is wrong with it."""
    if not isinstance(body, Mapping):
        raise InvalidEvent("an audit event is a JSON object")
    event_id = body.get("event_id")
    if not isinstance(event_id, str) or not _EVENT_ID.match(event_id):
        raise InvalidEvent("event_id must be 1-128 letters, digits or ._:-")
    type_ = body.get("type")
    if type_ not in wire.AUDIT_TYPES:
        raise InvalidEvent(f"unknown type {type_!r}; one of {', '.join(wire.AUDIT_TYPES)}")
    outcome = body.get("outcome")
    if outcome not in wire.AUDIT_OUTCOMES:
        raise InvalidEvent(f"unknown outcome {outcome!r}; one of "
                           f"{', '.join(wire.AUDIT_OUTCOMES)}")
    try:
        at = parse_instant(body.get("at"))
    except ValueError as exc:
        raise InvalidEvent(f"at {exc}")
    source = clean_text(body.get("source"), "source", MAX_KEY_TEXT)
    if not source:
        raise InvalidEvent("source is required")
    who, where = _dict(body, "who"), _dict(body, "where")
    roles = who.get("roles") or ()
    if isinstance(roles, str):
        roles = roles.split(",")
    if not isinstance(roles, (list, tuple)):
        raise InvalidEvent("who.roles must be a list of strings")
    role_text = ",".join(r for r in (clean_text(r, "who.roles", 100).replace(",", " ")
                                     for r in roles) if r)
    detail = mask_params(dict(_dict(body, "detail")))
    fields = detail.get("fields") or ()
    fields = tuple(str(f) for f in fields) if isinstance(fields, (list, tuple)) else ()
    params = body.get("params")
    return Entry(
        event_id=event_id,
        type=type_,
        at=at,
        source=source,
        user_id=clean_text(who.get("user_id"), "who.user_id", MAX_KEY_TEXT),
        roles=clean_text(role_text, "who.roles"),
        branch=clean_text(who.get("branch"), "who.branch", MAX_KEY_TEXT),
        terminal_id=clean_text(who.get("terminal_id"), "who.terminal_id", MAX_KEY_TEXT),
        request_id=clean_text(where.get("request_id"), "where.request_id", MAX_KEY_TEXT),
        named_request=clean_text(where.get("named_request"), "where.named_request",
                                 MAX_KEY_TEXT),
        service=clean_text(where.get("service"), "where.service", MAX_KEY_TEXT),
        instance=clean_text(where.get("instance"), "where.instance", MAX_KEY_TEXT),
        operation=clean_text(body.get("operation"), "operation", MAX_KEY_TEXT),
        object=clean_text(body.get("object"), "object"),
        params=canonical_json(mask_params(params) if params is not None else None),
        outcome=outcome,
        detail=canonical_json(detail),
        fields=fields,
    )


def decode_event(raw: bytes) -> Entry:
    """``parse_event`` of a message body (bytes of UTF-8 JSON)."""
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent(f"larger than {MAX_EVENT_BYTES} bytes")
    try:
        body = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidEvent(f"not JSON: {exc}")
    return parse_event(body)


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


# --- the chain ------------------------------------------------------------------------------

def canonical(row: Mapping[str, Any]) -> str:
    """What the MAC of a record covers: every column, in chain order, joined by SEP."""
    return SEP.join([str(row["seq"])] + [row[c] for c in CHAIN_COLUMNS[1:]])


def next_mac(key: bytes, prev: bytes, canon: str) -> bytes:
    return hmac.digest(key, prev + canon.encode("utf-8"), "sha256")


def link(entries: Iterable[Entry], *, head_seq: int, head_mac: bytes, key: bytes,
         received_at: str) -> list[dict[str, Any]]:
    """New records following the head ``(head_seq, head_mac)``: rows with ``seq`` and ``mac``."""
    rows, prev, seq = [], head_mac, head_seq
    for e in entries:
        seq += 1
        row = {"seq": seq, "event_id": e.event_id, "type": e.type, "at": e.at,
               "received_at": received_at, "source": e.source, "user_id": e.user_id,
               "roles": e.roles, "branch": e.branch, "terminal_id": e.terminal_id,
               "request_id": e.request_id, "named_request": e.named_request,
               "service": e.service, "instance": e.instance, "operation": e.operation,
               "object": e.object, "params": e.params, "outcome": e.outcome,
               "detail": e.detail}
        prev = next_mac(key, prev, canonical(row))
        row["mac"] = prev.hex()
        rows.append(row)
    return rows


@dataclass(frozen=True)
class Checkpoint:
    """A signed ``(seq, mac)`` kept apart from the records."""

    seq: int
    mac: str
    at: str


@dataclass
class Problem:
    seq: int
    kind: str   # missing | altered | rewritten | truncated | bad_checkpoint
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind, "message": self.message}


@dataclass
class ChainReport:
    ok: bool
    records: int
    from_seq: int
    last_seq: int
    head_mac: str
    checkpoints: int
    last_checkpoint: int | None
    first_bad: Problem | None = None
    checkpoint_problems: list[Problem] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "records": self.records, "from_seq": self.from_seq,
                "last_seq": self.last_seq, "head_mac": self.head_mac,
                "checkpoints": self.checkpoints, "last_checkpoint": self.last_checkpoint,
                "first_bad": self.first_bad.as_dict() if self.first_bad else None,
                "checkpoint_problems": [p.as_dict() for p in self.checkpoint_problems]}


def start_point(checkpoints: Iterable[Checkpoint], since_seq: int | None) -> tuple[int, bytes]:
    """Where a walk starts: seq 1 from genesis, or just after the last checkpoint before
    ``since_seq`` (its signed MAC is trusted instead of re-walking what precedes it)."""
    if not since_seq or since_seq <= 1:
        return 1, GENESIS
    before = [c for c in checkpoints if c.seq < since_seq]
    if not before:
        return 1, GENESIS
    best = max(before, key=lambda c: c.seq)
    return best.seq + 1, bytes.fromhex(best.mac)


def verify_chain(rows: Iterable[tuple[int, str | None, str | None]], *, key: bytes,
                 checkpoints: Iterable[Checkpoint] = (), head_seq: int | None = None,
                 start_seq: int = 1, start_mac: bytes = GENESIS,
                 checkpoint_problems: Iterable[Problem] = ()) -> ChainReport:
    """Walk ``(seq, canonical, mac)`` rows in seq order; stop at the first bad record.

    Edits, insertions and reorders break the MAC of the first record they touch ("altered");
    a deletion leaves a gap ("missing"); a chain recomputed with the key no longer matches a
    signed checkpoint ("rewritten"); a truncation leaves a checkpoint, or the head, past the
    last record ("truncated"): reported at the first seq that is gone.
    """
    cps = sorted(checkpoints, key=lambda c: c.seq)
    by_seq: dict[int, str] = {}
    for c in cps:
        by_seq.setdefault(c.seq, c.mac)
    expected, prev, count = start_seq, start_mac, 0
    digest, hexmac = hmac.digest, bytes.hex
    first_bad: Problem | None = None
    last_prev_cp = start_seq - 1
    for seq, canon, mac in rows:
        if seq != expected:
            if seq > expected:
                first_bad = Problem(expected, "missing",
                                    f"records {expected}..{seq - 1} are missing (deleted)"
                                    if seq - 1 > expected else
                                    f"record {expected} is missing (deleted)")
            else:
                first_bad = Problem(seq, "altered", f"record {seq} is out of order")
            break
        if canon is None or mac is None:
            first_bad = Problem(seq, "altered", f"record {seq} has an empty column")
            break
        computed = digest(key, prev + canon.encode("utf-8"), "sha256")
        if hexmac(computed) != mac:
            first_bad = Problem(seq, "altered",
                                f"record {seq} does not match the chain: it was edited, "
                                "inserted or moved")
            break
        if seq in by_seq:
            if by_seq[seq] != mac:
                first_bad = Problem(last_prev_cp + 1, "rewritten",
                                    f"the chain between records {last_prev_cp + 1} and {seq} "
                                    f"was recomputed: record {seq} differs from its signed "
                                    "checkpoint")
                break
            last_prev_cp = seq
        prev, expected, count = computed, seq + 1, count + 1
    last_seq = expected - 1
    if first_bad is None:
        ends = [c.seq for c in cps] + ([head_seq] if head_seq else [])
        if ends and max(ends) > last_seq:
            end = max(ends)
            first_bad = Problem(last_seq + 1, "truncated",
                                f"records {last_seq + 1}..{end} are gone: the trail ends at "
                                f"{last_seq} but was signed or recorded up to {end}")
    problems = list(checkpoint_problems)
    if first_bad is None and problems:
        first_bad = problems[0]
    return ChainReport(ok=first_bad is None, records=count, from_seq=start_seq,
                       last_seq=last_seq, head_mac=prev.hex(), checkpoints=len(cps),
                       last_checkpoint=cps[-1].seq if cps else None, first_bad=first_bad,
                       checkpoint_problems=problems)


# --- the policy ---------------------------------------------------------------------------

RULE_KEYS = ("types", "users", "roles", "branches", "operations", "objects", "fields")
DEFAULT_RULES: tuple[dict[str, list[str]], ...] = ({"types": ["sensitive_read", "data_change"]},)


@dataclass(frozen=True)
class Rule:
    """Keep an optional event when every key given matches it (any of the values of a key).

    ``types`` exact; ``users``, ``operations`` (the operation or the named request) and
    ``objects`` glob patterns (``customer.*``, ``customer:*``); ``roles`` exact; ``branches``
    branch subtrees (a prefix, like grants); ``fields`` the personal-data fields a sensitive
    read returned unmasked.
    """

    types: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    branches: tuple[str, ...] = ()
    operations: tuple[str, ...] = ()
    objects: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()

    def matches(self, e: Entry) -> bool:
        if self.types and e.type not in self.types:
            return False
        if self.users and not any(fnmatchcase(e.user_id, p) for p in self.users):
            return False
        if self.roles and not set(self.roles) & set(e.role_list):
            return False
        if self.branches and not (e.branch and any(e.branch.startswith(b)
                                                   for b in self.branches)):
            return False
        if self.operations and not any(fnmatchcase(op, p) for p in self.operations
                                       for op in (e.operation, e.named_request) if op):
            return False
        if self.objects and not any(fnmatchcase(e.object, p) for p in self.objects):
            return False
        return not (self.fields and not set(self.fields) & set(e.fields))

    def as_dict(self) -> dict[str, list[str]]:
        return {k: list(getattr(self, k)) for k in RULE_KEYS if getattr(self, k)}


@dataclass(frozen=True)
class Policy:
    """What is kept beyond the always-audited kinds; ``version`` 0 is the built-in default."""

    version: int
    rules: tuple[Rule, ...]
    set_by: str = ""
    set_at: str = ""
    note: str = ""

    def keeps(self, e: Entry) -> bool:
        if e.type in wire.ALWAYS_AUDITED:
            return True
        return any(r.matches(e) for r in self.rules)

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "rules": [r.as_dict() for r in self.rules],
                "set_by": self.set_by or None, "set_at": self.set_at or None,
                "note": self.note or None, "always_audited": list(wire.ALWAYS_AUDITED),
                "optional_types": list(OPTIONAL_TYPES)}


def parse_rules(raw: Any) -> tuple[Rule, ...]:
    """Rules from their JSON form; PolicyError with a message per offending field."""
    fields: dict[str, list[str]] = {}
    if not isinstance(raw, list):
        raise PolicyError({"rules": ["must be a list of rules"]})
    if len(raw) > 100:
        raise PolicyError({"rules": ["at most 100 rules"]})
    rules = []
    for i, item in enumerate(raw):
        where = f"rules.{i}"
        if not isinstance(item, dict):
            fields.setdefault(where, []).append("must be an object")
            continue
        unknown = sorted(set(item) - set(RULE_KEYS))
        if unknown:
            fields.setdefault(where, []).append(
                f"unknown keys {', '.join(unknown)}; a rule has {', '.join(RULE_KEYS)}")
        given = {k: item[k] for k in RULE_KEYS if item.get(k) not in (None, [])}
        if not given and not unknown:
            fields.setdefault(where, []).append(
                "an empty rule would keep every event: name types, users, operations …")
        values: dict[str, tuple[str, ...]] = {}
        for k, v in given.items():
            if not isinstance(v, list) or not all(isinstance(s, str) and 0 < len(s) <= 200
                                                  for s in v) or len(v) > 200:
                fields.setdefault(f"{where}.{k}", []).append(
                    "must be a list of up to 200 non-empty strings")
                continue
            if k == "types":
                bad = [t for t in v if t not in wire.AUDIT_TYPES]
                if bad:
                    fields.setdefault(f"{where}.types", []).append(
                        f"unknown types {', '.join(bad)}; optional types are "
                        f"{', '.join(OPTIONAL_TYPES)} ({', '.join(wire.ALWAYS_AUDITED)} are "
                        "always kept)")
                    continue
            values[k] = tuple(dict.fromkeys(v))
        rules.append(Rule(**values))
    if fields:
        raise PolicyError(fields)
    return tuple(rules)


def default_policy() -> Policy:
    return Policy(version=0, rules=parse_rules([dict(r) for r in DEFAULT_RULES]))


# --- records as answers -------------------------------------------------------------------

def record_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored record in the event's own shape (who / where), for answers and exports."""
    def none(v: str) -> str | None:
        return v or None

    return {
        "seq": row["seq"],
        "event_id": row["event_id"],
        "type": row["type"],
        "at": row["at"],
        "received_at": row["received_at"],
        "source": row["source"],
        "who": {"user_id": none(row["user_id"]),
                "roles": [r for r in row["roles"].split(",") if r],
                "branch": none(row["branch"]), "terminal_id": none(row["terminal_id"])},
        "where": {"request_id": none(row["request_id"]),
                  "named_request": none(row["named_request"]),
                  "service": none(row["service"]), "instance": none(row["instance"])},
        "operation": none(row["operation"]),
        "object": none(row["object"]),
        "params": json.loads(row["params"]) if row["params"] else None,
        "outcome": row["outcome"],
        "detail": json.loads(row["detail"]) if row["detail"] else {},
        "mac": row["mac"],
    }


CSV_COLUMNS = ("seq", "event_id", "type", "at", "received_at", "source", "user_id", "roles",
               "branch", "terminal_id", "request_id", "named_request", "service", "instance",
               "operation", "object", "outcome", "params", "detail", "mac")


def csv_cell(value: Any) -> str:
    """A cell a spreadsheet shows as text: a leading = + - @ would be read as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
