"""Lalamove (API v3) payloads, signatures and statuses: pure functions, no I/O.

Field names, endpoints and statuses follow the public integrations collected in the
project's courier reference (section 4): every call is signed with
``Authorization: hmac <API_KEY>:<TIMESTAMP_MS>:<SIGNATURE>`` over
``"{timestamp}\\r\\n{METHOD}\\r\\n{path}\\r\\n\\r\\n{body}"`` and names its ``Market``; bodies
and answers are wrapped in ``{"data": ...}``, errors in ``{"errors": [{"id", "message"}]}``;
phones in E.164 with the plus sign (the reference names no other form).
A booking is two calls: a quotation (``quotationId``, its ``stops[].stopId``, valid about five
minutes) and an order that names the quotation and the stops. Order ids are 19-digit strings.
Webhooks carry their signature in the body, computed over the raw text of ``data``.

What a driver sees (the recipients' ``remarks``) is built only from the neutral order, whose
package description is already a sealed-package label: never drug names. Our reference goes
in ``metadata.client_reference``: Lalamove has no lookup by it, so the webhooks that echo it
are the only way back to a booking whose create answer was lost.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from ... import phones
from ...statuses import Status
from .. import Booking, ProviderEvent, Quote

#: how this provider writes a phone number (``gateway.phones.DIALECTS``)
DIALECT = "lalamove"

#: Every status Lalamove is known to send, mapped. It has no "en route to pickup" of its own.
STATUS_MAP: dict[str, Status | None] = {
    "ASSIGNING_DRIVER": Status.BOOKED,      # order placed, finding a driver
    "ON_GOING": Status.DRIVER_ASSIGNED,     # a driver accepted, on the way to the pickup
    "PICKED_UP": Status.PICKED_UP,
    "COMPLETED": Status.DELIVERED,
    "CANCELED": Status.CANCELLED,           # Lalamove's spelling
    "REJECTED": Status.NO_DRIVER,           # rejected twice by drivers; no longer broadcast
    "EXPIRED": Status.NO_DRIVER,            # no driver accepted in time
}

QUOTATIONS_PATH = "/v3/quotations"
#: ``PATCH`` with ``{"data": {"url"}}`` sets the webhook URL (webhook tutorial v1.4)
WEBHOOK_URL_PATH = "/v3/webhook"
ORDERS_PATH = "/v3/orders"
CITIES_PATH = "/v3/cities"

#: one pickup and at most this many drop-offs per order
MAX_DROPOFFS = 15
#: how long a quotation holds when the answer does not say (the documented ~5 minutes)
QUOTATION_VALIDITY = timedelta(minutes=5)
#: the error of an order placed with an expired or unknown quotation
STALE_QUOTATION = "ERR_INVALID_QUOTATION_ID"
#: the error of a cancellation Lalamove no longer allows (a driver is on it)
CANCELLATION_FORBIDDEN = "ERR_CANCELLATION_FORBIDDEN"


def order_path(order_id: str) -> str:
    return f"{ORDERS_PATH}/{quote(order_id, safe='')}"


def driver_path(order_id: str, driver_id: str) -> str:
    """``GET /v3/orders/{orderId}/drivers/{driverId}``: the driver of an order (courier
    reference section 4: name, phone, plateNumber, photo, location). Order details and
    webhooks carry only ``driverId``."""
    return f"{order_path(order_id)}/drivers/{quote(driver_id, safe='')}"


def driver_of(order_body: Any) -> str | None:
    """The ``driverId`` of an order answer, or None (none assigned: Lalamove sends "")."""
    try:
        driver_id = unwrap(order_body).get("driverId")
    except (ValueError, AttributeError):
        return None
    return str(driver_id) if isinstance(driver_id, str | int) and str(driver_id) else None


def parse_driver(body: Any) -> dict:
    """A driver answer as the neutral report's ``courier_name`` and ``vehicle_plate``."""
    try:
        driver = unwrap(body)
    except ValueError:
        return {}
    name, plate = driver.get("name"), driver.get("plateNumber")
    return {"courier_name": name.strip() or None if isinstance(name, str) else None,
            "vehicle_plate": plate.strip() or None if isinstance(plate, str) else None}


def map_status(raw: str) -> Status | None:
    """Our status for a Lalamove status; unknown names map to None (noted, never dropped)."""
    return STATUS_MAP.get((raw or "").strip().upper())


