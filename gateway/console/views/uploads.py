"""Requests by spreadsheet: a template per service, an upload, its preview, its confirmation,
its progress and its result file (``gateway.uploads`` does the work in jobs).

An agency's account uploads for its own agency, in its own key type's world, and sees only
its agency's uploads of that world (``agency_actor.find_upload``; another's is a 404). An
administrator chooses the agency and the key type. The request does no more than read the
file into bodies and store them sealed: the preview and the creation are jobs, and their
page refreshes itself (``<meta http-equiv=refresh>``, no JavaScript) while they run.
"""

from __future__ import annotations

from flask import Response, abort, flash, g, redirect, request, url_for
from sqlalchemy import select

from ... import csvexport, intake, spreadsheets, uploads
from ...agencies import acting_agency
from ...errors import GatewayError, Invalid, NotFound
from ...keys import KEY_TYPES
from ...models import Agency
from .. import agency_actor, bp, gateway, render, requires, takes_files
from ..i18n import current_language, service_title
from ..i18n import gettext as _
from ..spreadsheet import bodies, columns, header_index, template_csv, template_xlsx

UPLOAD = "console:requests:upload"
REFRESH_SECONDS = 2
#: rows with errors listed on the page (the result file has them all)
SHOWN_ERRORS = 500


def _service(name: str, actor: dict | None = None):
    """The service and the agency actor to upload as (an agency account: its own)."""
    gw = gateway()
    if actor is None and agency_actor.is_agency(g.actor):
        actor = agency_actor.as_agency(gw, g.actor)
    if actor is None:       # an administrator: the service exists and is on
        service = gw.enabled_services().get(name)
        if service is None:
            raise NotFound("service_not_found", f"No service named {name!r} is offered.")
        return None, service
    return actor, intake.service_for(gw, actor, name)


def _columns(service):
    config = gateway().service_configs.get(service.name, {})
    return columns(service.request_schema(), current_language(), config)


@bp.route("/services/<service_name>/template.<kind>")
@requires(UPLOAD)
def upload_template(service_name: str, kind: str):
    if kind not in ("csv", "xlsx"):
        abort(404)
    _actor, service = _service(service_name)
    cols = _columns(service)
    if kind == "csv":
        data, mimetype = template_csv(cols), "text/csv"
    else:
        data = template_xlsx(cols, service.name)
        mimetype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return Response(data, mimetype=mimetype, headers={
        "Content-Disposition": f'attachment; filename="{service.name}-template.{kind}"'})


def _agencies_for(service_name: str) -> list:
    if agency_actor.is_agency(g.actor):
        return []
    with gateway().db.read() as session:
        return [(a.id, a.name) for a in session.scalars(
            select(Agency).where(Agency.active.is_(True)).order_by(Agency.name))
            if service_name in (a.services or [])]


def _upload_page(service, status=200, problem=None):
    return render("console/upload.html", status, service=service,
                  title=service_title(service), problem=problem,
                  agencies=_agencies_for(service.name), key_types=KEY_TYPES,
                  max_mb=spreadsheets.MAX_FILE_BYTES // (1024 * 1024),
                  max_rows=spreadsheets.MAX_ROWS)


@bp.route("/services/<service_name>/upload", methods=["GET", "POST"])
@requires(UPLOAD)
@takes_files(spreadsheets.MAX_FILE_BYTES)
def upload(service_name: str):
    gw = gateway()
    actor, service = _service(service_name)
    if request.method == "GET":
        return _upload_page(service)
    if actor is None:       # an administrator names the agency and the world
        key_type = request.form.get("key_type", "")
        if key_type not in KEY_TYPES:
            abort(400)
        actor, service = _service(service_name, acting_agency(
            gw, request.form.get("agency_id", ""), key_type, f"console:{g.actor['id']}"))
    sent = request.files.get("file")
    data = sent.read(spreadsheets.MAX_FILE_BYTES + 1) if sent else b""
    try:
        if len(data) > spreadsheets.MAX_FILE_BYTES:
            raise Invalid("upload_too_large", "too large")
        kind, rows = spreadsheets.read(data)
        cols = _columns(service)
        header = header_index(rows, cols)
        if header is None:
            raise Invalid("upload_no_header", "no header")
        found, ignored = bodies(rows, header, service.request_schema(), current_language(),
                                gw.service_configs.get(service.name, {}), gw.region.zone_name)
        if not found:
            raise Invalid("upload_empty", "no rows")
    except Invalid as exc:
        return _upload_page(service, 400 if exc.code != "upload_too_large" else 413,
                            problem=_problem(exc))
    upload_id = uploads.start(gw, actor, uploaded_by=str(g.actor["id"]), service=service.name,
                              file_name=(sent.filename or "upload") if sent else "upload",
                              file_kind=kind, rows=found, ignored_columns=ignored)
    return redirect(url_for("console.upload_detail", upload_id=upload_id))


