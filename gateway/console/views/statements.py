"""Monthly statements for the SPJ: a printable page and a CSV file per agency, service and
month, and reconciling a statement with a provider's invoice file.

What a statement holds and how an invoice is read are ``gateway.statements``'s. Who sees
what: the gateway's own roles every agency's (``console:statements:read``); an agency's staff
and managers only their own agency's (another agency's is the same 404 as an unknown one),
and only as their world would: a statement lists live requests, so a test-world account sees
none. Reconciling is for admins, operators and the agency's own managers
(``console:statements:reconcile``). The invoice is processed within the request and never
stored; every download is audited.
"""

from __future__ import annotations

from flask import Response, abort, g, redirect, request, url_for

from ... import csvexport, statements
from ...errors import GatewayError
from ...models import Agency, utcnow
from .. import agency_actor, audit, bp, gateway, render, requires
from ..i18n import N_
from ..i18n import gettext as _

#: the core's messages about an invoice file, for the catalogue (``gateway.statements``)
INVOICE_MESSAGES = (N_("Choose the provider's invoice file (CSV)."),
                    N_("The file is not a CSV text file."), N_("The file has no header row."),
                    N_("No order id column: name it order_id or choose it."),
                    N_("No amount column: name it amount or choose it."),
                    N_("The file is not valid CSV."), N_("No order id."))


def _agency(agency_id: str) -> Agency:
    """The agency whose statements the actor may see (another agency's: 404)."""
    if agency_actor.is_agency(g.actor) and g.actor["agency_id"] != agency_id:
        abort(404)
    with gateway().db.read() as session:
        agency = session.get(Agency, agency_id)
        if agency is None:
            abort(404)
        session.expunge(agency)
        return agency


def _choice(agency: Agency) -> tuple[list[str], str, str]:
    """The services to choose from, and the service and month asked for (or the defaults:
    the first service, the region's current month)."""
    gw = gateway()
    services = sorted(agency.services or gw.services)
    service = request.values.get("service") or (services[0] if services else "")
    if service not in services:
        abort(404)
    month = request.values.get("month") or statements.month_of(gw.region, utcnow())
    if not statements.valid_month(month):
        abort(404)
    return services, service, month


def _statement(agency: Agency, service: str, month: str) -> statements.Statement:
    sheet = statements.statement(gateway(), agency.id, service, month)
    if agency_actor.is_agency(g.actor) and g.actor.get("key_type") != "live":
        # a test-world account: its requests are never on a statement, and it sees no others
        sheet = statements.Statement(sheet.agency_id, sheet.agency_name, service, month,
                                     sheet.currency)
    return sheet


def _csv(name: str, header, rows, action: str, **details) -> Response:
    with gateway().db.write() as session:
        audit(session, action, details.pop("target", None), rows=len(rows), **details)
    return Response(csvexport.write(header, rows), content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"',
                             "Cache-Control": "no-store"})


def _page(agency: Agency, services, service, month, status: int = 200, **context):
    sheet = _statement(agency, service, month)
    return render("console/statement.html", status, agency=agency, services=services,
                  service=service, month=month, sheet=sheet, totals=sheet.by_provider(),
                  providers=sorted({line.provider for line in sheet.lines if line.provider}),
                  printed_at=utcnow(), kinds=statements.KINDS, **context)


@bp.route("/statements")
@requires("console:statements:own")
def my_statements():
    """An agency account's own agency's statements (the menu's link)."""
    return redirect(url_for("console.agency_statements", agency_id=g.actor["agency_id"]))


@bp.route("/agencies/<agency_id>/statements")
@requires("console:statements:read")
def agency_statements(agency_id: str):
    agency = _agency(agency_id)
    return _page(agency, *_choice(agency))


@bp.route("/agencies/<agency_id>/statements.csv")
@requires("console:statements:read")
def agency_statement_csv(agency_id: str):
    agency = _agency(agency_id)
    _services, service, month = _choice(agency)
    sheet = _statement(agency, service, month)
    return _csv(f"statement-{service}-{month}", statements.STATEMENT_HEADER,
                statements.statement_rows(gateway().region, sheet),
                "console.statement_export", target=f"agency:{agency.id}", service=service,
                month=month)


@bp.route("/agencies/<agency_id>/statements/reconcile", methods=["POST"])
@requires("console:statements:reconcile")
def reconcile_statement(agency_id: str):
    agency = _agency(agency_id)
    services, service, month = _choice(agency)
    upload = request.files.get("invoice")
    provider = request.form.get("provider") or None
    columns = {name: (request.form.get(name) or "").strip()[:64] or None
               for name in ("order_column", "amount_column", "date_column")}
    try:
        if upload is None or not upload.filename:
            raise statements.InvoiceError("Choose the provider's invoice file (CSV).")
        data = upload.stream.read(statements.MAX_INVOICE_BYTES + 1)
        rows, problems = statements.read_invoice(data, **columns)
    except GatewayError as exc:
        return _page(agency, services, service, month, 422, error=_(exc.message),
                     provider=provider, columns=columns)
    sheet = _statement(agency, service, month)
    result = statements.reconcile(sheet, rows, provider)
    counts = {kind: len(matches) for kind, matches in result.items()}
    if request.form.get("as") == "csv":
        return _csv(f"reconciliation-{service}-{month}", statements.RECONCILIATION_HEADER,
                    statements.reconciliation_rows(result), "console.statement_reconcile",
                    target=f"agency:{agency.id}", service=service, month=month,
                    provider=provider, counts=counts, unreadable=len(problems))
    with gateway().db.write() as session:
        audit(session, "console.statement_reconcile", f"agency:{agency.id}", service=service,
              month=month, provider=provider, counts=counts, unreadable=len(problems))
    return _page(agency, services, service, month, result=result, counts=counts,
                 problems=problems[:200], problem_count=len(problems), provider=provider,
                 columns=columns)
