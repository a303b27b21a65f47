"""The tracking page ``/t/<token>``: where the citizen's request is, in the region's time.

It shows the status and its history, the courier's first name and plate while the courier is
on the way, the estimated arrival when the provider gives one, and the sending office's name
and phone. It never shows the address, the items, the patient's or recipient's name or
anything else of the request's body: the only personal data it reads is the pickup contact's
phone of a delivery (the office's), through the service's own order.
"""

from __future__ import annotations

import logging

from sqlalchemy import select

from ..gate import public
from ..models import Agency, StatusEvent
from ..statuses import TERMINAL, Status
from . import texts
from .common import bp, find, gateway, not_found, page

log = logging.getLogger(__name__)

#: while the courier is on the way: the courier's first name, plate and ETA are shown
EN_ROUTE = frozenset({str(Status.DRIVER_ASSIGNED), str(Status.PICKED_UP)})
TERMINAL_STATUSES = frozenset(str(s) for s in TERMINAL)
#: how often the page of a request under way reloads itself (within the rate limit)
REFRESH_SECONDS = 60


def local(moment):
    """``(text, ISO 8601 with offset)`` of a UTC time on the region's clock."""
    region = gateway().region
    here = region.local(moment)
    return f"{here:%d-%m-%Y %H:%M} {region.zone_label(moment)}", here.isoformat(
        timespec="minutes")


def office_phone(record) -> str | None:
    """The phone of the place a delivery leaves from (the puskesmas, the office), as the
    service's order names it; None for rides (their pickup is the passenger) or a request
    whose personal data was purged. Only the phone is taken from the order."""
    gw = gateway()
    service = gw.services.get(record.service)
    if service is None or not record.payload_ciphertext:
        return None
    try:
        order = service.build_order(gw.vault.open(record.payload_ciphertext),
                                    gw.service_configs.get(record.service, {}), "public")
    except Exception as exc:        # a page must not fail for want of a phone
        log.warning("tracking page: no office phone (%s)", type(exc).__name__)
        return None
    if getattr(order, "kind", None) != "delivery":
        return None
    return order.pickup.contact.phone or None


def service_title(record) -> str:
    service = gateway().services.get(record.service)
    if service is None:
        return record.service
    if texts.language() == "en":
        return service.title
    return (getattr(service, "titles", None) or {}).get(texts.language(), service.title)


@bp.get("/t/<token>")
@public
def tracking(token: str):
    """The tracking page (public: the token is the credential)."""
    with gateway().db.read() as session:
        record = find(session, token)
        if record is None:
            return not_found()
        events = session.scalars(select(StatusEvent).where(
            StatusEvent.request_id == record.id, StatusEvent.applied.is_(True))
            .order_by(StatusEvent.id)).all()
        agency = session.get(Agency, record.agency_id)
        history, last = [], None
        for event in events:
            if event.status == last:
                continue
            last = event.status
            text, iso = local(event.created_at)
            history.append({"status": event.status, "at": text, "iso": iso})
        en_route = record.status in EN_ROUTE
        courier = None
        if en_route and (record.courier_first_name or record.courier_plate):
            courier = {"name": record.courier_first_name, "plate": record.courier_plate}
        eta = local(record.courier_eta) if en_route and record.courier_eta else None
        context = {
            "token": token, "current": record.status, "history": list(reversed(history)),
            "courier": courier, "eta": eta, "office": agency.name if agency else "",
            "phone": office_phone(record), "service": service_title(record),
            "survey": record.status == str(Status.DELIVERED),
            # no script: the browser reloads the page while the request is under way
            "refresh": None if record.status in TERMINAL_STATUSES else REFRESH_SECONDS,
            "zone": gateway().region.zone_label()}
    return page("public/tracking.html", **context)
