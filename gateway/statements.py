"""Monthly statements (for the SPJ) and reconciling them with a provider's invoice.

The office pays couriers from its budget and must account for every rupiah each month with a
statement (SPJ, *surat pertanggungjawaban*, due by the 10th of the next month). A statement is
one agency's deliveries of one service in one month:

- **Which requests.** Live requests only (a test key's requests go to simulators and are never
  on a statement) that were booked with a provider (``provider_reference`` set) and have ended
  (delivered, returned, cancelled, failed...): each with its status, so a cancelled booking
  shows but is plainly not a delivery.
- **Which date, which month.** The request's *end time*: for a delivery, the time the
  courier handed it over as the provider's report gives it (``records.delivery_time``: the
  report's ``occurred_at``, else when it reached us, else the timeline's delivered step); for
  any other end, when that end was put on the timeline. The month is that time's calendar
  month on the **region's** clock (``gateway.region``): a delivery at 23:30 WIB on 31 March is
  March's, although it is 16:30 UTC; in a WITA region the same instant (00:30 WITA, 1 April)
  is April's.
- **Money.** Quoted and final price in whole units of the currency (``gateway.costs``); totals
  per provider and overall count final prices; a line with no final price is flagged
  (``unpriced``) so nobody pays it unchecked.

Reconciliation reads a provider's invoice (CSV) and matches it by the provider's order id:
orders on the invoice we do not know, ours missing from the invoice, price differences, and
matches. The file is hostile input and is never stored: :func:`read_invoice` caps its size and
rows, decodes UTF-8 (with or without BOM) or cp1252, sniffs ``;`` or ``,``, and parses amounts
strictly (:func:`parse_amount`).

This module is the core: pure queries and pure formatting; it never speaks HTTP and never
names a service.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import load_only

from .errors import Invalid, NotFound
from .models import Agency, ServiceRequest, StatusEvent
from .records import delivery_times
from .statuses import Status

#: statuses a statement lists (a request that has ended after it was booked)
ENDED = tuple(s.value for s in Status if s.terminal)
#: a provider's report may be stamped a little before we recorded the change
CLOCK_SLACK = timedelta(days=1)

#: the invoice upload's limits (the gateway's body limit, ``api.max_body_bytes``, may be lower)
MAX_INVOICE_BYTES = 2 * 1024 * 1024
MAX_INVOICE_ROWS = 20_000
MAX_CELL = 200
#: header aliases (compared lower-case, without spaces, ``_`` and ``-``): our documented
#: ``order_id``/``amount``/``date``, and what GO-SEND, Lalamove and GrabExpress call them
ORDER_HEADERS = ("orderid", "ordernumber", "orderno", "bookingid", "deliveryid",
                 "providerreference", "noorder", "nopesanan", "idpesanan")
AMOUNT_HEADERS = ("amount", "price", "totalprice", "total", "fee", "deliveryfee", "nominal",
                  "biaya", "harga", "jumlah", "tarif")
DATE_HEADERS = ("date", "orderdate", "deliverydate", "completedat", "tanggal", "createdat")


# -- months ----------------------------------------------------------------------------------
def valid_month(text: str) -> bool:
    """``YYYY-MM`` with a real month (2000-2999)."""
    return bool(re.fullmatch(r"2[0-9]{3}-(0[1-9]|1[0-2])", text or ""))


def month_bounds(region, month: str) -> tuple[datetime, datetime]:
    """Start and end (exclusive) of ``month`` (``YYYY-MM``) on the region's clock, in UTC.

    :raises Invalid: ``validation_failed`` for a month that is not ``YYYY-MM``
    """
    if not valid_month(month):
        raise Invalid("validation_failed", "Use YYYY-MM for the month.",
                      fields={"month": ["Use YYYY-MM for the month."]})
    year, number = int(month[:4]), int(month[5:])
    start = datetime(year, number, 1, tzinfo=region.time_zone)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=region.time_zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def month_of(region, moment: datetime) -> str:
    local = region.local(moment)
    return f"{local.year:04d}-{local.month:02d}"


# -- the statement ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Line:
    """One request on a statement."""

    request_id: str
    reference: str | None
    ended_at: datetime
    provider: str | None
    provider_reference: str | None
    quoted: int | None
    final: int | None
    currency: str | None
    status: str

    @property
    def unpriced(self) -> bool:
        """No final price reported: check it before paying."""
        return self.final is None


@dataclass(frozen=True)
class ProviderTotal:
    provider: str
    count: int
    quoted: int
    final: int
    unpriced: int


@dataclass(frozen=True)
class Statement:
    agency_id: str
    agency_name: str
    service: str
    month: str
    currency: str
    lines: tuple[Line, ...] = field(default_factory=tuple)

    @property
    def total_final(self) -> int:
        return sum(line.final or 0 for line in self.lines)

    @property
    def total_quoted(self) -> int:
        return sum(line.quoted or 0 for line in self.lines)

    @property
    def unpriced(self) -> int:
        return sum(1 for line in self.lines if line.unpriced)

    def by_provider(self) -> list[ProviderTotal]:
        """Totals per provider, by provider name."""
        groups: dict[str, list[Line]] = {}
        for line in self.lines:
            groups.setdefault(line.provider or "", []).append(line)
        return [ProviderTotal(name, len(lines), sum(x.quoted or 0 for x in lines),
                              sum(x.final or 0 for x in lines),
                              sum(1 for x in lines if x.unpriced))
                for name, lines in sorted(groups.items())]


def _ended_at(session, records: list[ServiceRequest]) -> dict[str, datetime]:
    """When each request ended (see the module docstring), in UTC: a delivery's time is
    ``records.delivery_time``'s rule (:func:`~gateway.records.delivery_times`), any other
    end's the timeline's first step into its status."""
    ended = delivery_times(session, [r.id for r in records if r.status == Status.DELIVERED])
    others = {r.id: r.status for r in records if r.status != Status.DELIVERED}
    ids = list(others)
    for at in range(0, len(ids), 500):
        steps = session.execute(
            select(StatusEvent.request_id, StatusEvent.status, StatusEvent.created_at)
            .where(StatusEvent.request_id.in_(ids[at:at + 500]),
                   StatusEvent.status.in_(ENDED), StatusEvent.applied.is_(True))
            .order_by(StatusEvent.id.desc()))
        for request_id, status, created in steps:      # the first step into it wins
            if status == others[request_id]:
                ended[request_id] = _utc(created)
    return ended


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def statement(gateway, agency_id: str, service: str, month: str) -> Statement:
    """The agency's statement for ``service`` in ``month`` (``YYYY-MM``, the region's month).

    :raises NotFound: ``agency_not_found``
    :raises Invalid: a month that is not ``YYYY-MM``
    """
    start, end = month_bounds(gateway.region, month)
    with gateway.db.read() as session:
        agency = session.get(Agency, agency_id)
        if agency is None:
            raise NotFound("agency_not_found", "No agency with this id.")
        # a coarse filter in SQL (made before the month ended, changed since it began),
        # the exact end time in Python
        candidates = session.scalars(select(ServiceRequest).options(load_only(
            ServiceRequest.id, ServiceRequest.status, ServiceRequest.external_reference,
            ServiceRequest.provider, ServiceRequest.provider_reference,
            ServiceRequest.quoted_amount, ServiceRequest.final_amount,
            ServiceRequest.cost_currency)).where(
            ServiceRequest.agency_id == agency_id, ServiceRequest.service == service,
            ServiceRequest.key_type == "live", ServiceRequest.provider_reference.is_not(None),
            ServiceRequest.status.in_(ENDED), ServiceRequest.created_at < end,
            ServiceRequest.updated_at >= start - CLOCK_SLACK)).all()
        ended_at = _ended_at(session, list(candidates))
        lines = []
        for record in candidates:
            ended = ended_at.get(record.id)
            if ended is None or not start <= ended < end:
                continue
            lines.append(Line(record.id, record.external_reference, ended, record.provider,
                              record.provider_reference, record.quoted_amount,
                              record.final_amount, record.cost_currency, record.status))
        lines.sort(key=lambda line: (line.ended_at, line.request_id))
        return Statement(agency.id, agency.name, service, month, gateway.region.currency,
                         tuple(lines))


STATEMENT_HEADER = ("date", "request_reference", "request_id", "provider",
                    "provider_order_id", "quoted", "final", "currency", "status", "unpriced")


def statement_rows(region, sheet: Statement) -> list[tuple]:
    """The statement as CSV rows (after :data:`STATEMENT_HEADER`): each line with its date on
    the region's clock, then one total row per provider and the overall total."""
    rows: list[tuple] = []
    for line in sheet.lines:
        local = region.local(line.ended_at)
        rows.append((local.strftime("%Y-%m-%d %H:%M ") + (local.tzname() or ""),
                     line.reference, line.request_id, line.provider, line.provider_reference,
                     line.quoted, line.final, line.currency or sheet.currency, line.status,
                     line.unpriced))
    for total in sheet.by_provider():
        rows.append(("total", None, None, total.provider, f"deliveries: {total.count}",
                     total.quoted, total.final, sheet.currency, None, total.unpriced))
    rows.append(("total", None, None, None, f"deliveries: {len(sheet.lines)}",
                 sheet.total_quoted, sheet.total_final, sheet.currency, None, sheet.unpriced))
    return rows


