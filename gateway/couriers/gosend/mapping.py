"""GO-SEND (GoKilat partner API v10) payloads and statuses: pure functions, no I/O.

Field names, endpoints and statuses follow the public integrations collected in the
project's courier reference (section 2): ``Client-ID``/``Pass-Key`` headers, ``routes[]``
with ``originLatLong``/``destinationLatLong`` as ``"lat,lng"`` strings, phones as ``62...``,
our reference in ``storeOrderId``, order numbers like ``GK-11-170563``, and webhooks keyed by
``event_id`` with ``event_date`` in epoch milliseconds.

What a driver sees (``item``, the notes) is built only from the neutral order, whose package
description is already a sealed-package label: never drug names.
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
DIALECT = "gosend"

#: Every status GO-SEND is known to send, mapped; ``None`` means "noted, no change".
STATUS_MAP: dict[str, Status | None] = {
    "confirmed": Status.BOOKED,             # booking received, finding a driver
    "allocated": Status.DRIVER_ASSIGNED,    # driver found
    "out_for_pickup": Status.DRIVER_ASSIGNED,
    "picked": Status.PICKED_UP,
    "out_for_delivery": Status.PICKED_UP,
    "on_hold": None,                        # paused (recipient unreachable, weather)
    "delivered": Status.DELIVERED,
    "cancelled": Status.CANCELLED,
    "rejected": Status.RETURNED,            # drop-off failed; returned to the sender
    "no_driver": Status.NO_DRIVER,
}

BOOKING_PATH = "/gokilat/v10/booking"
PRICE_PATH = "/gokilat/v10/calculate/price"
CANCEL_PATH = "/gokilat/v10/booking/cancel"


def status_path(order_no: str) -> str:
    """The order number is GO-SEND's, not ours: one path segment whatever it holds."""
    return f"{BOOKING_PATH}/orderno/{quote(order_no, safe='')}"


def store_order_path(reference: str) -> str:
    return f"{BOOKING_PATH}/storeOrderId/{quote(reference, safe='')}"


def map_status(raw: str) -> Status | None:
    """Our status for a GO-SEND status; unknown names map to None (noted, never dropped)."""
    return STATUS_MAP.get((raw or "").strip().lower())


def latlong(place) -> str:
    return f"{place.lat:.6f},{place.lng:.6f}"


def booking_payload(order, reference: str, *, shipment_method: str = "Instant",
                    payment_type: int = 3) -> dict[str, Any]:
    """The body of ``POST /gokilat/v10/booking`` for a one-drop ``DeliveryOrder``."""
    pickup, dropoff = order.pickup, order.dropoffs[0]
    flags = ["SEGEL: jangan dibuka"]
    if order.cold_chain:
        flags.append("simpan dingin")
    return {
        "paymentType": payment_type,
        "deviceToken": "",
        "collection_location": "pickup",
        "shipment_method": shipment_method,
        "routes": [{
            "originName": pickup.contact.name,
            "originNote": pickup.note or "",
            "originContactName": pickup.contact.name,
            "originContactPhone": phones.written(pickup.contact.phone, DIALECT),
            "originLatLong": latlong(pickup),
            "originAddress": pickup.address,
            "destinationName": dropoff.contact.name,
            "destinationNote": dropoff.note or "",
            "destinationContactName": dropoff.contact.name,
            "destinationContactPhone": phones.written(dropoff.contact.phone, DIALECT),
            "destinationLatLong": latlong(dropoff),
            "destinationAddress": dropoff.address,
            "item": f"{order.package.description} ({', '.join(flags)})",
            "storeOrderId": reference,
            "insuranceDetails": {"applied": "false", "fee": "0", "product_description": "",
                                 "product_price": "0"},
        }],
    }


def price_query(order, payment_type: int = 3) -> dict[str, str]:
    return {"origin": latlong(order.pickup), "destination": latlong(order.dropoffs[0]),
            "paymentType": str(payment_type)}


def parse_quote(instance: str, body: Mapping[str, Any], shipment_method: str) -> Quote:
    entry = body.get(shipment_method) or {}
    price = (entry.get("price") or {}).get("total_price")
    return Quote(courier=instance, price=int(price) if price is not None else None,
                 distance_km=entry.get("distance"),
                 serviceable=bool(entry.get("serviceable")) and bool(entry.get("active", True)))


