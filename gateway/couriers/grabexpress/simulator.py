"""The GrabExpress simulator: the Delivery API v1 dialect on the shared simulator engine.

It is what ``gateway up`` books in sandbox mode and what the tests watch. It serves GrabID's
token endpoint too (on the path of the entry's ``token_url``, same host), checks the client
id, secret, grant and scope there, and issues bearer tokens whose lifetime is configurable so
that expiry can be seen in seconds; any other call without a live token gets 401. The API is
served under the path of the entry's ``base_url`` (``/grab-express-sandbox`` in Grab's own
sandbox). A booking moves ``ALLOCATING -> PENDING_PICKUP -> PICKING_UP -> PENDING_DROP_OFF ->
IN_DELIVERY -> COMPLETED`` and each step is POSTed as a webhook carrying the static
``Authorization`` (and ``Authorization-Id``) values; the details API says ``CANCELED`` where
webhooks say ``CANCELLED``, as Grab does. Cancelling is allowed only before pickup (409
after), by delivery id or for every delivery under a ``merchantOrderID``.

What it checks on a create, as Grab's Create Delivery page documents it (transcribed in the
public research note ``docs/grab-api-research.md`` of alxvasilevvv/unyly-food, which the
project's courier reference cites for section 3): ``sender``/``recipient`` each with a
``firstName``, a boolean ``smsEnabled`` and a ``phone`` in E.164 without the plus sign
(``62...``); the sender's ``instruction`` (what the driver sees at pickup) at most 1000
characters; ``paymentMethod`` ``CASH`` or ``CASHLESS`` ("Invalid payment method"), ``payer``
``SENDER`` or ``RECIPIENT`` ("Invalid payer value") and never ``RECIPIENT`` with ``CASHLESS``;
``codType`` ``REGULAR`` or ``ADVANCED`` ("Invalid codType"); and ``CASH`` only where the project
has it (Grab sets the payment types per project: "Taxi type ID not found", the message the
docs give for a payment type not enabled; ``cash_enabled`` in ``/_sim/config``). A
``cashOnDelivery`` amount with ``CASHLESS`` is refused as "Invalid payment method": the docs
send the amount "only for COD orders" and switch ``paymentMethod`` between COD and non-COD
(our reading; Grab does not spell out that combination). A booking's ``driver_instruction``
in ``/_sim/bookings`` is what the driver would read: the sender's ``instruction`` only, since
the docs call the recipient's "currently unused".

Faults and the ``/_sim/*`` endpoints are the engine's (``gateway.simulators.engine``); the
magic words go in ``sender.instruction`` (or ``recipient.instruction``). Grab's own:
``[sim:no_driver]`` ends as ``FAILED`` with ``failedReason: "6|Could not find driver"``,
``[sim:reject]`` is "City not supported", a parcel over ``max_weight_grams`` is "Package over
weight limit". Besides the engine's, it
offers ``GET /_sim/tokens`` (tokens issued and refused, calls answered 401) and
``POST /_sim/tokens/expire`` (every token issued so far stops working, as if it had expired
before its announced time); ``POST /_sim/config`` also takes ``token_lifetime_seconds``,
``reject_tokens`` (every API call gets 401, fresh token or not), ``cash_enabled``,
``max_weight_grams``,
``max_side_cm`` and the webhook credentials. Client secrets are masked in
``/_sim/requests``.
"""

from __future__ import annotations

import hmac
import json
import math
import re
import secrets
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

from flask import Flask, jsonify, request

from ... import geo
from ...simulators.engine import SimulatorEngine

LIFECYCLE = ["ALLOCATING", "PENDING_PICKUP", "PICKING_UP", "PENDING_DROP_OFF", "IN_DELIVERY",
             "COMPLETED"]