# -- the invoice -----------------------------------------------------------------------------
class InvoiceError(Invalid):
    """The invoice file cannot be read; ``fields`` says where."""

    def __init__(self, message: str, where: str = "file"):
        super().__init__("invalid_invoice", message, fields={where: [message]})


@dataclass(frozen=True)
class InvoiceRow:
    row: int            # the file's row number (the header is row 1)
    order_id: str
    amount: int
    date: str | None


AMOUNT = re.compile(r"\d{1,15}")


def parse_amount(text: str) -> int:
    """A whole amount of rupiah, as invoices write it; raises ValueError for anything else.

    The rule (Indonesian writing first, as a provider's invoice in IDR uses it): an optional
    ``Rp``/``IDR`` and spaces are dropped; ``.`` groups thousands (``15.000``, ``1.250.000``)
    and ``,`` marks decimals (``15000,00``, ``15.000,00``), which must be zeros (rupiah are
    whole). A comma followed by exactly three digits is a thousands group (``15,000``), as
    English-language exports write it. A dot followed by one or two digits is a decimal point
    (``15000.00``). Negative amounts, a lone separator, groups that are not three digits
    (``15.00.0``) and anything else (``1e5``, ``=1+1``) are refused.
    """
    value = str(text).strip().replace("\u00a0", " ")
    value = re.sub(r"^(rp\.?|idr)\s*", "", value, flags=re.IGNORECASE).replace(" ", "")
    if not value or not value.isascii():
        raise ValueError("empty, or digits other than 0-9")
    whole, decimals = value, ""
    if re.fullmatch(r"\d{1,3}(\.\d{3})+(,\d+)?|\d+(,\d+)?", value) and not re.fullmatch(
            r"\d{1,3}(,\d{3})+", value):
        whole, _, decimals = value.partition(",")
        whole = whole.replace(".", "")
    elif re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d{1,2})?", value):
        whole, _, decimals = value.partition(".")
        whole = whole.replace(",", "")
    elif re.fullmatch(r"\d+\.\d{1,2}", value):
        whole, _, decimals = value.partition(".")
    else:
        raise ValueError("not an amount")
    if decimals.strip("0") or not AMOUNT.fullmatch(whole):
        raise ValueError("not a whole amount")
    return int(whole)


