"""Requests: search and filter, one request's whole timeline, cancel and retry dispatch.

What an agency's own staff see is scoped in one place, ``agency_actor.py``: every query here
goes through it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from flask import abort, current_app, flash, g, redirect, request, url_for
from sqlalchemy import or_, select

from ... import proofs
from ...errors import GatewayError, Invalid
from ...events import actor_label
from ...keys import KEY_TYPES
from ...models import (
    Agency,
    AuditRecord,
    CallbackDelivery,
    CourierAttempt,
    Notice,
    ServiceRequest,
    StatusEvent,
)
from ...operations import RETRYABLE, cancel_request, retry_dispatch
from ...records import delivery_time, encode_cursor, newest_first_after, pin_to_agency
from ...statuses import Status
from .. import agency_actor, audit, bp, can, gateway, render, requires, timeline
from ..i18n import N_, service_title
from ..i18n import gettext as _
from ..masking import flatten, masked
from .messages import notice_rows

PAGE_SIZE = 50
#: what a proof image's state and failure (``gateway.proofs``) say on the request's page
PROOF_WORDS = {"stored": N_("stored"), "pending": N_("pending"), "failed": N_("failed"),
               "expired": N_("the courier's link had expired"),
               "refused": N_("not from a host this courier's proofs may come from"),
               "not_an_image": N_("not an image"), "too_large": N_("too large"),
               "unreachable": N_("the courier's host did not answer"),
               "purged": N_("Removed after the retention period.")}
FILTERS = ("service", "status", "agency", "key_type", "provider", "reference", "since",
           "until")


def _day_start(text: str | None) -> datetime | None:
    """A ``YYYY-MM-DD`` date, read as the start of that day in the region's zone (UTC)."""
    try:
        day = date.fromisoformat(text or "")
    except ValueError:
        return None
    return gateway().region.day(day)[0]


def _search(args, cursor: str | None):
    query = agency_actor.scope(select(ServiceRequest, Agency.name).join(
        Agency, Agency.id == ServiceRequest.agency_id), g.actor)
    if args.get("service"):
        query = query.where(ServiceRequest.service == args["service"])
    if args.get("status"):
        query = query.where(ServiceRequest.status == args["status"])
    if args.get("agency"):
        query = query.where(ServiceRequest.agency_id == args["agency"])
    if args.get("key_type"):    # admins see both worlds; each row says which it is
        query = query.where(ServiceRequest.key_type == args["key_type"])
    if args.get("provider"):
        query = query.where(ServiceRequest.provider == args["provider"])
    if args.get("reference"):
        text = args["reference"].strip()
        query = query.where(or_(ServiceRequest.external_reference == text,
                                ServiceRequest.id == text,
                                ServiceRequest.provider_reference == text))
    since, until = _day_start(args.get("since")), _day_start(args.get("until"))
    if since:
        query = query.where(ServiceRequest.created_at >= since)
    if until:
        query = query.where(ServiceRequest.created_at < until + timedelta(days=1))
    try:
        query = newest_first_after(query, cursor)
    except Invalid:             # a mangled cursor in a link: start from the newest
        query = newest_first_after(query, None)
    with gateway().db.read() as session:
        rows = session.execute(query.limit(PAGE_SIZE + 1)).all()
        session.expunge_all()
    next_cursor = encode_cursor(rows[PAGE_SIZE - 1][0]) if len(rows) > PAGE_SIZE else None
    return rows[:PAGE_SIZE], next_cursor


@bp.route("/requests")
@requires("console:requests:read")
def requests():
    args = {name: request.args.get(name, "").strip() for name in FILTERS}
    own_agency = agency_actor.is_agency(g.actor)
    if own_agency:              # one agency, one world: nothing to choose
        args["agency"] = args["key_type"] = ""
    rows, next_cursor = _search(args, request.args.get("cursor"))
    with gateway().db.read() as session:
        agencies = [] if own_agency else session.execute(
            select(Agency.id, Agency.name).order_by(Agency.name)).all()
    return render("console/requests.html", rows=rows, args=args, next_cursor=next_cursor,
                  agencies=agencies, services=sorted(gateway().services),
                  key_types=() if own_agency else KEY_TYPES, own_agency=own_agency,
                  new_request_services=_services_to_request(),
                  providers=sorted(gateway().courier_configs),
                  statuses=[status.value for status in Status])


def _services_to_request() -> list:
    """The services this console user may make a request to by form: (name, title)."""
    if not can("console:requests:create") or not agency_actor.is_agency(g.actor):
        return []
    gw = gateway()
    allowed = agency_actor.as_agency(gw, g.actor)["services"]
    return [(name, service_title(service))
            for name, service in sorted(gw.enabled_services().items()) if name in allowed]


