"""Searching the audit trail: filters, pages by ``seq`` (keyset) and exports in chain order.

The trail only grows and is read newest first, so pages are cut by ``seq`` (``WHERE seq <
cursor ORDER BY seq DESC LIMIT n``), never by ``OFFSET``, which would re-read every record
before the page. A date range becomes a range of ``seq`` too: records are appended one at a
time under the head row's lock, so ``recorded_at`` grows with ``seq``, and the bounds are
found by a binary search over the primary key (``gateway.audit.first_seq_at``) instead of
a scan of an unindexed text column. The ``recorded_at`` condition is still applied inside that
range, so the answer is exact even if a clock stepped back for a moment.

Nothing here writes; the console view audits searches that leave the building (exports).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import tzinfo as TimeZone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..audit import as_recorded_at, first_seq_at
from ..models import AuditRecord
from .i18n import N_

PAGE_SIZE = 50
EXPORT_BATCH = 500
EXPORT_COLUMNS = ("seq", "recorded_at", "actor", "action", "target", "outcome",
                  "correlation_id", "details", "prev_hash", "hash")
TEXT_FILTERS = ("actor", "action", "target", "outcome", "correlation_id")
#: filters that accept a trailing ``*`` for "starts with"
PREFIX_FILTERS = ("actor", "action", "target")
MAX_FILTER_LENGTH = 128


def day_start(day: date, zone: TimeZone) -> datetime:
    """Midnight of ``day`` in ``zone`` (the region's), in UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True)
class AuditFilter:
    """What the audit page was asked for; empty fields do not filter. Dates are whole days
    in ``zone``, the region's."""

    actor: str = ""
    action: str = ""
    target: str = ""
    outcome: str = ""
    correlation_id: str = ""
    date_from: date | None = None
    date_to: date | None = None
    zone: TimeZone = field(default=UTC, repr=False)

    @classmethod
    def from_args(cls, args, zone: TimeZone = UTC) -> tuple[AuditFilter, dict[str, str]]:
        """Read the query string. :return: the filter and, per field, why a value was not
        used (an unreadable date is dropped rather than refused, and said so)."""
        values, problems = {}, {}
        for name in TEXT_FILTERS:
            value = (args.get(name) or "").strip()
            if len(value) > MAX_FILTER_LENGTH:
                problems[name] = N_("Too long.")
                value = ""
            values[name] = value
        for name in ("date_from", "date_to"):
            raw = (args.get(name) or "").strip()
            if raw:
                try:
                    values[name] = date.fromisoformat(raw)
                except ValueError:
                    problems[name] = N_("Not a date (YYYY-MM-DD).")
        return cls(**values, zone=zone), problems

    def query_args(self) -> dict[str, str]:
        """The filter as query-string arguments, for links (pages, exports)."""
        out = {}
        for name in (*TEXT_FILTERS, "date_from", "date_to"):
            value = getattr(self, name)
            if value:
                out[name] = value.isoformat() if isinstance(value, date) else value
        return out

    def describe(self) -> dict[str, str]:
        """For the audit record of an export: what was asked, never the records."""
        return self.query_args()

    def conditions(self, session: Session) -> list:
        conditions = []
        for name in TEXT_FILTERS:
            value = getattr(self, name)
            if not value:
                continue
            column = getattr(AuditRecord, name)
            if name in PREFIX_FILTERS and value.endswith("*"):
                conditions.append(column.startswith(value.rstrip("*"), autoescape=True))
            else:
                conditions.append(column == value)
        if self.date_from:
            start = day_start(self.date_from, self.zone)
            conditions += [AuditRecord.seq >= first_seq_at(session, start),
                           AuditRecord.recorded_at >= as_recorded_at(start)]
        if self.date_to:
            end = day_start(self.date_to + timedelta(days=1), self.zone)
            conditions += [AuditRecord.seq < first_seq_at(session, end),
                           AuditRecord.recorded_at < as_recorded_at(end)]
        return conditions


@dataclass
class Page:
    records: list[AuditRecord]
    #: cursor for the next older page (``before``), None on the last page
    older: int | None
    #: cursor for the next newer page (``after``), None on the first page
    newer: int | None


def search(session: Session, wanted: AuditFilter, *, before: int | None = None,
           after: int | None = None, size: int = PAGE_SIZE) -> Page:
    """One page of matching records, newest first.

    ``before`` continues to older records, ``after`` goes back to newer ones; one extra row
    is read to know whether the page in that direction has a next one.
    """
    query = select(AuditRecord).where(*wanted.conditions(session))
    if after is not None:
        rows = session.scalars(query.where(AuditRecord.seq > after)
                               .order_by(AuditRecord.seq).limit(size + 1)).all()
        more = len(rows) > size
        rows = list(reversed(rows[:size]))
        return Page(rows, older=rows[-1].seq if rows else None,
                    newer=rows[0].seq if more and rows else None)
    if before is not None:
        query = query.where(AuditRecord.seq < before)
    rows = session.scalars(query.order_by(AuditRecord.seq.desc()).limit(size + 1)).all()
    more = len(rows) > size
    rows = list(rows[:size])
    return Page(rows, older=rows[-1].seq if more else None,
                newer=rows[0].seq if before is not None and rows else None)


def last_seq(session: Session) -> int:
    return session.scalar(select(func.max(AuditRecord.seq))) or 0


def export_rows(db, wanted: AuditFilter, up_to: int) -> Iterator[dict]:
    """Every matching record up to ``up_to``, oldest first (the chain's order, so an export
    can be checked link by link), read in batches each in its own short session."""
    with db.read() as session:
        conditions = wanted.conditions(session)
    last = 0
    while True:
        with db.read() as session:
            batch = session.scalars(
                select(AuditRecord).where(*conditions, AuditRecord.seq > last,
                                          AuditRecord.seq <= up_to)
                .order_by(AuditRecord.seq).limit(EXPORT_BATCH)).all()
            rows = [row_dict(record) for record in batch]
        if not rows:
            return
        yield from rows
        last = rows[-1]["seq"]


def row_dict(record: AuditRecord) -> dict:
    return {name: getattr(record, name) for name in EXPORT_COLUMNS}


def _spreadsheet_safe(value) -> str:
    """A cell a spreadsheet will not run as a formula (OWASP: CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_lines(rows: Iterator[dict]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(EXPORT_COLUMNS)
    yield flush()
    for row in rows:
        row = {**row, "details": json.dumps(row["details"] or {}, sort_keys=True,
                                            ensure_ascii=False)}
        writer.writerow([_spreadsheet_safe(row[name]) for name in EXPORT_COLUMNS])
        yield flush()


def jsonl_lines(rows: Iterator[dict]) -> Iterator[str]:
    for row in rows:
        yield json.dumps(row, ensure_ascii=False, sort_keys=False) + "\n"