def _key(header: str) -> str:
    return re.sub(r"[\s_\-.]", "", header.strip().lower())


def _decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _column(header: list[str], chosen: str | None, aliases: Sequence[str]) -> int | None:
    keys = [_key(h) for h in header]
    if chosen:
        wanted = _key(chosen)
        return keys.index(wanted) if wanted in keys else None
    for alias in aliases:
        if alias in keys:
            return keys.index(alias)
    return None


def read_invoice(data: bytes, order_column: str | None = None,
                 amount_column: str | None = None,
                 date_column: str | None = None) -> tuple[list[InvoiceRow], list[dict]]:
    """The invoice's rows, and the problems of those it could not read.

    A CSV file of at most :data:`MAX_INVOICE_BYTES` and :data:`MAX_INVOICE_ROWS` rows, a
    header first; ``;`` or ``,`` between cells (whichever the header holds more of, or what a
    spreadsheet's ``sep=`` first line says). The columns are those named (the console's
    mapping form) or found by their usual headers (:data:`ORDER_HEADERS`,
    :data:`AMOUNT_HEADERS`, :data:`DATE_HEADERS`). Problems are
    ``{"row": n, "column": name, "message": text}``.

    :raises InvoiceError: the file as a whole cannot be read (too large, no header, no
        order or amount column, too many rows)
    """
    if len(data) > MAX_INVOICE_BYTES:
        raise InvoiceError(f"The file is larger than {MAX_INVOICE_BYTES // 1024} KiB.")
    if b"\x00" in data:
        raise InvoiceError("The file is not a CSV text file.")
    text = _decode(data)
    first, _, rest = text.partition("\n")
    if first.strip() in ("sep=;", "sep=,"):       # the line spreadsheet programs write
        delimiter, text = first.strip()[-1], rest
    else:
        delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        raise InvoiceError("The file has no header row.") from exc
    order_at = _column(header, order_column, ORDER_HEADERS)
    amount_at = _column(header, amount_column, AMOUNT_HEADERS)
    date_at = _column(header, date_column, DATE_HEADERS)
    if order_at is None:
        raise InvoiceError("No order id column: name it order_id or choose it.", "order_column")
    if amount_at is None:
        raise InvoiceError("No amount column: name it amount or choose it.", "amount_column")
    rows: list[InvoiceRow] = []
    problems: list[dict] = []
    try:
        for number, cells in enumerate(reader, start=2):
            if number - 1 > MAX_INVOICE_ROWS:
                raise InvoiceError(f"The file has more than {MAX_INVOICE_ROWS} rows.")
            if not any(c.strip() for c in cells):
                continue
            order = cells[order_at].strip()[:MAX_CELL] if order_at < len(cells) else ""
            amount = cells[amount_at].strip()[:MAX_CELL] if amount_at < len(cells) else ""
            when = cells[date_at].strip()[:MAX_CELL] if date_at is not None \
                and date_at < len(cells) else None
            if not order:
                problems.append({"row": number, "column": header[order_at][:MAX_CELL],
                                 "message": "No order id."})
                continue
            try:
                value = parse_amount(amount)
            except ValueError:
                problems.append({"row": number, "column": header[amount_at][:MAX_CELL],
                                 "message": f"Not a whole amount: {amount[:40]!r}."})
                continue
            rows.append(InvoiceRow(number, order, value, when or None))
    except csv.Error as exc:
        raise InvoiceError("The file is not valid CSV.") from exc
    return rows, problems