def _story(session, record: ServiceRequest):
    events = session.scalars(select(StatusEvent).where(StatusEvent.request_id == record.id)
                             .order_by(StatusEvent.id)).all()
    attempts = session.scalars(select(CourierAttempt)
                               .where(CourierAttempt.request_id == record.id)).all()
    callbacks = session.scalars(select(CallbackDelivery)
                                .where(CallbackDelivery.request_id == record.id)).all()
    # the audit trail is the office's: an agency's own people see the request's story as
    # its API sees it (status events, attempts, callbacks), not who in the office read it
    records = [] if agency_actor.is_agency(g.actor) else session.scalars(
        select(AuditRecord).where(AuditRecord.target == f"request:{record.id}")
        .order_by(AuditRecord.seq).limit(500)).all()
    return timeline.build(events, attempts, callbacks, records), attempts


@bp.route("/requests/<request_id>")
@requires("console:requests:read")
def request_detail(request_id: str):
    gw = gateway()
    show_personal = request.args.get("personal") == "1" and can("console:requests:personal")
    with gw.db.read() as session:
        record = agency_actor.find_request(session, g.actor, request_id)
        agency = session.get(Agency, record.agency_id)
        story, attempts = _story(session, record)
        notices = notice_rows(session, [(n, record.service, agency.name if agency else "")
                                        for n in session.scalars(
                                            select(Notice).where(Notice.request_id == record.id)
                                            .order_by(Notice.created_at))])
        payload = gw.vault.open(record.payload_ciphertext) if record.payload_ciphertext \
            else None
        # the PIN to hand to the citizen: the agency's own people see it, as its key does
        pin = gw.vault.open(record.delivery_pin_ciphertext) \
            if record.delivery_pin_ciphertext and agency_actor.is_agency(g.actor) \
            and pin_to_agency(gw, record) else None
        # the public tracking link (a bearer token): for the agency's people to hand over, and
        # for whoever may read the citizen's details
        tracking_url = gw.links.tracking_url(record) \
            if agency_actor.is_agency(g.actor) or can("console:requests:personal") else None
        delivered_at = delivery_time(session, record)
        proof_images = proofs.listing(session, record.id)
        session.expunge_all()
    if payload is not None and show_personal:
        with gw.db.write() as session:   # reading personal data is itself a fact to audit
            audit(session, "request.personal_data.read", f"request:{record.id}")
    shown = flatten(payload if show_personal else masked(payload)) if payload else []
    status = Status(record.status)
    return render("console/request_detail.html", record=record, agency=agency,
                  story=story, attempts=attempts, personal=shown,
                  show_personal=show_personal, purged=record.purged_at is not None,
                  pin=pin, tracking_url=tracking_url, notices=notices,
                  may_cancel=not status.terminal and can("console:requests:act"),
                  may_retry=(status in RETRYABLE and record.provider is None
                             and record.pending_job in (None, "dispatch")
                             and can("console:requests:act")),
                  held=status == Status.HELD_FOR_BUDGET,
                  live=not status.terminal and status != Status.HELD_FOR_BUDGET,
                  delivered_at=delivered_at, proof_images=proof_images, proof_words=PROOF_WORDS)


@bp.route("/requests/<request_id>/proof/<index>")
@requires("console:requests:personal")
def proof_image(request_id: str, index: str):
    """One proof-of-delivery image, for the request's page (a photo of a doorstep is
    personal data: roles that may read personal data only, each reading audited)."""
    gw = gateway()
    if not (index.isascii() and index.isdigit()) or len(index) > 5:
        abort(404)
    with gw.db.read() as session:
        found = proofs.image(session, gw.vault, request_id, int(index))
    if found is None:
        abort(404)
    with gw.db.write() as session:
        audit(session, "request.proof_image.read", f"request:{request_id}", index=int(index))
    content_type, body = found
    response = current_app.response_class(body, mimetype=content_type)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _act(request_id: str, operation, done_message: str):
    try:
        operation(gateway(), request_id, actor_label(g.actor), g.get("correlation_id"))
    except GatewayError as exc:
        flash(_(exc.message), "error")
    else:
        flash(_(done_message), "success")
    return redirect(url_for("console.request_detail", request_id=request_id))


@bp.route("/requests/<request_id>/cancel", methods=["POST"])
@requires("console:requests:act")
def cancel(request_id: str):
    def operation(gw, rid, actor, correlation_id):
        cancel_request(gw, rid, actor, correlation_id, reason="cancelled by an operator")

    return _act(request_id, operation, N_("Cancellation requested."))


@bp.route("/requests/<request_id>/retry", methods=["POST"])
@requires("console:requests:act")
def retry(request_id: str):
    return _act(request_id, retry_dispatch, N_("Dispatch asked for again."))
