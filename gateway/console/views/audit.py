"""The console's audit pages: search the trail, verify its chain, export what was found.

Every role may do all three (``console:audit:read``): none of them changes anything. The
search and the verification stay in the building; an export leaves it, so each export is
itself audited, with the filter it used and the last record it could contain. Exports are
streamed in the chain's order (oldest first, with each record's hashes) in batches, so a
large trail never sits in memory and the file can be checked link by link elsewhere.
"""

from __future__ import annotations

from flask import Response, request

from ...audit import recorded_time
from ...checkpoints import CheckpointPaths, verify_anchored
from ...models import utcnow
from .. import audit as audit_action
from .. import bp, gateway, render, requires
from ..audit_search import (
    AuditFilter,
    csv_lines,
    export_rows,
    jsonl_lines,
    last_seq,
    search,
)

EXPORTS = {"csv": ("text/csv; charset=utf-8", csv_lines),
           "jsonl": ("application/x-ndjson; charset=utf-8", jsonl_lines)}


def _cursor(name: str) -> int | None:
    value = request.args.get(name, "")
    return int(value) if value.isdigit() and len(value) < 19 else None


def _page(verify_result=None, status: int = 200):
    wanted, problems = AuditFilter.from_args(request.args, gateway().region.time_zone)
    with gateway().db.read() as session:
        page = search(session, wanted, before=_cursor("before"), after=_cursor("after"))
    return render("console/audit.html", status, wanted=wanted, problems=problems, page=page,
                  filter_args=wanted.query_args(), verify_result=verify_result,
                  recorded_time=recorded_time)


@bp.route("/audit")
@requires("console:audit:read")
def audit():
    return _page()


@bp.route("/audit/verify", methods=["POST"])
@requires("console:audit:read")
def audit_verify():
    """Walk the whole chain now and show the answer on the audit page (the verification is
    recorded, so the trail shows who checked it and what they found). The chain is checked
    against the signed checkpoints too, as ``gateway audit verify`` does."""
    gw = gateway()
    with gw.db.read() as session:
        result = verify_anchored(session, CheckpointPaths.from_settings(gw.settings))
    with gw.db.write() as session:
        audit_action(session, "console.audit_verify", None,
                     outcome="intact" if result.ok else "broken", checked=result.checked,
                     first_bad_seq=result.first_bad_seq)
    return _page(verify_result=result)


def _export(kind: str):
    gw = gateway()
    wanted, _problems = AuditFilter.from_args(request.args, gw.region.time_zone)
    with gw.db.write() as session:
        up_to = last_seq(session)
        audit_action(session, "console.audit_export", None, format=kind, up_to_seq=up_to,
                     filter=wanted.describe())
    content_type, render_lines = EXPORTS[kind]
    name = f"audit-{utcnow().strftime('%Y%m%dT%H%M%SZ')}.{kind}"
    return Response(render_lines(export_rows(gw.db, wanted, up_to)),
                    content_type=content_type,
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})


@bp.route("/audit/export.csv")
@requires("console:audit:read")
def audit_export_csv():
    return _export("csv")


@bp.route("/audit/export.jsonl")
@requires("console:audit:read")
def audit_export_jsonl():
    return _export("jsonl")
