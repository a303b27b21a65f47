"""Messages: every notice sent to citizens (``gateway.notices``), filtered by status,
channel, template, service and period, with the tries on each channel.

The number a notice went to is shown masked (its country code, first digits and last
three), never whole, and no parameter of a template (a first name, a PIN) is opened. An
agency's own people see only their agency's, in their key type's world: the query goes
through ``agency_actor.py`` like every list of requests.
"""

from __future__ import annotations

from datetime import date, timedelta

from flask import g, request
from sqlalchemy import select

from ...keys import KEY_TYPES
from ...models import Agency, Notice, ServiceRequest
from ...settings import NOTICE_KINDS
from .. import agency_actor, bp, gateway, render, requires
from ..i18n import N_
from ..masking import MASK

#: what the templates and states are called on the page (``_(kind)``, ``_(status)``)
LABELS = (N_("accepted"), N_("courier_assigned"), N_("pin"), N_("delivered"), N_("failed"),
          N_("queued"), N_("held"), N_("sending"), N_("sent"), N_("read"), N_("suppressed"),
          N_("fell_back"))

PAGE_SIZE = 200
FILTERS = ("status", "channel", "kind", "service", "agency", "key_type", "since", "until")
STATUSES = ("queued", "held", "sending", "sent", "delivered", "read", "failed", "suppressed")
CHANNELS = ("whatsapp", "sms")


def mask_phone(phone: str | None) -> str:
    """``+6281234567890`` -> ``+6281••••••890``: enough to tell two numbers apart on a call
    with the citizen, not enough to call them."""
    if not phone or len(phone) < 8:
        return MASK * 4
    return f"{phone[:5]}{MASK * (len(phone) - 8)}{phone[-3:]}"


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text or "")
    except ValueError:
        return None


def _query(args):
    query = agency_actor.scope(
        select(Notice, ServiceRequest.service, Agency.name)
        .join(ServiceRequest, ServiceRequest.id == Notice.request_id)
        .join(Agency, Agency.id == ServiceRequest.agency_id), g.actor)
    if args["status"] in STATUSES:
        query = query.where(Notice.status == args["status"])
    if args["channel"] in CHANNELS:
        query = query.where(Notice.channel == args["channel"])
    if args["kind"] in NOTICE_KINDS:
        query = query.where(Notice.kind == args["kind"])
    if args["service"]:
        query = query.where(ServiceRequest.service == args["service"])
    if args["agency"]:
        query = query.where(ServiceRequest.agency_id == args["agency"])
    if args["key_type"] in KEY_TYPES:
        query = query.where(Notice.key_type == args["key_type"])
    region = gateway().region
    since, until = _day(args["since"]), _day(args["until"])
    if since:
        query = query.where(Notice.created_at >= region.day(since)[0])
    if until:
        query = query.where(Notice.created_at < region.day(until + timedelta(days=1))[0])
    return query.order_by(Notice.created_at.desc(), Notice.id.desc()).limit(PAGE_SIZE)


def notice_rows(session, rows) -> list[dict]:
    """What the page shows of each notice: no parameter, the number masked."""
    vault = gateway().vault
    out = []
    for notice, service, agency in rows:
        out.append({"notice": notice, "service": service, "agency": agency,
                    "to": mask_phone(vault.open(notice.to_ciphertext)),
                    "tries": [(m.channel, m.status, m.late_status, m.error)
                              for m in notice.messages]})
    return out


@bp.route("/messages")
@requires("console:messages:read")
def messages():
    args = {name: request.args.get(name, "").strip()[:64] for name in FILTERS}
    own_agency = agency_actor.is_agency(g.actor)
    if own_agency:
        args["agency"] = args["key_type"] = ""
    gw = gateway()
    with gw.db.read() as session:
        shown = notice_rows(session, session.execute(_query(args)).all())
        agencies = [] if own_agency else session.execute(
            select(Agency.id, Agency.name).order_by(Agency.name)).all()
    return render("console/messages.html", rows=shown, args=args, agencies=agencies,
                  services=sorted(gw.services), statuses=STATUSES, channels=CHANNELS,
                  kinds=NOTICE_KINDS, key_types=() if own_agency else KEY_TYPES,
                  page_size=PAGE_SIZE)