TERMINAL = {"COMPLETED", "RETURNED", "CANCELED", "FAILED"}
CANCELLABLE = {"QUEUEING", "ALLOCATING", "PENDING_PICKUP", "PICKING_UP"}
#: the details API's spelling -> the webhook's
WEBHOOK_SPELLING = {"CANCELED": "CANCELLED"}
#: every status a webhook may carry
WEBHOOK_STATUSES = {WEBHOOK_SPELLING.get(s, s) for s in {*LIFECYCLE, *TERMINAL, "IN_RETURN"}}
NO_DRIVER_REASON = "6|Could not find driver"
OPS_CANCEL_REASON = "5|Canceled by Grab Operator"
#: which ``timeline`` entry of the details answer each status stamps
TIMELINE = {"PENDING_PICKUP": "allocate", "PENDING_DROP_OFF": "pickup",
            "IN_DELIVERY": "dropoff", "COMPLETED": "completed", "CANCELED": "cancel",
            "IN_RETURN": "return", "FAILED": "fail"}
SCOPE = "grab_express.partner_deliveries"
#: GrabID's token path, when the entry's ``token_url`` has none
GRABID_PATH = "/grabid/v1/oauth2/token"
SERVICE_TYPES = {"INSTANT", "SAME_DAY", "BULK"}
VEHICLE_TYPES = {"BIKE", "CAR", "JUSTEXPRESS", "VAN", "TRUCK", "TRIKE", "EBIKE", "SUV",
                 "BOXPICKUPTRUCK", "TRICYCLE", "CYCLE", "FOOT"}
PHONE = re.compile(r"^[1-9]\d{7,14}$")  # E.164 without the plus sign
PAYMENT_METHODS = {"CASH", "CASHLESS"}
PAYERS = {"SENDER", "RECIPIENT"}
COD_TYPES = {"REGULAR", "ADVANCED"}
#: the longest ``instruction`` Grab takes
INSTRUCTION_MAX = 1000


class CallLog(list):
    """``/_sim/requests``: every call, with the client secret of a token call masked and its
    client id as the caller."""

    def append(self, call: dict) -> None:
        body = call.get("json")
        if isinstance(body, dict) and "client_secret" in body:
            call = {**call, "json": {**body, "client_secret": "***"},
                    "caller": body.get("client_id")}
        super().append(call)