def parse_booking(instance: str, body: Mapping[str, Any]) -> Booking:
    """The answer to a create (``orderNo``) or to a lookup by ``storeOrderId``."""
    raw = str(body.get("status") or "confirmed")
    status = map_status(raw)
    return Booking(provider=instance, provider_reference=str(body["orderNo"]), raw_status=raw,
                   status=status if status in (Status.BOOKED, Status.DRIVER_ASSIGNED,
                                               Status.PICKED_UP) else Status.BOOKED)


def _text(value) -> str | None:
    """A driver's name or plate as GO-SEND gives it (``""`` before a driver is found)."""
    return value.strip() or None if isinstance(value, str) else None


def _when(epoch_ms) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(epoch_ms) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _proof(raw: str, receiver_name, photo_url) -> dict:
    """GO-SEND's proof of delivery (receiver name, a photo link when given), kept only for a
    delivered booking."""
    if map_status(raw) != Status.DELIVERED or not (receiver_name or photo_url):
        return {}
    return {"proof": {"receiver_name": receiver_name or None, "photo_url": photo_url or None}}


def _price(value) -> dict[str, Any]:
    """A report's price (GO-SEND's ``price`` in a webhook, ``totalPrice`` in a status
    answer, rupiah) as event details: ``{"price": int, "currency": "IDR"}``, or nothing."""
    try:
        amount = round(float(value))
    except (TypeError, ValueError, OverflowError):
        return {}
    return {"price": amount, "currency": "IDR"} if 0 <= amount < 10**12 else {}
def proof_urls(raw: str, body: Mapping[str, Any]) -> tuple[str, ...]:
    """The delivery photo link of a delivered booking, where GO-SEND gives one
    (``proofs.pod``, seen in one public client only: its format is unconfirmed, courier
    reference section 2.4 [U]; a link that is not a string is not read)."""
    pod = (body.get("proofs") or {}).get("pod") if isinstance(body.get("proofs"), dict) \
        else None
    if map_status(raw) == Status.DELIVERED and isinstance(pod, str) and pod:
        return (pod,)
    return ()


def parse_status(body: Mapping[str, Any]) -> ProviderEvent:
    """A ``GET .../orderno/<no>`` answer as a report (one key per order and status, so
    polling the same status twice is a duplicate)."""
    raw = str(body.get("status") or "")
    order_no = str(body.get("orderNo") or "")
    return ProviderEvent(event_key=f"status:{order_no}:{raw}", provider_reference=order_no,
                         our_reference=body.get("storeOrderId"), raw_status=raw,
                         status=map_status(raw),
                         details={**_proof(raw, body.get("receiverName"),
                                           (body.get("proofs") or {}).get("pod")),
                                  **_price(body.get("totalPrice"))},
                         courier_name=_text(body.get("driverName")),
                         vehicle_plate=_text(body.get("vehicleNumber")),
                         proof_urls=proof_urls(raw, body))


def parse_webhook(raw_body: bytes) -> ProviderEvent:
    """A webhook body as a report.

    :raises ValueError: when it is not a GO-SEND booking event
    """
    body = json.loads(raw_body)
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    order_no = body.get("entity_id") or body.get("booking_id")
    raw = body.get("status") or body.get("booking_status")
    if not order_no or not raw:
        raise ValueError("missing entity_id or status")
    key = body.get("event_id") or hashlib.sha256(raw_body).hexdigest()
    return ProviderEvent(event_key=str(key)[:128], provider_reference=str(order_no),
                         our_reference=body.get("store_order_id"), raw_status=str(raw),
                         status=map_status(str(raw)), occurred_at=_when(body.get("event_date")),
                         details={"type": body.get("type"),
                                  **_proof(str(raw), body.get("receiver_name"),
                                           (body.get("proofs") or {}).get("pod")),
                                  **_price(body.get("price"))},
                         courier_name=_text(body.get("driver_name")),
                         proof_urls=proof_urls(str(raw), body))
