"""A new request by form, for an agency's own staff: one page per service, drawn from the
service's schema (``request_form.py``), submitted through the same intake as the API.

The form carries an idempotency key in a hidden field, made when the page is drawn: a
double click, a resent POST or a reload after submitting hands intake the same key and the
same body, so it answers with the request already made, never a second one. The request is
made as the agency (``agency_actor.as_agency``), in the world of the account's key type.
"""

from __future__ import annotations

import secrets

from flask import flash, g, redirect, request, url_for

from ... import intake
from ...error_status import status_of
from ...errors import GatewayError
from .. import agency_actor, bp, gateway, render, requires
from ..i18n import current_language, service_title
from ..i18n import gettext as _
from ..request_form import describe, paths, read_body, values_of


def _service(name: str):
    """The service, if this account's agency may use it (else the error page says why)."""
    gw = gateway()
    actor = agency_actor.as_agency(gw, g.actor)
    return actor, intake.service_for(gw, actor, name)


def _page(service, inputs, values, key, status=200, errors=None, problem=None):
    errors = errors or {}
    known = paths(inputs)
    elsewhere = {path: messages for path, messages in errors.items() if path not in known}
    tiles = gateway().settings["console"].get("map_tiles_url") or ""
    return render("console/request_form.html", status, service=service,
                  title=service_title(service), inputs=inputs, values=values,
                  idempotency_key=key, errors=errors, elsewhere=elsewhere, problem=problem,
                  map_tiles_url=tiles)


@bp.route("/services/<service_name>/new", methods=["GET", "POST"])
@requires("console:requests:create")
def new_request(service_name: str):
    gw = gateway()
    actor, service = _service(service_name)
    config = gw.service_configs.get(service.name, {})
    schema, language = service.request_schema(), current_language()
    if request.method == "GET":
        inputs = describe(schema, language, config)
        return _page(service, inputs, {}, secrets.token_urlsafe(24))
    form = request.form
    key = form.get("idempotency_key") or secrets.token_urlsafe(24)
    add_row = form.get("_add_row")
    if add_row:                     # "add a row": draw the form again, one row longer
        return _page(service, describe(schema, language, config, form, add_row=add_row),
                     form, key)
    inputs = describe(schema, language, config, form)
    body = read_body(inputs, form, gw.region.zone_name)
    try:
        accepted = intake.submit(gw, intake.NewRequest(
            actor=actor, service=service.name, body=body, idempotency_key=key,
            correlation_id=g.get("correlation_id")))
    except GatewayError as exc:
        values = values_of(body)
        return _page(service, describe(schema, language, config, values), values, key,
                     status=status_of(exc), errors=exc.fields or {},
                     problem=(exc.code, exc.message))
    if accepted.replayed:
        flash(_("This form was already sent: here is the request it made."), "success")
    else:
        flash(_("Request received."), "success")
    return redirect(url_for("console.request_detail", request_id=accepted.record.id))