def _problem(exc: GatewayError) -> str:
    """What the clerk reads when a file is refused, in the console's language."""
    return {
        "upload_too_large": _("The file is larger than %(mb)s MB. Split it into smaller "
                              "files.", mb=spreadsheets.MAX_FILE_BYTES // (1024 * 1024)),
        "upload_no_header": _("No row of the file names the template's columns. Download "
                              "the template and fill it in; keep its second row of column "
                              "names."),
        "upload_empty": _("The file has no rows of requests below its column names."),
        "upload_not_spreadsheet": _("This is not a CSV or XLSX file. Upload the template "
                                    "filled in, saved as .xlsx or .csv."),
        "upload_encoding": _("The file is not UTF-8 text. In Excel, save it as \"CSV UTF-8 "
                             "(Comma delimited)\" or as an Excel workbook (.xlsx)."),
        "upload_too_many_rows": _("The file has more than %(rows)s rows. Split it into "
                                  "several files.", rows=spreadsheets.MAX_ROWS),
        "upload_too_many_columns": _("The file has more columns than the template."),
    }.get(exc.code) or _("The file is damaged or cannot be read. Save it again as .xlsx or "
                         "as CSV UTF-8 and upload it again.")


def _find(upload_id: str):
    with gateway().db.read() as session:
        return agency_actor.find_upload(session, g.actor, upload_id)


@bp.route("/uploads/<upload_id>")
@requires(UPLOAD)
def upload_detail(upload_id: str):
    gw = gateway()
    found = _find(upload_id)
    uploads.requeue_if_lost(gw, found)
    service = gw.services.get(found.service)
    settled = found.status not in uploads.IN_PROGRESS
    problems = [row for row in uploads.results(gw, upload_id) if row.error] if settled else []
    ignored = uploads.contents(gw, found).get("ignored_columns", []) if settled else []
    goal = found.total_rows - (found.invalid_rows if found.status == "creating" else 0)
    return render("console/upload_detail.html", upload=found, service=service,
                  title=service_title(service) if service else found.service,
                  problems=problems[:SHOWN_ERRORS], more_problems=len(problems) > SHOWN_ERRORS,
                  ignored=ignored, goal=max(goal, 0),
                  labels={c.path: c.label for c in _columns(service)} if problems else {},
                  refresh=REFRESH_SECONDS if found.status in uploads.IN_PROGRESS else None)


@bp.route("/uploads/<upload_id>/confirm", methods=["POST"])
@requires(UPLOAD)
def upload_confirm(upload_id: str):
    found = _find(upload_id)
    if uploads.confirm(gateway(), found.id, str(g.actor["id"])):
        flash(_("Confirmed: the requests are being made."), "success")
    return redirect(url_for("console.upload_detail", upload_id=found.id))


@bp.route("/uploads/<upload_id>/result.csv")
@requires(UPLOAD)
def upload_result(upload_id: str):
    gw = gateway()
    found = _find(upload_id)
    service = gw.services.get(found.service)
    field = getattr(service, "unique_reference_field", None)
    by_row = {row["row"]: row["body"] for row in uploads.contents(gw, found)["rows"]}
    lines = []
    for row in uploads.results(gw, upload_id):
        error = row.error or {}
        reference = by_row.get(row.row, {}).get(field) if field else None
        fields = "; ".join(f"{path}: {' '.join(map(str, messages))}"
                           for path, messages in (error.get("fields") or {}).items())
        lines.append([row.row, reference, row.outcome, row.request_id, error.get("code"),
                      fields or error.get("message")])
    data = csvexport.write([_("Row"), field or _("Reference"), _("Outcome"), _("Request id"),
                            _("Error code"), _("Error")], lines)
    return Response(data, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="upload-{found.id}-result.csv"'})
