"""The tamper-evident audit trail: append-only, each record hashing the one before it.

Modelled on X-Road's message log. A record's hash is SHA-256 over the previous record's hash
and a canonical JSON form of its own fields (sorted keys, no whitespace, UTF-8), so editing,
deleting or reordering any record breaks the chain from that point on; :func:`verify_chain`
names the first record that does not match. The single ``audit_head`` row is locked by each
transaction that links events (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite write
transactions are already serialised), which keeps the chain linear under concurrent writers,
and remembers the last link so a deleted tail is noticed too. The links of a transaction are
made when it commits (``before_commit``): the head is locked once, only for the commit, and
the links reach the database in one INSERT (plain rows, no ORM objects), not one round trip
per link.

This module is also the core's default ``track_event`` plugin: the audit trail is a listener
of events like any other. It must never receive personal data or secrets; callers put
references and codes in ``details``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import event as orm_events
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .events import Event
from .hookspecs import hookimpl
from .models import AuditHead, AuditRecord

GENESIS_HASH = "0" * 64
HEAD_ID = 1
#: how :func:`append` writes ``recorded_at``: UTC, sortable as text
RECORDED_AT_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


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


#: ``session.info`` key of the events to link when the session's transaction commits
PENDING = "audit_pending"


def _locked_head(session: Session) -> tuple[int, str]:
    """The head's ``(last_seq, last_hash)``, its row locked by this transaction (made when
    missing). Plain SQL, no ORM object: the commit writes it back with one UPDATE."""
    table, connection = AuditHead.__table__, session.connection()
    row = connection.execute(select(table.c.last_seq, table.c.last_hash)
                             .where(table.c.id == HEAD_ID).with_for_update()).first()
    if row is None:
        connection.execute(table.insert(), {"id": HEAD_ID, "last_seq": 0,
                                            "last_hash": GENESIS_HASH})
        return 0, GENESIS_HASH
    return row.last_seq, row.last_hash


def append(session: Session, event: Event) -> None:
    """Add ``event`` to the chain when the caller's transaction commits.

    The link (its place in the chain, its time, its hash) is made at commit, by
    :func:`link_pending`: the head row is locked only for the commit itself. Locked at the
    first event, it was held through all the rest of the transaction's work, and every
    writer of every process waited on it in turn (a group commit's whole group).
    """
    session.info.setdefault(PENDING, []).append(Event(
        event.action, actor=event.actor, target=event.target, outcome=event.outcome,
        details=json.loads(canonical(event.details or {})),
        correlation_id=event.correlation_id))


def link_pending(session: Session) -> None:
    """Link the events :func:`append` kept for this transaction, in their order, under the
    head row's lock (``before_commit``: the lock is held only while the commit flushes)."""
    pending = session.info.pop(PENDING, None)
    if not pending:
        return
    last_seq, last_hash = _locked_head(session)
    recorded_at = as_recorded_at(datetime.now(UTC))
    seq, prev_hash, rows = last_seq, last_hash, []
    for event in pending:
        seq += 1
        fields = {"seq": seq, "recorded_at": recorded_at, "actor": event.actor,
                  "action": event.action, "target": event.target, "outcome": event.outcome,
                  "correlation_id": event.correlation_id, "details": event.details or {}}
        prev_hash = link_hash(prev_hash, fields)
        rows.append({**fields, "prev_hash": rows[-1]["hash"] if rows else last_hash,
                     "hash": prev_hash})
    # one INSERT of plain rows and one UPDATE of the head: no ORM object is needed after
    connection = session.connection()
    connection.execute(AuditRecord.__table__.insert(), rows)
    head = AuditHead.__table__
    connection.execute(head.update().where(head.c.id == HEAD_ID)
                       .values(last_seq=seq, last_hash=prev_hash))


def link_at_commit(session_factory) -> None:
    """Have every session of ``session_factory`` link its events when it commits."""
    orm_events.listen(session_factory, "before_commit", link_pending)
    # a rolled-back transaction's events are not linked by the next one of the session; a
    # savepoint's rollback is not the transaction's (``gateway.db.savepoint`` drops the
    # savepoint's own events and keeps its neighbours')
    orm_events.listen(session_factory, "after_soft_rollback", _forget_pending)


def _forget_pending(session: Session, previous_transaction) -> None:
    if previous_transaction.parent is None:
        session.info.pop(PENDING, None)


def as_recorded_at(moment: datetime) -> str:
    """``moment`` as ``recorded_at`` text, to compare with the column."""
    return moment.astimezone(UTC).strftime(RECORDED_AT_FORMAT)


def recorded_time(text: str) -> datetime | None:
    """``recorded_at`` as an aware datetime (None if unreadable)."""
    try:
        return datetime.strptime(text, RECORDED_AT_FORMAT).replace(tzinfo=UTC)
    except (TypeError, ValueError):
        return None


def first_seq_at(session: Session, moment: datetime) -> int:
    """The smallest ``seq`` from which every record was recorded at or after ``moment``.

    Records are appended one at a time under the head row's lock, so ``recorded_at`` grows
    with ``seq``: a lower-bound binary search over the primary key (``first(s)``, the time of
    the first record with ``seq >= s``, never decreases as ``s`` grows) finds a time's place
    in a few dozen indexed lookups instead of a scan of an unindexed text column. Gaps in
    ``seq`` (a deleted record) do not matter. Returns one past the last record when all are
    older.
    """
    wanted = as_recorded_at(moment)
    low, high = session.execute(select(func.min(AuditRecord.seq),
                                       func.max(AuditRecord.seq))).one()
    if low is None:
        return 1
    high += 1
    while low < high:
        middle = (low + high) // 2
        at = session.scalar(select(AuditRecord.recorded_at).where(AuditRecord.seq >= middle)
                            .order_by(AuditRecord.seq).limit(1))
        if at >= wanted:
            high = middle
        else:
            low = middle + 1
    return low


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None
    #: signed checkpoints the chain was checked against (``gateway.checkpoints``)
    checkpoints: int = 0
    #: the newest checkpointed record the chain still matches (0: none)
    anchored_seq: int = 0


def records(session: Session, batch: int = 1000, after: int = 0) -> Iterator[AuditRecord]:
    """Every record after ``after`` in ``seq`` order, read in batches (the chain may be
    long)."""
    last = after
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


def verify_chain(session: Session, anchors: Mapping[int, str] | None = None) -> VerifyResult:
    """Walk the whole chain; stop at the first record that does not match.

    ``anchors`` maps a record's ``seq`` to the hash a signed checkpoint holds for it (see
    ``gateway.checkpoints``): the chain must reach each one and hold that hash there. Someone
    who can write to the database can recompute every hash after an edit, or cut the tail and
    move the head back, and the chain alone still verifies; the anchors catch both. When an
    anchor does not match, the first record that cannot be trusted is the one after the last
    anchor that still does.
    """
    anchors = anchors or {}
    prev_hash, expected_seq, anchored = GENESIS_HASH, 1, 0

    def broken(first_bad_seq, reason):
        return VerifyResult(False, expected_seq - 1, first_bad_seq, reason, len(anchors),
                            anchored)

    for record in records(session):
        if record.seq != expected_seq:
            return broken(expected_seq, f"record {expected_seq} is missing "
                                        f"(next is {record.seq})")
        if record.prev_hash != prev_hash:
            return broken(record.seq, "does not link to the previous record")
        if link_hash(prev_hash, record_fields(record)) != record.hash:
            return broken(record.seq, "content does not match its hash (edited)")
        if record.seq in anchors:
            if anchors[record.seq] != record.hash:
                since = (f"last good checkpoint: record {anchored}" if anchored
                         else "no earlier checkpoint matches")
                return broken(anchored + 1, f"record {record.seq} does not match the "
                                            f"checkpoint signed for it: the chain was "
                                            f"rewritten after record {anchored} ({since})")
            anchored = record.seq
        prev_hash, expected_seq = record.hash, expected_seq + 1
    checked = expected_seq - 1
    beyond = max(anchors, default=0)
    if beyond > checked:
        return broken(checked + 1, f"records after {checked} were removed: a checkpoint "
                                   f"covers record {beyond}")
    head = session.get(AuditHead, HEAD_ID)
    if head is not None and (head.last_seq != checked or head.last_hash != prev_hash):
        return broken(checked + 1, f"records after {checked} were removed "
                                   f"(the head says {head.last_seq})")
    return VerifyResult(True, checked, checkpoints=len(anchors), anchored_seq=anchored)


@hookimpl
def track_event(event, session):
    append(session, event)
