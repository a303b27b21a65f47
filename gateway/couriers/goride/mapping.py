"""GO-JEK rides (GoRide, GoCar): the provisional partner dialect, as pure functions, no I/O.

**Provisional: replace the dialect when GO-JEK documents its partner ride API.** GO-JEK's
partnership covers rides, but its partner ride-booking API is not public, so there is no
documentation to follow. What is here is an API *we* define, modelled on the GO-SEND partner
API's conventions (``gateway.couriers.gosend.mapping``): the same ``Client-ID``/``Pass-Key``
headers, our reference echoed back and searchable, coordinates as ``"lat,lng"``, phones as
``62...`` with no plus sign, and a webhook authenticated by the token we register. Its
simulator (``simulator.py`` beside this module) is the only thing that speaks it until the
partner documents arrive. Every provider-specific name (paths, headers, fields, statuses)
lives in this module, so replacing the dialect touches only this file and the simulator;
``adapter.py`` is transport.

The dialect (paths under the entry's ``base_url``; every call sends ``Client-ID`` and
``Pass-Key``; errors carry their text in an ``Error-Message`` header):

``POST /goride/v1/bookings``
    ``{serviceType: "GoRide"|"GoCar", pickup: PLACE, destination: PLACE, passengers: int,
    scheduledAt: ISO 8601 (UTC) | null, partnerReference: our reference}`` where PLACE is
    ``{name, address, latLong: "lat,lng", contactName, contactPhone: "62...", note}``.
    201 ``{bookingId: "GR-...", status: "searching" | "scheduled", partnerReference}``;
    400 malformed; 422 not serviceable or more passengers than one vehicle seats;
    401 bad credentials; 429 rate limited (``Retry-After``); 5xx.
``GET /goride/v1/bookings/{bookingId}``
    the booking: ``{bookingId, status, partnerReference, serviceType, passengers,
    scheduledAt, driverName, vehiclePlate}``; 404 when unknown.
``GET /goride/v1/bookings/partnerReference/{partnerReference}``
    the booking made under our reference (the latest if several); 404 when none.
``PUT /goride/v1/bookings/cancel``
    ``{bookingId}``; 200, or 422 when the booking can no longer be cancelled (on trip, ended).

Statuses: ``scheduled`` (waiting for a future ``scheduledAt``), ``searching``,
``driver_assigned``, ``driver_arrived``, ``on_trip``, ``completed``, ``cancelled``,
``no_driver``.

Webhooks, one per status change, POSTed with the registered token in the entry's
``webhook_header``: ``{event_id, event_date (epoch ms), booking_id, partner_reference,
status, driver_name, vehicle_plate}``.

What the driver sees is built only from the neutral ``RideOrder``: the lead visitor's name
and phone, the two addresses and coordinates, the party size and the time. The driver's name
and plate in a report go to the neutral report (the core keeps the first name only).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from ... import phones
from ...statuses import Status
from .. import Booking, ProviderEvent

#: how this provider writes a phone number (``gateway.phones.DIALECTS``)
DIALECT = "goride"

#: Every status of the dialect, mapped; ``None`` would mean "noted, no change".
STATUS_MAP: dict[str, Status | None] = {
    "scheduled": Status.BOOKED,             # accepted for a future pickup time
    "searching": Status.BOOKED,             # finding a driver now
    "driver_assigned": Status.DRIVER_ASSIGNED,
    "driver_arrived": Status.DRIVER_ASSIGNED,  # waiting at the pickup point
    "on_trip": Status.PICKED_UP,            # the visitor is on board
    "completed": Status.DELIVERED,
    "cancelled": Status.CANCELLED,
    "no_driver": Status.NO_DRIVER,
}

SERVICE_TYPES = ("GoRide", "GoCar")  # motorbike, car
DEFAULT_SERVICE_TYPE = "GoCar"
DEFAULT_WEBHOOK_HEADER = "X-Callback-Token"

BOOKINGS_PATH = "/goride/v1/bookings"
CANCEL_PATH = "/goride/v1/bookings/cancel"


def auth_headers(client_id: str, pass_key: str) -> dict[str, str]:
    """What every call sends: who we are and our key."""
    return {"Client-ID": client_id, "Pass-Key": pass_key, "Accept": "application/json"}


def booking_path(booking_id: str) -> str:
    return f"{BOOKINGS_PATH}/{quote(booking_id, safe='')}"


def reference_path(reference: str) -> str:
    return f"{BOOKINGS_PATH}/partnerReference/{quote(reference, safe='')}"


def cancel_body(booking_id: str) -> dict[str, str]:
    return {"bookingId": booking_id}


def map_status(raw: str) -> Status | None:
    """Our status for a ride status; unknown names map to None (noted, never dropped)."""
    return STATUS_MAP.get((raw or "").strip().lower())


def latlong(place) -> str:
    return f"{place.lat:.6f},{place.lng:.6f}"


def iso_utc(when: datetime | None) -> str | None:
    """``scheduledAt``: ISO 8601 in UTC to the second (``2026-03-01T01:00:00Z``), or None.
    A time without a zone is taken as UTC (the gateway keeps times in UTC)."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _place(place) -> dict[str, str]:
    return {
        # The order carries no place name; the first part of the address names it.
        "name": place.address.split(",")[0].strip(),
        "address": place.address,
        "latLong": latlong(place),
        "contactName": place.contact.name,
        "contactPhone": phones.written(place.contact.phone, DIALECT),
        "note": place.note or "",
    }


