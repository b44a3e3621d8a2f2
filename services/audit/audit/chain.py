"""The trail's use cases over a unit of work: append events, change the policy, verify.

Every writer — the ingest loop for events off the bus, ``audit.policy.set`` for its own
record — appends through ``append`` inside one transaction that first takes the chain lock
(``RecordRepository.lock_head``), so the chain stays one sequence whatever runs how many
instances.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from audit import domain
from audit.checkpoints import CheckpointLog
from audit.repository import raw_connect, stream_chain
from invoke_centre.kit.audit import audit_event


@dataclass
class Appended:
    stored: int = 0
    duplicates: int = 0
    dropped: int = 0          # optional kinds the policy does not keep
    head_seq: int = 0
    head_mac: str = ""
    policy_version: int = 0


class PolicyCache:
    """The policy in force, re-read only when its version changes (one small query a batch)."""

    def __init__(self) -> None:
        self.policy: domain.Policy | None = None

    def current(self, policies) -> domain.Policy:
        version = policies.current_version()
        if self.policy is None or self.policy.version != version:
            self.policy = policies.current()
        return self.policy


def append(uow, entries: Iterable[domain.Entry], *, key: bytes,
           policy: PolicyCache | domain.Policy | None = None) -> Appended:
    """Add the entries the policy keeps and the trail lacks (by ``event_id``), and commit."""
    entries = list(entries)
    head_seq, head_mac = uow.records.lock_head()
    if isinstance(policy, PolicyCache):
        policy = policy.current(uow.policies)
    elif policy is None:
        policy = uow.policies.current()
    known = uow.records.known_ids([e.event_id for e in entries])
    fresh, result = [], Appended(policy_version=policy.version)
    for e in entries:
        if e.event_id in known:
            result.duplicates += 1
            continue
        known.add(e.event_id)
        if policy.keeps(e):
            fresh.append(e)
        else:
            result.dropped += 1
    rows = domain.link(fresh, head_seq=head_seq, head_mac=head_mac, key=key,
                       received_at=domain.now_text())
    if rows:
        uow.records.add_all(rows)
        uow.records.set_head(rows[-1]["seq"], rows[-1]["mac"])
    uow.commit()
    result.stored = len(rows)
    result.head_seq = rows[-1]["seq"] if rows else head_seq
    result.head_mac = rows[-1]["mac"] if rows else head_mac.hex()
    return result


def set_policy(uow, *, rules: tuple[domain.Rule, ...], note: str, key: bytes,
               who: dict[str, Any], where: dict[str, Any],
               expected_version: int | None = None) -> tuple[domain.Policy, Appended]:
    """A new policy version and its ``audit_policy_change`` record, in one transaction.

    Returns the policy and the append result; raises ``VersionConflict`` when
    ``expected_version`` is not the version in force.
    """
    uow.records.lock_head()            # also serialises policy versions
    previous = uow.policies.current()
    if expected_version is not None and expected_version != previous.version:
        raise VersionConflict(previous.version)
    policy = domain.Policy(version=previous.version + 1, rules=rules,
                           set_by=who.get("user_id") or "", set_at=domain.now_text(),
                           note=note)
    uow.policies.add(policy)
    event = audit_event(
        "audit_policy_change", source="audit", who=who, where=where,
        operation=where.get("named_request") or "audit.policy.set",
        object_=f"audit_policy:{policy.version}",
        params={"rules": [r.as_dict() for r in rules], "note": note or None},
        detail={"version": policy.version, "previous_version": previous.version,
                "previous_rules": [r.as_dict() for r in previous.rules]})
    result = append(uow, [domain.parse_event(event)], key=key, policy=policy)
    return policy, result


class VersionConflict(Exception):
    def __init__(self, current: int) -> None:
        super().__init__(f"the policy in force is version {current}")
        self.current = current


def verify(engine, *, key: bytes, checkpoints: CheckpointLog | None,
           since_seq: int | None = None, clock: Callable[[], float] = time.perf_counter
           ) -> dict[str, Any]:
    """Re-walk the chain (from the start, or from the last checkpoint before ``since_seq``)
    against its MACs and the signed checkpoints. Opens a DBAPI connection of its own, so it
    may run in a native thread."""
    started = clock()
    good, bad = checkpoints.read() if checkpoints else ([], [])
    start_seq, start_mac = domain.start_point(good, since_seq)
    conn = raw_connect(engine)
    try:
        head_seq, rows = stream_chain(conn, engine.dialect.name, from_seq=start_seq)
        try:
            report = domain.verify_chain(rows, key=key, checkpoints=good, head_seq=head_seq,
                                         start_seq=start_seq, start_mac=start_mac,
                                         checkpoint_problems=bad)
        finally:
            rows.close()
    finally:
        conn.close()
    out = report.as_dict()
    out["took_ms"] = round((clock() - started) * 1000, 1)
    return out
