"""The reports page: a period's figures with a chart, a table and a CSV file for each, and a
map of deliveries, for the region or for one agency.

The figures come from ``gateway.dashboards``; this view reads the filters (a GET form that
works without script), decides the scope and renders. The gateway's own roles see the
region and may narrow it to one agency; an agency's own accounts see their agency in their
key type's world only (``agency_actor``), and naming another agency is a 404, the same as an
unknown one. Charts are SVG drawn on the server (``charts.py``); the map is Leaflet, served
by the console, over the configured tile server, and without tiles (or script) the points'
table still says where deliveries went, rounded to about 100 m.
"""

from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

from flask import Response, abort, g, request
from sqlalchemy import select

from ... import csvexport, dashboards
from ...keys import KEY_TYPES
from ...models import Agency, utcnow
from .. import bp, charts, gateway, render, requires
from ..agency_actor import is_agency
from ..i18n import N_, gettext, money, number, service_title

#: what each figure's CSV is called, in the order the page shows them
FIGURES = ("days", "timings", "failures", "costs", "survey", "points")
OUTCOME_LABELS = {"delivered": N_("Delivered"), "failed": N_("Failed"),
                  "cancelled": N_("Cancelled"), "in_progress": N_("In progress")}


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat((text or "").strip())
    except ValueError:
        return None


def _filters(args) -> tuple[dict, dashboards.Scope, date, date]:
    """The filters as understood, the scope they mean, and the period's first and last day.

    :raises NotFound: (404) an agency account naming an agency not its own, or an agency
        that does not exist
    """
    gw = gateway()
    actor = g.get("actor") or {}
    first, last = dashboards.period(gw.region, _day(args.get("from")), _day(args.get("to")))
    service = args.get("service", "").strip()
    service = service if service in gw.services else ""
    agency = args.get("agency", "").strip()
    key_type = args.get("key_type", "").strip()
    if is_agency(actor):
        if agency and agency != actor["agency_id"]:
            abort(404)
        agency, key_type = actor["agency_id"], actor["key_type"]
    else:
        key_type = key_type if key_type in KEY_TYPES else ""
        if agency:
            with gw.db.read() as session:
                if session.get(Agency, agency) is None:
                    abort(404)
    start, end = dashboards.bounds(gw.region, first, last)
    scope = dashboards.Scope(start, end, service or None, agency or None, key_type or None)
    wanted = {"from": first.isoformat(), "to": last.isoformat(), "service": service,
              "agency": "" if is_agency(actor) else agency,
              "key_type": "" if is_agency(actor) else key_type}
    return wanted, scope, first, last


def _figures(with_points: bool = True) -> tuple[dict, dashboards.Dashboard]:
    gw = gateway()
    wanted, scope, first, last = _filters(request.args)
    targets = {name: gw.service_settings(name).get("target_minutes") for name in gw.services}
    with gw.db.read() as session:
        figures = dashboards.dashboard(
            session, gw.region, first, last, scope, targets,
            locate=dashboards.dropoff_locator(gw) if with_points else None, now=utcnow())
    return wanted, figures


@bp.route("/reports")
@requires("console:reports:read")
def reports_page():
    gw = gateway()
    wanted, figures = _figures()
    agencies = []
    agency_name = None
    with gw.db.read() as session:
        if is_agency(g.get("actor")):
            agency_name = session.scalar(select(Agency.name).where(
                Agency.id == g.actor["agency_id"]))
        else:
            agencies = session.execute(select(Agency.id, Agency.name)
                                       .order_by(Agency.name)).all()
    drawn = _charts(figures, {name: service_title(s) for name, s in gw.services.items()})
    query = urlencode({k: v for k, v in wanted.items() if v})
    return render("console/reports.html", args=wanted, figures=figures,
                  outcomes=OUTCOME_LABELS, agencies=agencies, agency_name=agency_name,
                  key_types=KEY_TYPES,
                  titles={name: service_title(s) for name, s in gw.services.items()},
                  charts=drawn, query=query,
                  map_tiles_url=gw.settings["console"].get("map_tiles_url") or "",
                  point_decimals=dashboards.POINT_DECIMALS)


