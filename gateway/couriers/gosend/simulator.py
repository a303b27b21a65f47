"""The GO-SEND simulator: the GoKilat v10 dialect on the shared simulator engine.

It is what ``gateway up`` books in sandbox mode and what the tests watch. It checks
``Client-ID``/``Pass-Key`` (401 with an ``Error-Message`` header otherwise), answers 201 with
a ``GK-11-...`` order number, moves each booking through ``confirmed -> allocated ->
out_for_pickup -> picked -> out_for_delivery -> delivered``, and POSTs a webhook for each step
with the registered token. A contact phone must be written as GO-SEND integrators write it,
``62...`` with no plus sign (400 with an ``Error-Message`` otherwise). Faults and the
``/_sim/*`` endpoints are the engine's (``gateway.simulators.engine``); the magic words go in
a route's ``destinationNote``.

The price estimate (``GET /gokilat/v10/calculate/price?origin=lat,lng&destination=lat,lng``)
answers as GO-SEND's does (keyed by shipment method, ``serviceable``, ``distance`` in km,
``price.total_price`` in rupiah; courier-apis.md §2.2, §2.4: andrsrjld/gosend ``entity.go``)
with a tariff of its own from the straight-line distance (:data:`TARIFF`, ``gateway.geo``), and
the same Instant price comes back in each webhook's ``price`` and the status answer's
``totalPrice``. ``price_faults`` (``POST /_sim/config``) makes the next price calls fail.
"""

from __future__ import annotations

import hmac
import json
import math
import re
import time
import uuid
from collections.abc import Mapping

from flask import Flask, jsonify, request

from ... import geo
from ...simulators.engine import SimulatorEngine

LIFECYCLE = ["confirmed", "allocated", "out_for_pickup", "picked", "out_for_delivery",
             "delivered"]
TERMINAL = {"delivered", "cancelled", "rejected", "no_driver"}
CANCELLABLE = {"confirmed", "allocated", "out_for_pickup"}
#: a contact phone as GO-SEND integrators send it: ``62`` and the digits, no plus, no ``08``
#: (courier reference section 2.3, "Phone format" [C])
PHONE = re.compile(r"^62\d{7,13}$")


