"""The tamper-evident audit trail: append-only, each record hashing the one before it.

Modelled on X-Road's message log. A record's hash is SHA-256 over the previous record's hash
and a canonical JSON form of its own fields (sorted keys, no whitespace, UTF-8), so editing,
deleting or reordering any record breaks the chain from that point on; :func:`verify_chain`
names the first record that does not match. The single ``audit_head`` row is locked by each
append (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite write transactions are already
serialised), which keeps the chain linear under concurrent writers, and remembers the last
link so a deleted tail is noticed too. The head is read and locked once per transaction:
further appends in the same transaction reuse it, and their rows reach the database with the
transaction's next flush (batched), not one round trip per link.

This module is also the core's default ``track_event`` plugin: the audit trail is a listener
of events like any other. It must never receive personal data or secrets; callers put
references and codes in ``details``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .events import Event
from .hookspecs import hookimpl
from .models import AuditHead, AuditRecord

GENESIS_HASH = "0" * 64
HEAD_ID = 1


def canonical(fields: dict) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode()


def record_fields(record: AuditRecord) -> dict:
    return {
        "seq": record.seq,
        "recorded_at": record.recorded_at,
        "actor": record.actor,
        "action": record.action,
        "target": record.target,
        "outcome": record.outcome,
        "correlation_id": record.correlation_id,
        "details": record.details or {},
    }


def link_hash(prev_hash: str, fields: dict) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(fields)).hexdigest()


def _locked_head(session: Session) -> AuditHead:
    """The head row, locked by this transaction (read and locked once per transaction)."""
    transaction = session.get_transaction()
    held = session.info.get("audit_head")
    if held is not None and held[0] is transaction:
        return held[1]
    head = session.execute(
        select(AuditHead).where(AuditHead.id == HEAD_ID).with_for_update()
    ).scalar_one_or_none()
    if head is None:
        head = AuditHead(id=HEAD_ID, last_seq=0, last_hash=GENESIS_HASH)
        session.add(head)
        session.flush()
    session.info["audit_head"] = (transaction, head)
    return head


def append(session: Session, event: Event) -> AuditRecord:
    """Add ``event`` as the next link, in the caller's transaction."""
    head = _locked_head(session)
    record = AuditRecord(
        seq=head.last_seq + 1,
        recorded_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        actor=event.actor,
        action=event.action,
        target=event.target,
        outcome=event.outcome,
        correlation_id=event.correlation_id,
        details=json.loads(canonical(event.details or {})),
        prev_hash=head.last_hash,
    )
    record.hash = link_hash(record.prev_hash, record_fields(record))
    session.add(record)
    head.last_seq = record.seq
    head.last_hash = record.hash
    return record


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None


def _records(session: Session, batch: int = 1000) -> Iterator[AuditRecord]:
    last = 0
    while True:
        rows = session.execute(
            select(AuditRecord).where(AuditRecord.seq > last).order_by(AuditRecord.seq)
            .limit(batch)
        ).scalars().all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq
        session.expunge_all()


def verify_chain(session: Session) -> VerifyResult:
    """Walk the whole chain; stop at the first record that does not match."""
    prev_hash, expected_seq, checked = GENESIS_HASH, 1, 0
    for record in _records(session):
        if record.seq != expected_seq:
            return VerifyResult(False, checked, expected_seq,
                                f"record {expected_seq} is missing (next is {record.seq})")
        if record.prev_hash != prev_hash:
            return VerifyResult(False, checked, record.seq,
                                "does not link to the previous record")
        if link_hash(prev_hash, record_fields(record)) != record.hash:
            return VerifyResult(False, checked, record.seq,
                                "content does not match its hash (edited)")
        prev_hash, expected_seq, checked = record.hash, expected_seq + 1, checked + 1
    head = session.get(AuditHead, HEAD_ID)
    if head is not None and (head.last_seq != checked or head.last_hash != prev_hash):
        return VerifyResult(False, checked, checked + 1,
                            f"records after {checked} were removed "
                            f"(the head says {head.last_seq})")
    return VerifyResult(True, checked)


@hookimpl
def track_event(event, session):
    append(session, event)