def _charts(figures: dashboards.Dashboard, titles: dict) -> dict:
    """Each figure's SVG, labelled in the reader's language (the tables say the same)."""
    drawn = {"days": charts.stacked_columns(
        gettext("Requests per day by outcome"),
        [d.day.strftime("%d-%m") for d in figures.days],
        [(gettext(OUTCOME_LABELS[o]), f"outcome-{o.replace('_', '-')}",
          [d.counts[o] for d in figures.days]) for o in dashboards.OUTCOMES])}
    per_service = [t for t in figures.timings if t.service is not None]
    # one service: its target as a line across the bars (several have several targets: the
    # table gives each)
    target = per_service[0].target_minutes if len(per_service) == 1 else None
    drawn["timings"] = charts.bars(
        gettext("Median minutes to delivery, per service"),
        [(titles.get(t.service, t.service), t.delivery_median or 0,
          number(t.delivery_median, "#,##0.0")) for t in per_service],
        marker=target, marker_label=gettext("Target: %(minutes)s min",
                                            minutes=number(target)) if target else "")
    drawn["within"] = charts.bars(
        gettext("Share delivered within the target, per service"),
        [(titles.get(t.service, t.service), t.within.percent or 0,
          "—" if t.within.percent is None else f"{number(t.within.percent)} %")
         for t in per_service if t.target_minutes is not None], marker=100, marker_label="100 %")
    drawn["failures"] = charts.bars(
        gettext("Failures by reason"),
        [(reason, count, number(count)) for reason, count in figures.failures])
    drawn["costs"] = charts.bars(
        gettext("Mean final price per delivery, by provider"),
        [(c.provider, c.mean, money(c.mean)) for c in figures.costs])
    return drawn


def _minutes(value: float | None):
    return None if value is None else round(value, 2)


def csv_rows(figure: str, figures: dashboards.Dashboard) -> tuple[list[str], list[list]]:
    """The header and rows of one figure's CSV (numbers as numbers, minutes to 2 decimals)."""
    if figure == "days":
        return (["day", *dashboards.OUTCOMES, "total"],
                [[d.day.isoformat(), *(d.counts[o] for o in dashboards.OUTCOMES), d.total]
                 for d in figures.days])
    if figure == "timings":
        return (["service", "target_minutes", "booked", "booking_median_minutes",
                 "booking_p95_minutes", "delivered", "delivery_median_minutes",
                 "delivery_p95_minutes", "due", "delivered_within_target",
                 "within_target_percent"],
                [[t.service or "all", t.target_minutes, t.booked, _minutes(t.booking_median),
                  _minutes(t.booking_p95), t.delivered, _minutes(t.delivery_median),
                  _minutes(t.delivery_p95), t.within.whole, t.within.part, t.within.percent]
                 for t in figures.timings])
    if figure == "failures":
        return ["reason", "requests"], [list(item) for item in figures.failures]
    if figure == "costs":
        return (["provider", "currency", "deliveries", "mean_final_price", "total_final_price"],
                [[c.provider, c.currency, c.deliveries, c.mean, c.total]
                 for c in figures.costs])
    if figure == "survey":
        s = figures.survey
        return (["ikm", "category", "respondents", "complaints"],
                [[round(s.index.ikm, 2), s.index.category, s.index.respondents, s.complaints]]
                if s else [])
    return ["lat", "lng"], [list(point) for point in figures.points]


@bp.route("/reports/<figure>.csv")
@requires("console:reports:read")
def reports_csv(figure: str):
    if figure not in FIGURES:
        abort(404)
    wanted, figures = _figures(with_points=figure == "points")
    header, rows = csv_rows(figure, figures)
    name = f"report-{figure}-{wanted['from']}-{wanted['to']}"
    return Response(csvexport.write(header, rows), content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"',
                             "Cache-Control": "no-store"})