# -- request signing -------------------------------------------------------------------------
def _hmac_hex(secret: str, text: str) -> str:
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def signature(secret: str, timestamp_ms: int | str, method: str, path: str,
              body_text: str) -> str:
    """Hex HMAC-SHA256 of ``"{timestamp}\\r\\n{METHOD}\\r\\n{path}\\r\\n\\r\\n{body}"``.

    ``body_text`` must be exactly the text sent (``""`` for GET and DELETE): serialise once,
    sign that, send that.
    """
    return _hmac_hex(secret, f"{timestamp_ms}\r\n{method.upper()}\r\n{path}\r\n\r\n{body_text}")


def authorization_header(api_key: str, secret: str, timestamp_ms: int, method: str, path: str,
                         body_text: str) -> str:
    """``hmac <API_KEY>:<TIMESTAMP_MS>:<SIGNATURE>``."""
    return (f"hmac {api_key}:{timestamp_ms}:"
            f"{signature(secret, timestamp_ms, method, path, body_text)}")


def request_headers(*, api_key: str, secret: str, market: str, method: str, path: str,
                    body_text: str, timestamp_ms: int, request_id: str) -> dict[str, str]:
    """Every header a call needs. ``request_id`` is a tracing nonce (a fresh uuid4 per call),
    not an idempotency key: Lalamove documents none."""
    return {"Authorization": authorization_header(api_key, secret, timestamp_ms, method, path,
                                                  body_text),
            "Market": market, "Request-ID": request_id, "Content-Type": "application/json"}


def encode(payload: Mapping[str, Any]) -> str:
    """The one serialisation of a request body: what is signed is what is sent."""
    return json.dumps(payload, separators=(",", ":"))


def unwrap(body: Any) -> dict:
    """The ``data`` of an answer. :raises ValueError: when there is none"""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise ValueError("no data object in the answer")
    return data


def first_error(body: Any) -> tuple[str | None, str | None]:
    """``(id, message)`` of the first entry of an ``{"errors": [...]}`` answer."""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None, None
    entry = errors[0]
    code = entry.get("id")
    message = entry.get("message") or entry.get("detail")
    return (str(code) if code else None), (str(message) if message else None)


def error_text(body: Any) -> str | None:
    """``"ERR_...: message"``: the provider's code is kept in every error we raise."""
    code, message = first_error(body)
    if code and message:
        return f"{code}: {message}"
    return code or message


# -- quotations and orders ---------------------------------------------------------------------
def coordinates(place) -> dict[str, str]:
    """Lalamove takes coordinates as strings."""
    return {"lat": f"{place.lat:.6f}", "lng": f"{place.lng:.6f}"}


def quotation_payload(order, *, service_type: str = "MOTORCYCLE",
                      language: str = "id_ID") -> dict[str, Any]:
    """The body of ``POST /v3/quotations``: the pickup, then every drop-off, in order (route
    optimisation off, so the answer's stops line up with ours)."""
    stops = [order.pickup, *order.dropoffs]
    return {"data": {
        "serviceType": service_type,
        "language": language,
        "stops": [{"coordinates": coordinates(p), "address": p.address} for p in stops],
        "isRouteOptimized": False,
    }}


@dataclass(frozen=True)
class Quotation:
    quotation_id: str
    stop_ids: tuple[str, ...]
    expires_at: datetime
    price: int | None = None
    currency: str = "IDR"
    distance_km: float | None = None