# -- reconciliation --------------------------------------------------------------------------
@dataclass(frozen=True)
class Match:
    """One order as reconciliation sees it: on the invoice, on the statement, or both."""

    kind: str                   # unknown | missing | difference | matched | duplicate
    order_id: str
    invoice: InvoiceRow | None
    line: Line | None

    @property
    def difference(self) -> int | None:
        if self.invoice is None or self.line is None or self.line.final is None:
            return None
        return self.invoice.amount - self.line.final


KINDS = ("unknown", "missing", "difference", "duplicate", "matched")


def reconcile(sheet: Statement, rows: list[InvoiceRow], provider: str | None = None) -> dict:
    """Match the invoice's rows to the statement's lines by the provider's order id.

    ``provider`` limits the statement's side to one provider's lines (an invoice is one
    provider's). :return: kind -> list of :class:`Match`, for every kind in :data:`KINDS`:
    ``unknown`` (on the invoice, not on the statement), ``missing`` (on the statement, not on
    the invoice), ``difference`` (the amount is not the final price, or we have none),
    ``duplicate`` (the order id is on the invoice again), ``matched``.
    """
    lines = {line.provider_reference: line for line in sheet.lines
             if line.provider_reference and (provider is None or line.provider == provider)}
    result: dict[str, list[Match]] = {kind: [] for kind in KINDS}
    seen: set[str] = set()
    for row in rows:
        if row.order_id in seen:
            result["duplicate"].append(Match("duplicate", row.order_id, row,
                                             lines.get(row.order_id)))
            continue
        seen.add(row.order_id)
        line = lines.get(row.order_id)
        if line is None:
            result["unknown"].append(Match("unknown", row.order_id, row, None))
        elif line.final != row.amount:
            result["difference"].append(Match("difference", row.order_id, row, line))
        else:
            result["matched"].append(Match("matched", row.order_id, row, line))
    for reference, line in lines.items():
        if reference not in seen:
            result["missing"].append(Match("missing", reference, None, line))
    return result


RECONCILIATION_HEADER = ("result", "provider_order_id", "request_reference", "request_id",
                         "provider", "invoice_row", "invoice_amount", "final", "difference",
                         "invoice_date")


def reconciliation_rows(result: dict) -> list[tuple]:
    """The reconciliation as CSV rows (after :data:`RECONCILIATION_HEADER`)."""
    rows = []
    for kind in KINDS:
        for match in result[kind]:
            line, row = match.line, match.invoice
            rows.append((kind, match.order_id, line.reference if line else None,
                         line.request_id if line else None, line.provider if line else None,
                         row.row if row else None, row.amount if row else None,
                         line.final if line else None, match.difference,
                         row.date if row else None))
    return rows
