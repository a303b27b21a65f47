"""The own-fleet dispatch board for the Gancang Aron staff, usable on a phone.

New bookings are assigned to a staff courier, marked picked up, and completed with the
recipient's delivery PIN; the rules are ``gateway.fleet``'s, as for the staff API.

In ``mode: live`` the board is the real dispatch office's: it shows and moves only bookings
of requests made with live keys (a test request is never offered to real staff). In sandbox
mode nothing is real, and the board shows every booking, test ones labelled.

Dispatchers see names, phones and addresses (others see them masked): each such look at the
board is audited, with who looked and whose requests were on it, as on the request page.
"""

from __future__ import annotations

from flask import flash, g, redirect, request, url_for

from ... import fleet as fleet_rules
from ...errors import GatewayError
from ...events import actor_label
from .. import audit, bp, can, gateway, render, requires
from ..i18n import N_
from ..i18n import gettext as _
from ..masking import masked

ACTIVE_STATES = ("new", "accepted", "picked_up")
STEP_DONE = {"accept": N_("Assigned."), "pickup": N_("Marked picked up."),
             "deliver": N_("Delivered.")}
STEP_DONE_OTHER = N_("Done.")


def _key_types():
    return ("live",) if gateway().settings["mode"] == "live" else None


@bp.route("/fleet")
@requires("console:fleet:read")
def fleet():
    jobs = fleet_rules.list_jobs(gateway(), states=ACTIVE_STATES, key_types=_key_types())
    if not can("console:fleet:act"):
        jobs = [{**job, "order": masked(job["order"])} for job in jobs]
    elif jobs:
        with gateway().db.write() as session:   # reading personal data is a fact to audit
            audit(session, "fleet.personal_data.read", "console:fleet",
                  requests=[job["request_id"] for job in jobs])
    columns = {state: [job for job in jobs if job["state"] == state] for state in ACTIVE_STATES}
    staff = sorted({job["staff_name"] for job in jobs if job["staff_name"]})
    return render("console/fleet.html", columns=columns, staff=staff)


@bp.route("/fleet/<job_id>/<step>", methods=["POST"])
@requires("console:fleet:act")
def fleet_step(job_id: str, step: str):
    staff_name = request.form.get("staff_name", "").strip()[:120] or None
    if step == "accept" and not staff_name:
        flash(_("Name the staff courier who takes this booking."), "error")
        return redirect(url_for("console.fleet"))
    try:
        fleet_rules.advance(gateway(), job_id, step, actor_label(g.actor),
                            staff_name=staff_name, pin=request.form.get("pin", "").strip(),
                            key_types=_key_types())
    except GatewayError as exc:
        flash(_(exc.message), "error")
    else:
        flash(_(STEP_DONE.get(step, STEP_DONE_OTHER)), "success")
    return redirect(url_for("console.fleet"))