class GrabExpressSimulator(SimulatorEngine):
    lifecycle = LIFECYCLE
    allocated_status = "PENDING_PICKUP"
    no_driver_status = "FAILED"
    cancelled_status = "CANCELED"
    delivered_status = "COMPLETED"
    terminal = TERMINAL
    cancellable = CANCELLABLE
    caller_header = ""  # a bearer token is a credential: callers are named in the token log
    configurable = ("webhook_auth", "webhook_auth_id", "token_lifetime_seconds",
                    "reject_tokens", "cash_enabled", "max_weight_grams", "max_side_cm",
                    "max_distance_km")

    def __init__(self, *, client_id: str, client_secret: str, webhook_auth: str = "",
                 webhook_auth_id: str | None = None, webhook_url: str | None = None,
                 prefix: str = "", grabid_path: str = GRABID_PATH,
                 token_lifetime_seconds: float = 604799, max_weight_grams: int = 20000,
                 max_side_cm: int = 50, max_distance_km: float = 35.0,
                 step_seconds: float = 1.0, slow_seconds: float = 3.0,
                 fault_rates: Mapping[str, float] | None = None,
                 fault_seed: int | None = None):
        super().__init__(webhook_url=webhook_url, step_seconds=step_seconds,
                         slow_seconds=slow_seconds, fault_rates=fault_rates,
                         fault_seed=fault_seed)
        self.client_id, self.client_secret = client_id, client_secret
        self.webhook_auth, self.webhook_auth_id = webhook_auth, webhook_auth_id
        self.prefix, self.grabid_path = prefix.rstrip("/"), grabid_path
        self.token_lifetime_seconds = token_lifetime_seconds
        self.reject_tokens = False
        self.cash_enabled = True
        self.max_weight_grams, self.max_side_cm = max_weight_grams, max_side_cm
        self.max_distance_km = max_distance_km

    @classmethod
    def from_config(cls, config: dict, *, webhook_url: str | None, step_seconds: float):
        """A simulator that accepts what a ``couriers.yaml`` GrabExpress entry sends: the API
        under its ``base_url`` path, the token endpoint on the path of its ``token_url`` (the
        simulator serves both on the ``base_url`` host)."""
        return cls(client_id=config["client_id"], client_secret=config["client_secret"],
                   webhook_auth=config["webhook_auth"],
                   webhook_auth_id=config.get("webhook_auth_id"), webhook_url=webhook_url,
                   prefix=urlsplit(config["base_url"]).path,
                   grabid_path=urlsplit(config["token_url"]).path or GRABID_PATH,
                   step_seconds=step_seconds)

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.requests = CallLog()
            self.tokens: dict[str, float] = {}
            self.token_counts = {"issued": 0, "refused": 0, "unauthorized_calls": 0}

    # -- dialect ------------------------------------------------------------------------
    def authenticate(self, req):
        if req.path == self.grabid_path:
            return None  # the token endpoint checks the client credentials itself
        scheme, _, token = req.headers.get("Authorization", "").partition(" ")
        with self.lock:
            expires_at = self.tokens.get(token) if scheme == "Bearer" else None
            if expires_at is not None and time.monotonic() < expires_at \
                    and not self.reject_tokens:
                return None
            self.token_counts["unauthorized_calls"] += 1
        return error(401, "unauthorized", "Unauthorized")

    def set_status(self, booking: dict, status: str) -> None:
        if status == "FAILED" and not booking.get("failed_reason"):
            booking["failed_reason"] = NO_DRIVER_REASON if "no_driver" in booking["faults"] \
                else OPS_CANCEL_REASON
        if status in TIMELINE:
            booking.setdefault("timeline", {})[TIMELINE[status]] = _now()
        super().set_status(booking, status)

    def webhook_body(self, booking: dict) -> dict:
        status, payload = booking["status"], booking["payload"]
        driver = booking["driver"]
        picked = "pickup" in (booking.get("timeline") or {})
        body = {
            "deliveryID": booking["id"], "merchantOrderID": booking["reference"],
            "timestamp": int(time.time()), "status": WEBHOOK_SPELLING.get(status, status),
            "trackURL": f"http://sim.invalid/track/{booking['id']}" if driver else "",
            "pickupPin": booking.get("pickup_pin", ""),
            "sender": {"name": _name(payload.get("sender")),
                       "address": (payload.get("origin") or {}).get("address")},
            "recipient": {"name": booking["receiver_name"] or booking["recipient_name"],
                          "address": (payload.get("destination") or {}).get("address")},
            "driver": {"name": driver[0], "phone": driver[1], "licensePlate": driver[2],
                       "photoURL": "http://sim.invalid/driver.jpg", "currentLat": -8.2192,
                       "currentLng": 114.3691} if driver else None,
            "distance": booking.get("distance_m", 0),
            # signed links that expire (about 2 h at Grab; ``proof_seconds`` here)
            "pickupProofURL": self.proof_url(booking, "pickup") if picked else "",
            "dropoffProofURL": self.proof_url(booking, "dropoff")
            if status == "COMPLETED" else "",
            "cancelProofURL": "",
        }
        if status == "FAILED":
            body["failedReason"] = booking.get("failed_reason")
        return body

    def webhook_request(self, body: dict) -> tuple[dict, bytes]:
        headers = {"Authorization": self.webhook_auth}
        if self.webhook_auth_id:
            headers["Authorization-Id"] = self.webhook_auth_id
        return headers, json.dumps(body).encode()

    def describe(self, booking: dict) -> dict:
        sender = booking["payload"].get("sender") or {}
        return {**super().describe(booking), "deliveryID": booking["id"],
                "merchantOrderID": booking["reference"],
                "driver_instruction": sender.get("instruction") or ""}

    def quote_for(self, body: dict) -> tuple[dict, int]:
        distance_m = _distance_m(body.get("origin"), body.get("destination"))
        service = body.get("serviceType") or "INSTANT"
        amount = price_for(distance_m)
        return {"service": {"id": 0, "type": service,
                            "name": f"GrabExpress {service.replace('_', ' ').title()}"},
                "currency": {"code": "IDR", "symbol": "Rp", "exponent": 0},
                "amount": float(amount),
                "estimatedTimeline": {"pickup": _now(600), "dropoff": _now(1800)},
                "distance": distance_m}, distance_m

    def details_body(self, booking: dict) -> dict:
        payload, driver = booking["payload"], booking["driver"]
        cod = payload.get("cashOnDelivery") or {}
        return {
            "deliveryID": booking["id"], "merchantOrderID": booking["reference"],
            "paymentMethod": payload.get("paymentMethod", "CASHLESS"),
            "payer": payload.get("payer", "SENDER"), "quote": booking.get("quote"),
            "sender": payload.get("sender"), "recipient": payload.get("recipient"),
            "status": booking["status"],
            "trackingURL": f"http://sim.invalid/track/{booking['id']}" if driver else "",
            "courier": {"name": driver[0], "phone": driver[1],
                        "pictureURL": "http://sim.invalid/driver.jpg", "rating": 4.9,
                        "coordinates": {"latitude": -8.2192, "longitude": 114.3691},
                        "vehicle": {"licensePlate": driver[2], "model": "Honda Beat",
                                    "physicalVehicleType": "BIKE"}} if driver else None,
            "timeline": booking.get("timeline") or {},
            "schedule": None,
            "cashOnDelivery": {"enable": bool(cod), "amount": cod.get("amount", 0)},
            "invoiceNo": booking.get("invoice_no"),
            "pickupPin": booking.get("pickup_pin", ""),
            "advanceInfo": {"failedReason": booking.get("failed_reason")}
            if booking["status"] == "FAILED" else None,
        }

    def refusal(self, body: dict) -> tuple[int, str] | None:
        """Why Grab would refuse this quote or create body, as (status, message)."""
        if body.get("serviceType", "INSTANT") not in SERVICE_TYPES:
            return 400, "Invalid ServiceType"
        if body.get("vehicleType", "BIKE") not in VEHICLE_TYPES:
            return 400, "Invalid vehicleType"
        packages = body.get("packages")
        if not isinstance(packages, list) or not packages \
                or not all(_valid_package(p) for p in packages):
            return 400, "Invalid parameters"
        if not _valid_place(body.get("origin")) or not _valid_place(body.get("destination")):
            return 400, "Invalid parameters"
        cod = body.get("cashOnDelivery")
        if cod is not None and not (isinstance(cod, dict) and _number(cod.get("amount"))):
            return 400, "Invalid parameters"
        method = body.get("paymentMethod", "CASHLESS")
        if method not in PAYMENT_METHODS:
            return 400, "Invalid payment method"
        if cod is not None and method != "CASH":
            return 400, "Invalid payment method"
        if "codType" in body and body["codType"] not in COD_TYPES:
            return 400, "Invalid codType"
        if method == "CASH" and not self.cash_enabled:
            return 400, "Taxi type ID not found"
        weight = sum(p["dimensions"]["weight"] * p["quantity"] for p in packages)
        if weight > self.max_weight_grams:
            return 400, "Package over weight limit"
        sides = [p["dimensions"][k] for p in packages for k in ("height", "width", "depth")]
        if max(sides) > self.max_side_cm:
            return 400, "Package over size limit"
        if _distance_m(body["origin"], body["destination"]) > self.max_distance_km * 1000:
            return 400, "Distance SLA Exceeded"
        return None

    def register_routes(self, app: Flask) -> None:
        sim, api = self, self.prefix

        @app.post(sim.grabid_path)
        def token():
            body = request.get_json(silent=True) or {}
            known = hmac.compare_digest(str(body.get("client_id", "")).encode(),
                                        sim.client_id.encode()) \
                and hmac.compare_digest(str(body.get("client_secret", "")).encode(),
                                        sim.client_secret.encode())
            with sim.lock:
                if not known:
                    sim.token_counts["refused"] += 1
                    return oauth_error(401, "invalid_client")
                if body.get("grant_type") != "client_credentials":
                    sim.token_counts["refused"] += 1
                    return oauth_error(400, "unsupported_grant_type")
                if body.get("scope") != SCOPE:
                    sim.token_counts["refused"] += 1
                    return oauth_error(400, "invalid_scope")
                issued = f"sim.{secrets.token_urlsafe(24)}"
                sim.tokens[issued] = time.monotonic() + sim.token_lifetime_seconds
                sim.token_counts["issued"] += 1
            return jsonify({"access_token": issued, "token_type": "Bearer",
                            "expires_in": sim.token_lifetime_seconds})

        @app.post(f"{api}/v1/deliveries/quotes")
        def quotes():
            body = request.get_json(silent=True) or {}
            refused = sim.refusal(body)
            if refused:
                return error(refused[0], "invalid_argument", refused[1])
            quote, _distance = sim.quote_for(body)
            return jsonify(quotes=[quote], origin=body["origin"],
                           destination=body["destination"], packages=body["packages"])

        @app.post(f"{api}/v1/deliveries")
        def create():
            body = request.get_json(silent=True) or {}
            if not isinstance(body.get("merchantOrderID"), str) or not body["merchantOrderID"]:
                return error(400, "invalid_argument", "Invalid parameters",
                             target="merchantOrderID")
            for party in ("sender", "recipient"):
                if not _valid_person(body.get(party)):
                    return error(400, "invalid_argument", "Invalid parameters", target=party)
            if body.get("payer", "SENDER") not in PAYERS:
                return error(400, "invalid_argument", "Invalid payer value")
            if body.get("payer", "SENDER") == "RECIPIENT" \
                    and body.get("paymentMethod", "CASHLESS") == "CASHLESS":
                return error(400, "invalid_argument", "Only SENDER payer value supported for "
                                                      "CASHLESS payment method")
            refused = sim.refusal(body)
            if refused:
                return error(refused[0], "invalid_argument", refused[1])
            faults = sim.take_faults(" ".join(
                str(body[party].get("instruction") or "") for party in ("sender", "recipient")))
            if "reject" in faults:
                return error(400, "invalid_argument", "City not supported")
            if "5xx" in faults:
                return error(503, "unavailable", "Service Unavailable")
            if "429" in faults:
                return error(429, "too_many_requests", "Too Many Requests",
                             **{"Retry-After": "2"})
            quote, distance_m = sim.quote_for(body)
            with sim.lock:
                booking = sim.create(f"IN-2-{uuid.uuid4().hex[:20].upper()}",
                                     body["merchantOrderID"], _name(body["recipient"]),
                                     body, faults)
                booking.update(quote=quote, distance_m=distance_m,
                               invoice_no=f"INV-SIM-{sim.next_number()}",
                               pickup_pin=f"{secrets.randbelow(10000):04d}",
                               failed_reason=None)
                booking.setdefault("timeline", {})["create"] = _now()
                if "timeout" in faults:
                    # Allocation takes minutes at Grab: nothing moves before the late answer.
                    booking["next_step_at"] = time.monotonic() + sim.slow_seconds
                answer = sim.details_body(booking)
            if "timeout" in faults:
                time.sleep(sim.slow_seconds)
            return jsonify(answer)

        @app.get(f"{api}/v1/deliveries/<delivery_id>")
        def details(delivery_id):
            with sim.lock:
                booking = sim.bookings.get(delivery_id)
                if booking is None:
                    return error(404, "not_found", "Delivery not found")
                return jsonify(sim.details_body(booking))

        @app.delete(f"{api}/v1/deliveries/<delivery_id>")
        def cancel(delivery_id):
            booking = sim.bookings.get(delivery_id)
            if booking is None:
                return error(404, "not_found", "Delivery not found")
            if not sim.cancel(booking):
                return error(409, "conflict",
                             f"Delivery cannot be cancelled in status {booking['status']}")
            return "", 204

        @app.delete(f"{api}/v1/merchant/deliveries/<merchant_order_id>")
        def cancel_merchant_order(merchant_order_id):
            with sim.lock:
                mine = [b for b in sim.bookings.values() if b["reference"] == merchant_order_id]
                if not mine:
                    return error(404, "not_found", "Delivery not found")
                live = [b for b in mine if b["status"] not in TERMINAL]
                if any(b["status"] not in CANCELLABLE for b in live):
                    return error(409, "conflict",
                                 "Some deliveries of this order are already picked up")
                for booking in live:
                    sim.set_status(booking, sim.cancelled_status)
            sim.flush_webhooks()
            return "", 204

        @app.get("/_sim/tokens")
        def sim_tokens():
            with sim.lock:
                return jsonify(**sim.token_counts, live=sum(
                    t > time.monotonic() for t in sim.tokens.values()))

        @app.post("/_sim/tokens/expire")
        def sim_expire_tokens():
            with sim.lock:
                sim.tokens = {token: 0.0 for token in sim.tokens}
            return jsonify(ok=True)


