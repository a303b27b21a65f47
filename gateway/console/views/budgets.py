"""Budgets: what an agency may spend on each service per month and per year, what is reserved
and spent, the requests held because a budget is used up, and releasing or refusing them.

The figures and the rules are ``gateway.costs``'s; releasing and refusing a held request are
``gateway.operations``'s, audited there. Setting budgets is for admins
(``console:budgets:manage``); deciding on held requests for admins and for the agency's own
managers (``console:budgets:decide``; a manager sees only its agency's requests, as everywhere,
``agency_actor``); every staff role may read.
"""

from __future__ import annotations

from flask import flash, g, redirect, request, url_for
from sqlalchemy import select

from ... import costs
from ...errors import GatewayError
from ...events import actor_label
from ...models import Agency, ServiceRequest, utcnow
from ...operations import refuse_held, release_held
from ...statuses import Status
from .. import agency_actor, bp, gateway, render, requires
from ..i18n import N_
from ..i18n import gettext as _


def _page(agency_id: str, status: int = 200, **context):
    gw = gateway()
    with gw.db.read() as session:
        agency = session.get(Agency, agency_id)
        if agency is None:
            return render("console/error.html", 404, status=404, reason="There is nothing here.")
        held = session.scalars(select(ServiceRequest).where(
            ServiceRequest.agency_id == agency_id,
            ServiceRequest.status == Status.HELD_FOR_BUDGET)
            .order_by(ServiceRequest.created_at).limit(200)).all()
        session.expunge_all()
    budgets = costs.budget_states(gw, agency_id)
    month, year = costs.periods(gw.region, utcnow())
    return render("console/budgets.html", status, agency=agency, budgets=budgets, held=held,
                  services=sorted(agency.services or gw.services), month=month, year=year,
                  warning_percent=int(costs.WARNING_SHARE * 100),
                  form=context.pop("form", {}), **context)


@bp.route("/agencies/<agency_id>/budgets")
@requires("console:agencies:read")
def agency_budgets(agency_id: str):
    return _page(agency_id)


@bp.route("/agencies/<agency_id>/budgets", methods=["POST"])
@requires("console:budgets:manage")
def set_budget(agency_id: str):
    form = {name: request.form.get(name, "").strip() for name in ("service", "period", "limit")}
    with gateway().db.read() as session:
        if session.get(Agency, agency_id) is None:
            return render("console/error.html", 404, status=404, reason="There is nothing here.")
    limit = int(form["limit"]) if form["limit"].isdigit() and len(form["limit"]) < 16 else -1
    try:
        costs.set_budget(gateway(), agency_id, form["service"], form["period"], limit,
                         actor=actor_label(g.actor))
    except GatewayError as exc:
        return _page(agency_id, 422, error=_(exc.message), problems=exc.fields or {},
                     form=form)
    flash(_("Budget saved."), "success")
    return redirect(url_for("console.agency_budgets", agency_id=agency_id))


def _decide(request_id: str, operation, done: str):
    with gateway().db.read() as session:
        # another agency's request: the same 404 as an unknown id (NotFound)
        agency_id = agency_actor.find_request(session, g.actor, request_id).agency_id
    try:
        operation(gateway(), request_id, actor_label(g.actor))
    except GatewayError as exc:
        flash(_(exc.message), "error")
    else:
        flash(_(done), "success")
    if request.form.get("back") == "budgets" and agency_id:
        return redirect(url_for("console.agency_budgets", agency_id=agency_id))
    return redirect(url_for("console.request_detail", request_id=request_id))


@bp.route("/requests/<request_id>/release", methods=["POST"])
@requires("console:budgets:decide")
def release_held_request(request_id: str):
    return _decide(request_id, release_held, N_("Released: the request is being dispatched."))


@bp.route("/requests/<request_id>/refuse", methods=["POST"])
@requires("console:budgets:decide")
def refuse_held_request(request_id: str):
    return _decide(request_id, refuse_held, N_("Refused: the request will not be delivered."))