def booking_payload(order, reference: str, *, service_type: str = DEFAULT_SERVICE_TYPE
                    ) -> dict[str, Any]:
    """The body of ``POST /goride/v1/bookings`` for a ``RideOrder``."""
    return {
        "serviceType": service_type,
        "pickup": _place(order.pickup),
        "destination": _place(order.dropoff),
        "passengers": order.passengers,
        "scheduledAt": iso_utc(order.scheduled_at),
        "partnerReference": reference,
    }


def parse_booking(instance: str, body: Mapping[str, Any]) -> Booking:
    """The answer to a create, or to a lookup by our reference.

    :raises ValueError: when it names no booking
    """
    booking_id = body.get("bookingId") if isinstance(body, Mapping) else None
    if not booking_id:
        raise ValueError("no bookingId in the answer")
    raw = str(body.get("status") or "searching")
    status = map_status(raw)
    return Booking(provider=instance, provider_reference=str(booking_id), raw_status=raw,
                   status=status if status in (Status.BOOKED, Status.DRIVER_ASSIGNED,
                                               Status.PICKED_UP) else Status.BOOKED)


def parse_status(body: Mapping[str, Any]) -> ProviderEvent:
    """A ``GET /goride/v1/bookings/{bookingId}`` answer as a report (one key per booking and
    status, so polling the same status twice is a duplicate)."""
    raw = str(body.get("status") or "")
    booking_id = str(body.get("bookingId") or "")
    return ProviderEvent(event_key=f"status:{booking_id}:{raw}", provider_reference=booking_id,
                         our_reference=body.get("partnerReference"), raw_status=raw,
                         status=map_status(raw), courier_name=_text(body.get("driverName")),
                         vehicle_plate=_text(body.get("vehiclePlate")))


def _text(value) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _when(epoch_ms) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(epoch_ms) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def parse_webhook(raw_body: bytes) -> ProviderEvent:
    """A webhook body as a report, keyed by its ``event_id`` (or a digest of the body).

    :raises ValueError: when it is not a ride booking event
    """
    body = json.loads(raw_body)
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    booking_id, raw = body.get("booking_id"), body.get("status")
    if not booking_id or not raw:
        raise ValueError("missing booking_id or status")
    key = body.get("event_id") or hashlib.sha256(raw_body).hexdigest()
    return ProviderEvent(event_key=str(key)[:128], provider_reference=str(booking_id),
                         our_reference=body.get("partner_reference"), raw_status=str(raw),
                         status=map_status(str(raw)), occurred_at=_when(body.get("event_date")),
                         courier_name=_text(body.get("driver_name")),
                         vehicle_plate=_text(body.get("vehicle_plate")))
