"""GrabExpress (Delivery API v1) payloads and statuses: pure functions, no I/O.

Field names, endpoints and statuses follow the public integrations collected in the
project's courier reference (section 3): ``POST /v1/deliveries`` with our reference in
``merchantOrderID``, ``sender``/``recipient`` with phones in E.164 without the plus sign,
``origin``/``destination`` with ``coordinates`` to six decimals, ``packages[]`` with
``dimensions`` in centimetres and grams, cash on delivery as ``paymentMethod: CASH`` with
``cashOnDelivery.amount``, delivery ids like ``IN-2-0BTPB1C1G8IL6W72ZHK8``. Grab shows the
driver only the sender's ``instruction`` (the recipient's is documented as unused), so every
note for the driver goes there (Grab's Create Delivery page, as transcribed in the public
research note the reference cites: ``docs/couriers.md``). Webhooks carry no event id: a
report is keyed by a digest of (``deliveryID``, ``status``, ``timestamp``). Grab spells the
cancelled status ``CANCELED`` in the details API and ``CANCELLED`` in webhooks; both are
mapped. ``FAILED`` means "no driver" when its ``failedReason`` starts with ``6|``, and a
failure otherwise.

What a driver sees (package name and description, the instructions) is built only from the
neutral order, whose package description is already a masked label: never drug names.
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
from .. import Booking, ProviderEvent, Quote

#: how this provider writes a phone number (``gateway.phones.DIALECTS``)
DIALECT = "grabexpress"

#: Every status GrabExpress is known to send, mapped; ``None`` means "noted, no change".
STATUS_MAP: dict[str, Status | None] = {
    "QUEUEING": Status.BOOKED,              # scheduled, waiting for its pickup window
    "ALLOCATING": Status.BOOKED,            # finding a driver
    "PENDING_PICKUP": Status.DRIVER_ASSIGNED,
    "PICKING_UP": Status.DRIVER_ASSIGNED,   # driver on the way to the pickup
    "PENDING_DROP_OFF": Status.PICKED_UP,   # parcel collected, on the way to the recipient
    "IN_DELIVERY": Status.PICKED_UP,        # driver at the recipient
    "COMPLETED": Status.DELIVERED,
    "IN_RETURN": None,                      # drop-off failed, coming back (RETURNED follows)
    "RETURNED": Status.RETURNED,
    "CANCELED": Status.CANCELLED,           # the details API's spelling
    "CANCELLED": Status.CANCELLED,          # the webhook's spelling
    "FAILED": Status.FAILED,                # SLA exceeded, driver or Grab ops cancelled
}
#: the ``failedReason`` code of an order that found no driver (``6|Could not find driver``)
NO_DRIVER_REASON_CODE = "6"

#: the OAuth2 scope of the Delivery API
SCOPE = "grab_express.partner_deliveries"
QUOTES_PATH = "/v1/deliveries/quotes"
#: the longest ``sender.instruction`` Grab takes
INSTRUCTION_MAX = 1000
#: Grab's ``codType`` values
COD_TYPES = ("REGULAR", "ADVANCED")
DELIVERIES_PATH = "/v1/deliveries"


def delivery_path(delivery_id: str) -> str:
    return f"{DELIVERIES_PATH}/{quote(delivery_id, safe='')}"


def merchant_order_path(reference: str) -> str:
    return f"/v1/merchant/deliveries/{quote(reference, safe='')}"


def token_request(client_id: str, client_secret: str) -> dict[str, str]:
    """The body of the OAuth2 client-credentials token call."""
    return {"client_id": client_id, "client_secret": client_secret,
            "grant_type": "client_credentials", "scope": SCOPE}


def map_status(raw: str, failed_reason: str | None = None) -> Status | None:
    """Our status for a GrabExpress status; unknown names map to None (noted, never dropped).

    ``FAILED`` with a ``6|...`` reason is "no driver" (a failover), any other ``FAILED`` a
    failure.
    """
    raw = (raw or "").strip().upper()
    if raw == "FAILED" and str(failed_reason or "").split("|", 1)[0].strip() \
            == NO_DRIVER_REASON_CODE:
        return Status.NO_DRIVER
    return STATUS_MAP.get(raw)


def location(place) -> dict[str, Any]:
    return {"address": place.address,
            "coordinates": {"latitude": round(place.lat, 6), "longitude": round(place.lng, 6)}}


def person(place, *, sms: bool, instruction: str = "") -> dict[str, Any]:
    """A ``sender`` or ``recipient``: the contact's name and phone, and the ``instruction``.

    The whole name goes in ``firstName`` (many Indonesian names are one word).
    """
    return {"firstName": place.contact.name,
            "phone": phones.written(place.contact.phone, DIALECT),
            "smsEnabled": sms, "instruction": instruction}


def driver_instruction(order) -> str:
    """What the driver is told, in the one field Grab shows the driver: ``sender.instruction``
    ("shown to driver at pickup", at most 1000 characters; ``recipient.instruction`` is
    documented as currently unused, so a note put there reaches no one).

    The pickup's note as it is, then the drop-off's note after the drop-off's address (which
    says, in any language, which place the note is about); cut to Grab's limit.
    """
    parts = [order.pickup.note or ""]
    dropoff = order.dropoffs[0]
    if dropoff.note:
        parts.append(f"{dropoff.address}: {dropoff.note}")
    return "\n".join(part for part in parts if part)[:INSTRUCTION_MAX]


def packages(order) -> list[dict[str, Any]]:
    """The one package of ``order``. Grab requires all four dimensions; a zero means "not
    given" (as in Grab's own samples)."""
    package = order.package
    return [{
        "name": package.description,
        "description": package.description,
        "quantity": package.quantity,
        "price": package.declared_value or 0,
        "dimensions": {"height": package.height_cm or 0, "width": package.width_cm or 0,
                       "depth": package.length_cm or 0, "weight": package.weight_grams or 0},
    }]