def _when(value) -> datetime | None:
    """An ISO 8601 time (``2026-11-01T10:00:00.00Z``) as an aware datetime, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _amount(value) -> int | None:
    try:
        return int(round(float(value)))
    except (TypeError, ValueError):
        return None


def _distance_km(distance) -> float | None:
    if not isinstance(distance, dict):
        return None
    try:
        value = float(distance.get("value"))
    except (TypeError, ValueError):
        return None
    return round(value / 1000, 3) if distance.get("unit", "m") == "m" else value


def parse_quotation(body: Any, *, received_at: datetime, stops: int) -> Quotation:
    """A quotation answer. Without an ``expiresAt`` it is taken to hold for the documented
    five minutes from ``received_at``.

    :raises ValueError: no quotation id, or not one stop id per stop asked for
    """
    data = unwrap(body)
    quotation_id = data.get("quotationId")
    stop_ids = tuple(str(s.get("stopId") or "") for s in data.get("stops") or []
                     if isinstance(s, dict))
    if not quotation_id:
        raise ValueError("no quotationId in the answer")
    if len(stop_ids) != stops or not all(stop_ids):
        raise ValueError(f"{len(stop_ids)} stop ids for {stops} stops")
    prices = data.get("priceBreakdown") or {}
    return Quotation(quotation_id=str(quotation_id), stop_ids=stop_ids,
                     expires_at=_when(data.get("expiresAt")) or received_at + QUOTATION_VALIDITY,
                     price=_amount(prices.get("total")),
                     currency=str(prices.get("currency") or "IDR"),
                     distance_km=_distance_km(data.get("distance")))


def is_stale(quotation: Quotation, now: datetime, margin_seconds: float) -> bool:
    """True when the quotation expires within ``margin_seconds`` of ``now``: ordering with it
    would race its expiry (and the provider's clock), so a fresh one is needed."""
    return quotation.expires_at <= now + timedelta(seconds=margin_seconds)


def parse_quote(instance: str, quotation: Quotation) -> Quote:
    """The neutral quote of a quotation (valid until its ``expiresAt``; Lalamove gives no
    duration estimate in it)."""
    return Quote(courier=instance, price=quotation.price, currency=quotation.currency,
                 distance_km=quotation.distance_km, serviceable=True,
                 valid_until=quotation.expires_at)


def _price(order: Mapping[str, Any]) -> dict[str, Any]:
    """The order's ``priceBreakdown.total`` (a string of rupiah) as event details
    ``{"price": int, "currency": ...}``, or nothing: the price Lalamove charges."""
    prices = order.get("priceBreakdown") if isinstance(order, Mapping) else None
    if not isinstance(prices, Mapping):
        return {}
    amount = _amount(prices.get("total"))
    if amount is None or not 0 <= amount < 10**12:
        return {}
    return {"price": amount, "currency": str(prices.get("currency") or "IDR")[:3]}


def _remarks(order, place) -> str:
    parts = [f"{order.package.description} (SEGEL: jangan dibuka)"]
    if place.note:
        parts.append(place.note)
    return " - ".join(parts)


def order_payload(quotation: Quotation, order, reference: str, *,
                  pod_enabled: bool = True) -> dict[str, Any]:
    """The body of ``POST /v3/orders``: the quotation, who hands over at the pickup stop, who
    receives at each drop-off stop, and our reference in ``metadata``."""
    pickup_stop, *dropoff_stops = quotation.stop_ids
    if len(dropoff_stops) != len(order.dropoffs):
        raise ValueError("the quotation does not have one stop per drop-off")
    return {"data": {
        "quotationId": quotation.quotation_id,
        "sender": {"stopId": pickup_stop, "name": order.pickup.contact.name,
                   "phone": phones.written(order.pickup.contact.phone, DIALECT)},
        "recipients": [{"stopId": stop_id, "name": place.contact.name,
                        "phone": phones.written(place.contact.phone, DIALECT),
                        "remarks": _remarks(order, place)}
                       for stop_id, place in zip(dropoff_stops, order.dropoffs, strict=True)],
        "isPODEnabled": pod_enabled,
        "metadata": {"client_reference": reference},
    }}


def _our_reference(order: Mapping[str, Any]) -> str | None:
    metadata = order.get("metadata")
    reference = metadata.get("client_reference") if isinstance(metadata, dict) else None
    return str(reference) if reference else None


def _order_id(order: Mapping[str, Any]) -> str:
    """Order ids stay strings (19 digits do not survive a float)."""
    order_id = order.get("orderId")
    if order_id is None or order_id == "" or isinstance(order_id, float | bool):
        raise ValueError("no usable orderId")
    return str(order_id)


def parse_booking(instance: str, body: Any) -> Booking:
    """The answer to ``POST /v3/orders``. :raises ValueError: no order id in it"""
    data = unwrap(body)
    raw = str(data.get("status") or "ASSIGNING_DRIVER")
    status = map_status(raw)
    return Booking(provider=instance, provider_reference=_order_id(data), raw_status=raw,
                   status=status if status in (Status.BOOKED, Status.DRIVER_ASSIGNED,
                                               Status.PICKED_UP) else Status.BOOKED)


def _proof(order: Mapping[str, Any]) -> dict:
    """Proof of delivery from a completed order's drop-off stops (``stops[].POD``): the photo
    links and when the last drop-off was made. Empty when there is none."""
    if map_status(str(order.get("status") or "")) != Status.DELIVERED:
        return {}
    pods = [s["POD"] for s in order.get("stops") or []
            if isinstance(s, dict) and isinstance(s.get("POD"), dict)]
    images = [str(p["image"]) for p in pods if p.get("image")]
    times = sorted(str(p["deliveredAt"]) for p in pods if p.get("deliveredAt"))
    if not images and not times:
        return {}
    proof = {"photo_url": images[-1] if images else None,
             "delivered_at": times[-1] if times else None}
    if len(images) > 1:
        proof["photo_urls"] = images
    return {"proof": proof}


def proof_fields(order: Mapping[str, Any]) -> dict:
    """The neutral proof fields of a completed order (``stops[].POD``: ``image`` links,
    ``deliveredAt``): ``proof_urls`` and ``delivered_at`` (the last drop-off's time), for a
    :class:`ProviderEvent`. Empty when there is no proof."""
    proof = _proof(order).get("proof")
    if not proof:
        return {}
    urls = proof.get("photo_urls") or ([proof["photo_url"]] if proof.get("photo_url") else [])
    return {"proof_urls": tuple(u for u in urls if isinstance(u, str) and u),
            "delivered_at": _when(proof.get("delivered_at"))}


def parse_order(body: Any, asked: str | None = None) -> ProviderEvent:
    """A ``GET /v3/orders/{id}`` answer as a report (one key per order and status, so polling
    the same status twice is a duplicate).

    An answer about another order than ``asked`` (the id polled) means Lalamove replaced the
    order (``ORDER_REPLACED``) and answers for the order as it now is: the report is about
    the ``asked`` id, names the new one (``new_provider_reference``) and carries its status,
    so a booking followed by polling alone moves to the new id as it does by webhook. The
    reference documents no field for this in the order details; see the simulator [U].

    :raises ValueError: not an order
    """
    order = unwrap(body)
    order_id, raw = _order_id(order), str(order.get("status") or "")
    if not raw:
        raise ValueError("no status in the order")
    if asked is not None and order_id != asked:
        return ProviderEvent(
            event_key=f"replaced:{asked}:{order_id}:{raw}"[:128], provider_reference=asked,
            our_reference=_our_reference(order), raw_status=raw, status=map_status(raw),
            details={"type": "ORDER_REPLACED", "new_provider_reference": order_id,
                     **_proof(order), **_price(order)}, **proof_fields(order))
    return ProviderEvent(event_key=f"status:{order_id}:{raw}", provider_reference=order_id,
                         our_reference=_our_reference(order), raw_status=raw,
                         status=map_status(raw), details={**_proof(order), **_price(order)},
                         **proof_fields(order))


# -- webhooks ----------------------------------------------------------------------------------
_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def json_members(text: str) -> dict[str, tuple[Any, str]]:
    """Each member of a JSON object, as its value and its raw text exactly as written.

    A signature over a member must be checked against the bytes that were signed, not against
    a re-serialisation (which may differ in spacing, escapes or number format). Duplicate
    member names are refused: the value checked and the value used must be the same.

    :raises ValueError: not one JSON object
    """
    position = _SPACE.match(text, 0).end()
    if text[position:position + 1] != "{":
        raise ValueError("not a JSON object")
    position = _SPACE.match(text, position + 1).end()
    members: dict[str, tuple[Any, str]] = {}
    if text[position:position + 1] == "}":
        position += 1
    else:
        while True:
            if text[position:position + 1] != '"':
                raise ValueError(f"a member name was expected at {position}")
            name, position = _DECODER.raw_decode(text, position)
            position = _SPACE.match(text, position).end()
            if text[position:position + 1] != ":":
                raise ValueError(f"':' was expected at {position}")
            start = _SPACE.match(text, position + 1).end()
            value, end = _DECODER.raw_decode(text, start)
            if name in members:
                raise ValueError(f"member {name!r} appears twice")
            members[name] = (value, text[start:end])
            position = _SPACE.match(text, end).end()
            separator = text[position:position + 1]
            position += 1
            if separator == "}":
                break
            if separator != ",":
                raise ValueError(f"',' or '}}' was expected at {position - 1}")
            position = _SPACE.match(text, position).end()
    if _SPACE.match(text, position).end() != len(text):
        raise ValueError("text after the JSON object")
    return members


@dataclass(frozen=True)
class WebhookEnvelope:
    """A webhook body: its members (``apiKey``, ``timestamp``, ``signature``, ``eventId``,
    ``eventType``, ``data``) and the raw text of ``data``, which is what was signed."""

    body: dict[str, Any]
    raw_data: str

    @property
    def data(self) -> dict:
        data = self.body.get("data")
        return data if isinstance(data, dict) else {}


def read_webhook(raw_body: bytes) -> WebhookEnvelope:
    """:raises ValueError: not a JSON object with a ``data`` object"""
    members = json_members(raw_body.decode("utf-8"))
    if "data" not in members or not isinstance(members["data"][0], dict):
        raise ValueError("no data object")
    return WebhookEnvelope(body={name: value for name, (value, _raw) in members.items()},
                           raw_data=members["data"][1])


def webhook_signature(secret: str, timestamp: int | str, path: str, raw_data: str) -> str:
    """Hex HMAC-SHA256 over ``"{timestamp}\\r\\nPOST\\r\\n{path}\\r\\n\\r\\n{data}"``, where
    ``path`` is the webhook path registered with Lalamove and ``data`` the raw text."""
    return signature(secret, timestamp, "POST", path, raw_data)


def webhook_time(value: Any) -> datetime | None:
    """The envelope's ``timestamp`` (integer seconds; milliseconds also understood, since
    the reference does not settle the unit), or None if it is not a whole number."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    if isinstance(value, str) and not value.isdigit():
        return None
    number = int(value)
    seconds = number / 1000 if number > 10**11 else number
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def within_retry_window(sent_at: datetime, now: datetime, *, max_age: timedelta,
                        max_ahead: timedelta) -> bool:
    """Whether a webhook stamped ``sent_at`` may be taken at ``now``: up to ``max_age`` old
    (Lalamove's retries keep the first sending's timestamp for up to 24 hours), and no
    further than ``max_ahead`` in the future (clocks differ by a little, never by hours)."""
    return now - max_age <= sent_at <= now + max_ahead


def parse_webhook(envelope: WebhookEnvelope) -> list[ProviderEvent]:
    """A verified webhook as reports, keyed by its ``eventId``.

    * ``ORDER_STATUS_CHANGED``: the order's new status (and, once completed, the proof of
      delivery from its stops);
    * ``ORDER_REPLACED``: a report on the *previous* order id whose details name the new one
      (``new_provider_reference``), so the request follows the booking to its new id;
    * ``POD_STATUS_CHANGED`` for a completed order with proof photos: delivered, with the
      proof (kept even when the ``COMPLETED`` report came first);
    * any other order event (``ORDER_CREATED``, ``DRIVER_ASSIGNED``, ...): noted, no status,
      but carrying our reference when the order's ``metadata`` echoes it (the way back to a
      booking whose create answer was lost);
    * events about no order (``WALLET_BALANCE_CHANGED``): nothing. They are answered 200
      all the same: Lalamove disables a webhook URL that keeps refusing.

    :raises ValueError: a status or replacement event that lacks what it is about
    """
    body, data = envelope.body, envelope.data
    event_type = str(body.get("eventType") or "")
    if not event_type:
        raise ValueError("no eventType")
    order = data.get("order") if isinstance(data.get("order"), dict) else {}
    key = str(body.get("eventId") or hashlib.sha256(
        f"{body.get('timestamp')}:{envelope.raw_data}".encode()).hexdigest())[:128]
    occurred_at = _when(data.get("updatedAt")) or webhook_time(body.get("timestamp"))
    details: dict[str, Any] = {"type": event_type}
    our_reference = _our_reference(order)
    if event_type == "ORDER_REPLACED":
        previous = data.get("prevOrderId")
        if not previous:
            raise ValueError("ORDER_REPLACED without prevOrderId")
        replacement = _order_id(order if order else data)
        return [ProviderEvent(event_key=key, provider_reference=str(previous),
                              our_reference=our_reference, raw_status=event_type,
                              status=None, occurred_at=occurred_at,
                              details={**details, "new_provider_reference": replacement})]
    order_id = _order_id(order) if order.get("orderId") is not None else None
    if event_type == "ORDER_STATUS_CHANGED":
        raw = str(order.get("status") or "")
        if not order_id or not raw:
            raise ValueError("ORDER_STATUS_CHANGED without an order id and status")
        return [ProviderEvent(event_key=key, provider_reference=order_id,
                              our_reference=our_reference, raw_status=raw,
                              status=map_status(raw), occurred_at=occurred_at,
                              details={**details, **_proof(order), **_price(order)},
                              **proof_fields(order))]
    if not order_id and not our_reference:
        return []
    proof = _proof(order) if event_type == "POD_STATUS_CHANGED" else {}
    if proof:
        raw = str(order["status"])
        return [ProviderEvent(event_key=key, provider_reference=order_id,
                              our_reference=our_reference, raw_status=raw,
                              status=map_status(raw), occurred_at=occurred_at,
                              details={**details, **proof}, **proof_fields(order))]
    return [ProviderEvent(event_key=key, provider_reference=order_id,
                          our_reference=our_reference, raw_status=event_type[:64],
                          status=None, occurred_at=occurred_at, details=details)]