def error(status: int, reason: str, message: str, target: str = "", **headers):
    """Grab's error answer: ``{target, reason, message}``, the business text in ``message``."""
    response = jsonify(target=target, reason=reason, message=message)
    response.status_code = status
    for name, value in headers.items():
        response.headers[name] = value
    return response


def oauth_error(status: int, code: str):
    response = jsonify(error=code)
    response.status_code = status
    return response


def _now(offset_seconds: float = 0) -> str:
    return datetime.fromtimestamp(time.time() + offset_seconds, tz=UTC) \
        .isoformat(timespec="seconds").replace("+00:00", "Z")


def _name(person) -> str:
    person = person or {}
    return " ".join(filter(None, (person.get("firstName"), person.get("lastName"))))


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _valid_package(package) -> bool:
    dimensions = package.get("dimensions") if isinstance(package, dict) else None
    return bool(isinstance(dimensions, dict) and package.get("name")
                and package.get("description") is not None
                and isinstance(package.get("quantity"), int) and package["quantity"] >= 1
                and all(isinstance(dimensions.get(k), int) and dimensions[k] >= 0
                        for k in ("height", "width", "depth", "weight")))


def _valid_place(place) -> bool:
    coordinates = place.get("coordinates") if isinstance(place, dict) else None
    return bool(isinstance(coordinates, dict) and place.get("address")
                and _number(coordinates.get("latitude"))
                and _number(coordinates.get("longitude")))


