"""The satisfaction survey (SKM): the index (IKM) per service, agency and period with its
quality category, the respondents, the mean of each element; the raw answers and the
complaints as CSV (the complaints for forwarding to SP4N-LAPOR!).

The figures come from ``gateway.reports`` (SQL sums, the index from ``gateway.skm``). The
console's users are the regency's staff and see every agency (a filter narrows it); the
exports open the citizens' sealed comments and complaints, so they need
``console:skm:export`` and each one is audited.
"""

from __future__ import annotations

from datetime import date, timedelta

from flask import Response, request
from sqlalchemy import select

from ... import csvexport, reports, skm
from ...keys import KEY_TYPES
from ...models import Agency, SurveyAnswer, utcnow
from .. import audit, bp, gateway, render, requires
from ..i18n import N_, current_language

FILTERS = ("service", "agency", "key_type", "since", "until")


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text or "")
    except ValueError:
        return None


def _filters(args) -> tuple[dict, list]:
    """The page's filters as typed, and the answers' conditions (days in the region's zone,
    ``until`` included)."""
    wanted = {name: args.get(name, "").strip() for name in FILTERS}
    region = gateway().region
    since, until = _day(wanted["since"]), _day(wanted["until"])
    conditions = reports.survey_conditions(
        since=region.day(since)[0] if since else None,
        until=region.day(until + timedelta(days=1))[0] if until else None,
        service=wanted["service"] or None, agency_id=wanted["agency"] or None,
        key_type=wanted["key_type"] or None)
    return wanted, conditions


def periods(today: date) -> list[tuple[str, date, date]]:
    """The periods SKM is reported by (PermenPANRB 14/2017: at least once a year; commonly
    per semester), as ``(label, first day, last day)`` in the region's calendar."""
    half = 1 if today.month <= 6 else 7
    semester_end = date(today.year, 6, 30) if half == 1 else date(today.year, 12, 31)
    next_month = date(today.year + today.month // 12, today.month % 12 + 1, 1)
    return [(N_("This month"), today.replace(day=1), next_month - timedelta(days=1)),
            (N_("This semester"), date(today.year, half, 1), semester_end),
            (N_("This year"), date(today.year, 1, 1), date(today.year, 12, 31)),
            (N_("Last year"), date(today.year - 1, 1, 1), date(today.year - 1, 12, 31))]


@bp.route("/skm")
@requires("console:skm:read")
def skm_page():
    gw = gateway()
    args, conditions = _filters(request.args)
    with gw.db.read() as session:
        everything, groups = reports.survey_figures(session, conditions)
        agencies = session.execute(select(Agency.id, Agency.name).order_by(Agency.name)).all()
    language = current_language()
    elements = [(e.code, e.name.get(language, e.name["en"])) for e in skm.ELEMENTS]
    return render("console/skm.html", args=args, everything=everything, groups=groups,
                  agencies=agencies, agency_names=dict(agencies),
                  services=sorted(gw.services), key_types=KEY_TYPES, elements=elements,
                  language=language, query=request.query_string.decode(),
                  periods=periods(gw.region.local(utcnow()).date()))


def _answers(conditions, complaints_only: bool):
    gw = gateway()
    query = select(SurveyAnswer, Agency.name).join(Agency, Agency.id == SurveyAnswer.agency_id)
    if complaints_only:
        query = query.where(SurveyAnswer.has_complaint.is_(True))
    with gw.db.read() as session:
        rows = session.execute(query.where(*conditions).order_by(SurveyAnswer.created_at)
                               ).all()
        session.expunge_all()
    return rows


def _csv(name: str, header, rows, kind: str, args) -> Response:
    gw = gateway()
    with gw.db.write() as session:
        audit(session, "console.skm_export", None, kind=kind, rows=len(rows),
              filter={k: v for k, v in args.items() if v})
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    return Response(csvexport.write(header, rows), content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}-{stamp}.csv"',
                             "Cache-Control": "no-store"})


@bp.route("/skm/answers.csv")
@requires("console:skm:export")
def skm_answers_csv():
    gw = gateway()
    args, conditions = _filters(request.args)
    rows = [[answer.id, gw.region.local(answer.created_at), answer.service, agency_name,
             answer.key_type, answer.language, *(getattr(answer, c) for c in skm.CODES),
             gw.vault.open(answer.comment_ciphertext) if answer.comment_ciphertext else "",
             answer.has_complaint]
            for answer, agency_name in _answers(conditions, complaints_only=False)]
    header = ["answer_id", "answered_at", "service", "agency", "key_type", "language",
              *skm.CODES, "comment", "has_complaint"]
    return _csv("skm-answers", header, rows, "answers", args)


@bp.route("/skm/complaints.csv")
@requires("console:skm:export")
def skm_complaints_csv():
    """The complaints, one a line, in the shape an officer copies into SP4N-LAPOR!: when,
    which service and office, the complaint, and the request's id to answer it by."""
    gw = gateway()
    args, conditions = _filters(request.args)
    rows = [[answer.id, gw.region.local(answer.created_at), answer.service, agency_name,
             answer.request_id,
             gw.vault.open(answer.complaint_ciphertext) if answer.complaint_ciphertext else ""]
            for answer, agency_name in _answers(conditions, complaints_only=True)]
    header = ["answer_id", "answered_at", "service", "agency", "request_id", "complaint"]
    return _csv("skm-complaints", header, rows, "complaints", args)
