"""An agency's own console accounts: administrators add and remove any agency's staff; an
agency manager adds and removes its own agency's staff only (``agency_actor.py`` says whose),
and can neither make a manager nor touch an administrator's or another agency's account.

A manager's new staff see the manager's own world (key type): a test-world manager cannot
open the live world to anyone.
"""

from __future__ import annotations

from flask import abort, flash, g, redirect, request, url_for

from ...events import actor_label
from ...keys import KEY_TYPES
from ...models import AdminUser, Agency
from .. import agency_actor, bp, gateway, render, requires
from ..i18n import gettext as _
from ..roles import AGENCY_ROLES
from ..users import AdminUserError, agency_accounts, create_admin, deactivate_admin


def _agency_or_404(agency_id: str) -> Agency:
    with gateway().db.read() as session:
        agency = session.get(Agency, agency_id)
        if agency is None:
            abort(404)
        session.expunge(agency)
        return agency


def _allowed_agency(agency_id: str) -> Agency:
    """The agency whose staff the actor may manage; 403 for another agency's manager."""
    if not agency_actor.may_manage_staff_of(g.actor, agency_id):
        abort(403)
    return _agency_or_404(agency_id)


def _choices() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The roles and key types this actor may give."""
    if agency_actor.is_agency(g.actor):
        return ("agency_staff",), (g.actor["key_type"],)
    return AGENCY_ROLES, KEY_TYPES


def _page(agency: Agency, status: int = 200, **context):
    roles, key_types = _choices()
    return render("console/agency_staff.html", status, agency=agency,
                  accounts=agency_accounts(gateway(), agency.id), roles=roles,
                  key_types=key_types, form=context.pop("form", {}), **context)


@bp.route("/staff")
@requires("console:staff:own")
def my_staff():
    """A manager's own agency's staff (the menu's link; administrators go by the agency)."""
    return redirect(url_for("console.agency_staff", agency_id=g.actor["agency_id"]))


@bp.route("/agencies/<agency_id>/staff")
@requires("console:staff:manage")
def agency_staff(agency_id: str):
    return _page(_allowed_agency(agency_id))


@bp.route("/agencies/<agency_id>/staff", methods=["POST"])
@requires("console:staff:manage")
def create_staff(agency_id: str):
    agency = _allowed_agency(agency_id)
    roles, key_types = _choices()
    form = {"username": request.form.get("username", "").strip()[:64],
            "role": request.form.get("role", roles[0]),
            "key_type": request.form.get("key_type", key_types[0]),
            "language": request.form.get("language", "id")}
    if form["role"] not in roles or form["key_type"] not in key_types:
        abort(403)                  # a manager asking for more than it may give
    try:
        create_admin(gateway(), form["username"], request.form.get("password", ""),
                     form["role"], actor=actor_label(g.actor),
                     language=form["language"] if form["language"] in ("id", "en") else "id",
                     agency=agency.id, key_type=form["key_type"])
    except AdminUserError as exc:
        return _page(agency, 422, error=str(exc), form=form)
    return _page(agency, 201, created=form["username"])


@bp.route("/agencies/<agency_id>/staff/<user_id>/remove", methods=["POST"])
@requires("console:staff:manage")
def remove_staff(agency_id: str, user_id: str):
    agency = _allowed_agency(agency_id)
    with gateway().db.read() as session:
        user = session.get(AdminUser, user_id)
        target = (user.agency_id, user.role, user.active) if user is not None else None
    if target is None or not target[2]:
        abort(404)
    if agency_actor.is_agency(g.actor) and (target[0] != agency.id
                                            or target[1] != "agency_staff"
                                            or user_id == g.actor["user_id"]):
        abort(403)      # a manager removes its own agency's staff: no admin, manager, self
    if target[0] != agency.id:
        abort(404)                  # not an account of this agency
    deactivate_admin(gateway(), user_id, actor=actor_label(g.actor))
    flash(_("Account removed."), "success")
    return redirect(url_for("console.agency_staff", agency_id=agency.id))