class GoSendSimulator(SimulatorEngine):
    lifecycle = LIFECYCLE
    allocated_status = "allocated"
    no_driver_status = "no_driver"
    cancelled_status = "cancelled"
    delivered_status = "delivered"
    terminal = TERMINAL
    cancellable = CANCELLABLE
    caller_header = "Client-ID"
    #: ``price_faults`` (``POST /_sim/config``): ``"5xx"`` or ``"429"``, one per price call
    configurable = ("webhook_token", "webhook_header", "price_faults")

    def __init__(self, *, client_id: str, pass_key: str, webhook_url: str | None = None,
                 webhook_token: str = "", webhook_header: str = "X-Callback-Token",
                 step_seconds: float = 1.0, slow_seconds: float = 3.0,
                 fault_rates: Mapping[str, float] | None = None,
                 fault_seed: int | None = None):
        super().__init__(webhook_url=webhook_url, step_seconds=step_seconds,
                         slow_seconds=slow_seconds, fault_rates=fault_rates,
                         fault_seed=fault_seed)
        self.client_id, self.pass_key = client_id, pass_key
        self.webhook_token, self.webhook_header = webhook_token, webhook_header
        self.price_faults: list[str] = []

    @classmethod
    def from_config(cls, config: dict, *, webhook_url: str | None, step_seconds: float):
        """A simulator that accepts what a ``couriers.yaml`` GO-SEND entry sends."""
        return cls(client_id=config["client_id"], pass_key=config["pass_key"],
                   webhook_url=webhook_url, webhook_token=config["webhook_token"],
                   webhook_header=config["webhook_header"], step_seconds=step_seconds)

    # -- dialect ------------------------------------------------------------------------
    def authenticate(self, req):
        if hmac.compare_digest(req.headers.get("Client-ID", ""), self.client_id) and \
                hmac.compare_digest(req.headers.get("Pass-Key", ""), self.pass_key):
            return None
        return error(401, "Invalid Client-ID or Pass-Key")

    def webhook_body(self, booking: dict) -> dict:
        driver = booking["driver"] or ("", "", "")
        status = booking["status"]
        return {
            "@type": "booking_event", "entity_id": booking["id"],
            "type": "DRIVER_NOT_FOUND" if status == "no_driver" else "BOOKING_STATUS_UPDATE",
            "event_date": int(time.time() * 1000), "event_id": str(uuid.uuid4()),
            "partner_id": "sim", "destination_type": "market_place",
            "booking_id": booking["id"], "status": status, "booking_status": status,
            "booking_type": "instant", "driver_name": driver[0], "driver_phone": driver[1],
            "total_distance_in_kms": route_km(booking["payload"]),
            "price": float(price_for(route_km(booking["payload"]))),
            "receiver_name": booking["receiver_name"],
            "live_tracking_url": f"http://sim.invalid/track/{booking['id']}",
        }

    def webhook_request(self, body: dict) -> tuple[dict, bytes]:
        return {self.webhook_header: self.webhook_token}, json.dumps(body).encode()

    def describe(self, booking: dict) -> dict:
        return {**super().describe(booking), "orderNo": booking["id"],
                "storeOrderId": booking["reference"], "route": booking["payload"]}

    def status_body(self, booking: dict) -> dict:
        driver = booking["driver"] or (None, None, None)
        delivered = booking["status"] == "delivered"
        return {"id": int(booking["id"].rsplit("-", 1)[1]), "orderNo": booking["id"],
                "status": booking["status"], "storeOrderId": booking["reference"],
                "driverName": driver[0], "driverPhone": driver[1], "vehicleNumber": driver[2],
                "bookingType": "Instant",
                "totalPrice": price_for(route_km(booking["payload"])), "totalDiscount": 0,
                "liveTrackingUrl": f"http://sim.invalid/track/{booking['id']}",
                "cancelDescription": "cancelled by partner"
                if booking["status"] == "cancelled" else None,
                "receiverName": booking["receiver_name"],
                # ``proofs`` as one public client reads it (format unconfirmed [U]): an
                # expiring link to the delivery photo
                "proofs": {"pop": None, "pod": self.proof_url(booking, "pod")
                           if delivered else None}}

    def register_routes(self, app: Flask) -> None:
        sim = self

        @app.get("/gokilat/v10/calculate/price")
        def price():
            try:
                origin = geo.parse_latlong(request.args.get("origin", ""))
                destination = geo.parse_latlong(request.args.get("destination", ""))
            except ValueError:
                return error(400, "origin and destination are required (lat,lng)")
            with sim.lock:
                fault = sim.price_faults.pop(0) if sim.price_faults else None
            if fault == "5xx":
                return error(503, "Service temporarily unavailable")
            if fault == "429":
                return error(429, "Too many requests", **{"Retry-After": "2"})
            km = geo.distance_km(*origin, *destination)
            return jsonify(Instant=price_estimate("Instant", km),
                           SameDay=price_estimate("SameDay", km))

        @app.post("/gokilat/v10/booking")
        def book():
            body = request.get_json(silent=True) or {}
            routes = body.get("routes") or []
            if len(routes) != 1 or not routes[0].get("storeOrderId"):
                return error(400, "exactly one route with a storeOrderId is required")
            route = routes[0]
            for field in ("originContactPhone", "destinationContactPhone"):
                phone = route.get(field)
                if phone and not PHONE.match(str(phone)):
                    return error(400, f"{field} must be 62 followed by the number's digits")
            faults = sim.take_faults(route.get("destinationNote", ""))
            if "reject" in faults:
                return error(422, "Destination is not serviceable")
            if "5xx" in faults:
                return error(503, "Service temporarily unavailable")
            if "429" in faults:
                return error(429, "Too many requests", **{"Retry-After": "2"})
            booking = sim.create(f"GK-11-{sim.next_number()}", route["storeOrderId"],
                                 route.get("destinationContactName", ""), route, faults)
            if "timeout" in faults:
                time.sleep(sim.slow_seconds)
            response = jsonify(id=int(booking["id"].rsplit("-", 1)[1]), orderNo=booking["id"],
                               bookingType="Instant", storeOrderId=booking["reference"],
                               errorMessage=None, prebook=False, prebookMessage=None)
            response.status_code = 201
            return response

        @app.get("/gokilat/v10/booking/orderno/<order_no>")
        def status(order_no):
            booking = sim.bookings.get(order_no)
            if booking is None:
                return error(404, "Booking not found")
            return jsonify(sim.status_body(booking))

        @app.get("/gokilat/v10/booking/storeOrderId/<reference>")
        def status_by_store_order(reference):
            booking = sim.by_reference(reference)
            if booking is not None and "lookup_5xx" in booking["faults"]:
                return error(500, "Internal server error")
            if booking is None:
                return error(404, "Booking not found")
            return jsonify(sim.status_body(booking))

        @app.put("/gokilat/v10/booking/cancel")
        def cancel():
            order_no = (request.get_json(silent=True) or {}).get("orderNo")
            booking = sim.bookings.get(order_no or "")
            if booking is None:
                return error(404, "Booking not found")
            if not sim.cancel(booking):
                return error(422, f"Booking cannot be cancelled in status {booking['status']}")
            return jsonify(statusCode=200, message="Booking cancelled")


#: the simulator's tariff per shipment method: (base, per started km), rupiah. GO-SEND's
#: real tariff is not public; the estimate's shape follows courier-apis.md §2.4
#: (andrsrjld/gosend ``entity.go``: keyed by method, ``serviceable``, ``distance`` in km,
#: ``price.total_price`` in whole rupiah).
TARIFF = {"Instant": (8000, 2000), "SameDay": (6000, 1500)}
#: GO-SEND Instant serves up to 40 km
MAX_KM = 40


def price_for(km: float, method: str = "Instant") -> int:
    base, per_km = TARIFF[method]
    return base + per_km * math.ceil(km)


def route_km(route: dict) -> float:
    """The straight-line km of a booking's route (its ``originLatLong`` and
    ``destinationLatLong``), 0 when unreadable."""
    try:
        return geo.distance_km(*geo.parse_latlong(route.get("originLatLong", "")),
                               *geo.parse_latlong(route.get("destinationLatLong", "")))
    except (ValueError, AttributeError):
        return 0.0


def price_estimate(method: str, km: float) -> dict:
    """One method's entry of the price estimate, as GO-SEND answers it."""
    serviceable = km <= MAX_KM
    total = price_for(km, method)
    return {"shipment_method": method,
            "shipment_method_description": f"{method} (simulated)",
            "serviceable": serviceable, "active": True, "distance": km,
            "route_polyline": "",
            "price": {"total_price": total, "go_pay_total_price": total,
                      "go_pay_discount": 0, "voucher_discount": 0,
                      "total_price_with_voucher": total}}


def error(status: int, message: str, **headers):
    """GO-SEND's error answer: the text in the ``Error-Message`` header and the body."""
    response = jsonify(errors=[{"message": message}])
    response.status_code = status
    response.headers["Error-Message"] = message
    for name, value in headers.items():
        response.headers[name] = value
    return response


def create_simulator_app(sim: GoSendSimulator) -> Flask:
    return sim.create_app()