def _valid_person(person) -> bool:
    return bool(isinstance(person, dict) and person.get("firstName")
                and isinstance(person.get("smsEnabled"), bool)
                and PHONE.match(str(person.get("phone", "")))
                and isinstance(person.get("instruction", ""), str)
                and len(person.get("instruction", "")) <= INSTRUCTION_MAX)


def _distance_m(origin, destination) -> int:
    """Great-circle metres between two Grab places (routing is the real provider's job)."""
    try:
        a, b = origin["coordinates"], destination["coordinates"]
        return geo.distance_m(a["latitude"], a["longitude"], b["latitude"], b["longitude"])
    except (KeyError, TypeError, ValueError):
        return 0


def price_for(distance_m: int) -> int:
    """The simulator's tariff, deterministic from the distance: Rp 8,000 and Rp 500 a started
    200 m. Grab's real tariff is not public; the answer's shape (``quotes[]`` with
    ``amount``, ``currency{code,symbol,exponent}``, ``estimatedTimeline``, ``distance`` in
    metres) follows the quotes call, courier-apis.md §3.2 (LightsoftHub/open-platforms
    ``GetDeliveryQuotesRequest.cs``)."""
    return 8000 + 500 * math.ceil(distance_m / 200)


def create_simulator_app(sim: GrabExpressSimulator) -> Flask:
    return sim.create_app()