def payment(order, cod_type: str | None = None) -> dict[str, Any]:
    """How the order is paid: cash on delivery is Grab's ``CASH`` payment method with the
    amount the driver collects in ``cashOnDelivery.amount`` (and the entry's ``codType``, if
    its contract names one); anything else is ``CASHLESS``, the default. The sender pays the
    delivery fee either way (``payer: SENDER``; Grab refuses ``RECIPIENT`` with
    ``CASHLESS``)."""
    if not order.cash_on_delivery:
        return {"paymentMethod": "CASHLESS"}
    paid: dict[str, Any] = {"paymentMethod": "CASH",
                            "cashOnDelivery": {"amount": order.cash_on_delivery}}
    if cod_type:
        paid["codType"] = cod_type
    return paid


def quote_payload(order, *, service_type: str = "INSTANT", vehicle_type: str = "BIKE",
                  cod_type: str | None = None) -> dict[str, Any]:
    """The body of ``POST /v1/deliveries/quotes`` for a one-drop ``DeliveryOrder``."""
    return {
        "serviceType": service_type,
        "vehicleType": vehicle_type,
        "packages": packages(order),
        "origin": location(order.pickup),
        "destination": location(order.dropoffs[0]),
        **payment(order, cod_type),
    }


def booking_payload(order, reference: str, *, service_type: str = "INSTANT",
                    vehicle_type: str = "BIKE", cod_type: str | None = None) -> dict[str, Any]:
    """The body of ``POST /v1/deliveries``: the quote fields, our ``reference`` as
    ``merchantOrderID``, the sender (pickup contact, with every note for the driver) and the
    recipient (drop-off contact, told by SMS when the parcel is picked up)."""
    return {
        "merchantOrderID": reference,
        **quote_payload(order, service_type=service_type, vehicle_type=vehicle_type,
                        cod_type=cod_type),
        "payer": "SENDER",
        "sender": person(order.pickup, sms=False, instruction=driver_instruction(order)),
        "recipient": person(order.dropoffs[0], sms=True),
    }


def error_text(body: Any) -> str | None:
    """The business message of an error answer (``{target, reason, message}``), kept raw."""
    if isinstance(body, Mapping):
        text = body.get("message") or body.get("reason") or body.get("error")
        return str(text) if text else None
    return None


def parse_quote(instance: str, body: Mapping[str, Any], service_type: str) -> Quote:
    """The quote for ``service_type`` (or the first one) of a quotes answer."""
    quotes = body.get("quotes") or []
    chosen = next((q for q in quotes
                   if ((q.get("service") or {}).get("type") or "").upper() == service_type),
                  quotes[0] if quotes else None)
    if chosen is None:
        return Quote(courier=instance, price=None, serviceable=False)
    amount, distance = chosen.get("amount"), chosen.get("distance")
    dropoff = _iso_when((chosen.get("estimatedTimeline") or {}).get("dropoff"))
    minutes = None
    if dropoff is not None:
        minutes = max(0, round((dropoff - datetime.now(UTC)).total_seconds() / 60))
    return Quote(courier=instance, price=round(amount) if amount is not None else None,
                 currency=(chosen.get("currency") or {}).get("code") or "IDR",
                 distance_km=distance / 1000 if distance is not None else None,
                 duration_minutes=minutes)


def parse_booking(instance: str, body: Mapping[str, Any]) -> Booking:
    """The answer to a create: ``deliveryID`` and the first status."""
    raw = str(body.get("status") or "ALLOCATING")
    status = map_status(raw)
    return Booking(provider=instance, provider_reference=str(body["deliveryID"]), raw_status=raw,
                   status=status if status in (Status.BOOKED, Status.DRIVER_ASSIGNED,
                                               Status.PICKED_UP) else Status.BOOKED)


