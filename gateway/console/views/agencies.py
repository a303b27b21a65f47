"""Agencies: create one, choose its services, set its callback URL, issue and revoke keys.

A new key (and a new agency's callback secret) is shown once, on the page that answers the
form; it is never stored in clear, never put in a cookie, and cannot be shown again.
"""

from __future__ import annotations

from flask import flash, g, redirect, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ...agencies import (
    ROLES,
    create_agency,
    issue_key,
    reveal_callback_secret,
    revoke_key,
    update_agency,
)
from ...errors import GatewayError
from ...events import actor_label
from ...models import Agency, ApiKey
from .. import bp, gateway, render, requires
from ..i18n import gettext as _

KEY_TYPES = ("live", "test")


def _agencies():
    with gateway().db.read() as session:
        agencies = session.scalars(select(Agency).options(selectinload(Agency.keys))
                                   .order_by(Agency.name)).all()
        session.expunge_all()
    return agencies


def _list_page(status: int = 200, **context):
    return render("console/agencies.html", status, agencies=_agencies(),
                  services=sorted(gateway().services), roles=ROLES, key_types=KEY_TYPES,
                  form=context.pop("form", {}), **context)


@bp.route("/agencies")
@requires("console:agencies:read")
def agencies():
    return _list_page()


def _form_choices(form) -> dict:
    return {"name": form.get("name", "").strip(),
            "services": form.getlist("services"), "roles": form.getlist("roles"),
            "callback_url": form.get("callback_url", "").strip() or None,
            "key_type": form.get("key_type", "live"),
            "active": form.get("active") == "on"}


@bp.route("/agencies", methods=["POST"])
@requires("console:agencies:manage")
def create_agency_view():
    choices = _form_choices(request.form)
    if choices["key_type"] not in KEY_TYPES:
        choices["key_type"] = "live"
    actor = actor_label(g.actor)
    try:
        agency, key = create_agency(gateway(), choices["name"], choices["services"],
                                    choices["callback_url"], actor=actor,
                                    key_type=choices["key_type"], roles=choices["roles"])
        secret = reveal_callback_secret(gateway(), agency.id, actor=actor) \
            if choices["callback_url"] else None
    except GatewayError as exc:
        return _list_page(422, error=str(exc), form=choices)
    return _list_page(201, created=agency.name, new_key=key, callback_secret=secret)


def _detail_page(agency_id: str, status: int = 200, **context):
    with gateway().db.read() as session:
        agency = session.get(Agency, agency_id)
        if agency is None:
            return render("console/error.html", 404, status=404, reason="There is nothing here.")
        keys = session.scalars(select(ApiKey).where(ApiKey.agency_id == agency_id)
                               .order_by(ApiKey.created_at.desc())).all()
        session.expunge_all()
    return render("console/agency_detail.html", status, agency=agency, keys=keys,
                  services=sorted(gateway().services), roles=ROLES, key_types=KEY_TYPES,
                  **context)


@bp.route("/agencies/<agency_id>")
@requires("console:agencies:read")
def agency_detail(agency_id: str):
    return _detail_page(agency_id)


@bp.route("/agencies/<agency_id>", methods=["POST"])
@requires("console:agencies:manage")
def update_agency_view(agency_id: str):
    choices = _form_choices(request.form)
    try:
        update_agency(gateway(), agency_id, services=choices["services"],
                      roles=choices["roles"], callback_url=choices["callback_url"],
                      active=choices["active"], actor=actor_label(g.actor))
    except GatewayError as exc:
        return _detail_page(agency_id, 422, error=str(exc))
    flash(_("Agency saved."), "success")
    return redirect(url_for("console.agency_detail", agency_id=agency_id))


@bp.route("/agencies/<agency_id>/keys", methods=["POST"])
@requires("console:agencies:manage")
def issue_key_view(agency_id: str):
    key_type = request.form.get("key_type", "live")
    if key_type not in KEY_TYPES:
        return _detail_page(agency_id, 422, error=_("Choose a live or a test key."))
    try:
        key = issue_key(gateway(), agency_id, key_type, actor=actor_label(g.actor))
    except GatewayError as exc:
        return _detail_page(agency_id, 404, error=str(exc))
    return _detail_page(agency_id, 201, new_key=key)


@bp.route("/agencies/<agency_id>/keys/<prefix>/revoke", methods=["POST"])
@requires("console:agencies:manage")
def revoke_key_view(agency_id: str, prefix: str):
    with gateway().db.read() as session:
        owned = session.scalar(select(ApiKey.id).where(ApiKey.prefix == prefix,
                                                       ApiKey.agency_id == agency_id))
    if owned is None:
        return _detail_page(agency_id, 404, error=_("No such key for this agency."))
    revoke_key(gateway(), prefix, actor=actor_label(g.actor))
    flash(_("Key %(prefix)s revoked.", prefix=prefix), "success")
    return redirect(url_for("console.agency_detail", agency_id=agency_id))