def _iso_when(value) -> datetime | None:
    """An ISO 8601 time (``estimatedTimeline``'s ``2026-11-01T10:00:00Z``), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _when(epoch_seconds) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(epoch_seconds), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _details(status: Status | None, failed_reason, receiver_name, photo_url) -> dict:
    """The failure reason of a failed order, or the proof of a delivered one (the receiver's
    name and the drop-off photo link, which Grab signs for about two hours)."""
    if status in (Status.FAILED, Status.NO_DRIVER) and failed_reason:
        return {"failed_reason": str(failed_reason)}
    if status == Status.DELIVERED and (receiver_name or photo_url):
        return {"proof": {"receiver_name": receiver_name or None,
                          "photo_url": photo_url or None}}
    return {}


def _courier(person, vehicle_key: str | None = None) -> dict:
    """Who is coming: the details API's ``courier{name, vehicle{licensePlate}}`` or the
    webhook's ``driver{name, licensePlate}`` (courier reference, section 3.4). Grab gives no
    estimated arrival in either (only quotes carry ``estimatedTimeline``)."""
    if not isinstance(person, Mapping):
        return {}
    holder = person.get(vehicle_key) if vehicle_key else person
    plate = holder.get("licensePlate") if isinstance(holder, Mapping) else None
    name = person.get("name")
    return {"courier_name": name.strip() or None if isinstance(name, str) else None,
            "vehicle_plate": plate.strip() or None if isinstance(plate, str) else None}


def _price(quote) -> dict[str, Any]:
    """The delivery's ``quote`` (``amount`` in ``currency``, as in the quotes answer) as event
    details ``{"price": int, "currency": ...}``, or nothing."""
    if not isinstance(quote, dict):
        return {}
    try:
        amount = round(float(quote.get("amount")))
    except (TypeError, ValueError, OverflowError):
        return {}
    currency = (quote.get("currency") or {}).get("code") if isinstance(
        quote.get("currency"), dict) else None
    return {"price": amount, "currency": str(currency or "IDR")[:3]} \
        if 0 <= amount < 10**12 else {}


def parse_status(body: Mapping[str, Any]) -> ProviderEvent:
    """A ``GET /v1/deliveries/<id>`` answer as a report (one key per delivery and status, so
    polling the same status twice is a duplicate)."""
    raw = str(body.get("status") or "")
    delivery_id = str(body.get("deliveryID") or "")
    failed_reason = (body.get("advanceInfo") or {}).get("failedReason")
    status = map_status(raw, failed_reason)
    return ProviderEvent(event_key=f"status:{delivery_id}:{raw}", provider_reference=delivery_id,
                         our_reference=body.get("merchantOrderID"), raw_status=raw,
                         status=status, details={**_details(status, failed_reason, None, None),
                                                 **_price(body.get("quote"))},
                         proof_urls=proof_urls(status, body),
                         **_courier(body.get("courier"), "vehicle"))


def webhook_key(delivery_id: str, raw_status: str, timestamp) -> str:
    """Grab sends no event id: a report is the same report when these three are the same."""
    digest = hashlib.sha256(json.dumps([delivery_id, raw_status, str(timestamp)]).encode())
    return f"grab:{digest.hexdigest()}"


def parse_webhook(raw_body: bytes) -> ProviderEvent:
    """A webhook body as a report.

    :raises ValueError: when it is not a GrabExpress delivery update
    """
    body = json.loads(raw_body)
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    delivery_id, raw = body.get("deliveryID"), body.get("status")
    if not delivery_id or not raw or not isinstance(raw, str):
        raise ValueError("missing deliveryID or status")
    failed_reason = body.get("failedReason")
    status = map_status(raw, failed_reason)
    recipient = body.get("recipient") if isinstance(body.get("recipient"), dict) else {}
    return ProviderEvent(
        event_key=webhook_key(str(delivery_id), raw, body.get("timestamp")),
        provider_reference=str(delivery_id), our_reference=body.get("merchantOrderID"),
        raw_status=raw, status=status, occurred_at=_when(body.get("timestamp")),
        details={**_details(status, failed_reason, recipient.get("name"),
                            body.get("dropoffProofURL")), **_price(body.get("quote"))},
        proof_urls=proof_urls(status, body),
        **_courier(body.get("driver")))


def proof_urls(status: Status | None, body: Mapping[str, Any]) -> tuple[str, ...]:
    """The drop-off proof image of a completed delivery (``dropoffProofURL``, a link Grab
    signs for about two hours: courier reference section 3.4). The pickup and cancel proofs
    are not proof of delivery and are not kept."""
    url = body.get("dropoffProofURL")
    if status == Status.DELIVERED and isinstance(url, str) and url:
        return (url,)
    return ()
