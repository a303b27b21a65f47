"""The GO-JEK rides simulator: the provisional GoRide/GoCar dialect on the shared engine.

**Provisional: replace the dialect when GO-JEK documents its partner ride API.** The API is
not public; this simulator speaks the dialect we defined in
``gateway.couriers.goride.mapping`` (its docstring lists the endpoints) and is the only target
of the ``goride`` adapter until the partner documents arrive.

It checks ``Client-ID``/``Pass-Key`` (401 with an ``Error-Message`` header otherwise),
validates the booking (400), refuses a party bigger than one vehicle of the service type
seats (422; ``max_passengers`` per service type, settable by ``POST /_sim/config``), answers
201 with a ``GR-...`` booking id, and moves each ride through ``searching ->
driver_assigned -> driver_arrived -> on_trip -> completed``, POSTing a webhook with the
registered token at each step. A ride whose ``scheduledAt`` is in the future is
``scheduled`` and stays so until ``POST /_sim/bookings/<id>/advance`` says its time has come
(then it is ``searching``). Faults and the ``/_sim/*`` endpoints are the engine's
(``gateway.simulators.engine``); the magic words go in the pickup's ``note``.
"""

from __future__ import annotations

import hmac
import json
import math
import re
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from flask import Flask, jsonify, request

from ...simulators.engine import SimulatorEngine

SCHEDULED = "scheduled"
LIFECYCLE = ["searching", "driver_assigned", "driver_arrived", "on_trip", "completed"]
TERMINAL = {"completed", "cancelled", "no_driver"}
CANCELLABLE = {SCHEDULED, "searching", "driver_assigned", "driver_arrived"}
#: seats in one vehicle of each service type (a motorbike takes one passenger)
MAX_PASSENGERS = {"GoRide": 1, "GoCar": 4}

LATLONG = re.compile(r"^-?\d{1,2}(\.\d+)?,-?\d{1,3}(\.\d+)?$")
PHONE = re.compile(r"^62\d{7,13}$")


class GoRideSimulator(SimulatorEngine):
    lifecycle = LIFECYCLE
    allocated_status = "driver_assigned"
    no_driver_status = "no_driver"
    cancelled_status = "cancelled"
    delivered_status = "completed"
    terminal = TERMINAL
    cancellable = CANCELLABLE
    caller_header = "Client-ID"
    configurable = ("webhook_token", "webhook_header", "max_passengers")

    def __init__(self, *, client_id: str, pass_key: str, webhook_url: str | None = None,
                 webhook_token: str = "", webhook_header: str = "X-Callback-Token",
                 max_passengers: Mapping[str, int] | None = None,
                 step_seconds: float = 1.0, slow_seconds: float = 3.0,
                 fault_rates: Mapping[str, float] | None = None,
                 fault_seed: int | None = None):
        super().__init__(webhook_url=webhook_url, step_seconds=step_seconds,
                         slow_seconds=slow_seconds, fault_rates=fault_rates,
                         fault_seed=fault_seed)
        self.client_id, self.pass_key = client_id, pass_key
        self.webhook_token, self.webhook_header = webhook_token, webhook_header
        self.max_passengers = dict(MAX_PASSENGERS if max_passengers is None else max_passengers)

    @classmethod
    def from_config(cls, config: dict, *, webhook_url: str | None, step_seconds: float):
        """A simulator that accepts what a ``couriers.yaml`` ``goride`` entry sends."""
        return cls(client_id=config["client_id"], pass_key=config["pass_key"],
                   webhook_url=webhook_url, webhook_token=config["webhook_token"],
                   webhook_header=config["webhook_header"], step_seconds=step_seconds)

    # -- scheduled rides ------------------------------------------------------------------
    def create(self, provider_id: str, reference: str, recipient_name: str, payload: dict,
               faults: set[str], *, scheduled: bool = False) -> dict:
        """As the engine's, but a ride for later starts ``scheduled`` and is never moved on
        by the clock: only ``/_sim/bookings/<id>/advance`` says its pickup time has come."""
        if not scheduled:
            return super().create(provider_id, reference, recipient_name, payload, faults)
        with self.lock:
            # The engine's booking record, with the first status and no due step.
            booking = {"id": provider_id, "reference": reference, "status": SCHEDULED,
                       "history": [SCHEDULED], "driver": None, "payload": payload,
                       "faults": faults, "recipient_name": recipient_name,
                       "receiver_name": "", "next_step_at": math.inf}
            self.bookings[provider_id] = booking
            self.queue_webhook(booking)
            return booking

    def advance(self, booking: dict) -> None:
        if booking["status"] == SCHEDULED:
            self.set_status(booking, LIFECYCLE[0])
            booking["next_step_at"] = time.monotonic() + self.step_seconds
            return
        super().advance(booking)

    # -- dialect ------------------------------------------------------------------------
    def authenticate(self, req):
        if hmac.compare_digest(req.headers.get("Client-ID", ""), self.client_id) and \
                hmac.compare_digest(req.headers.get("Pass-Key", ""), self.pass_key):
            return None
        return error(401, "Invalid Client-ID or Pass-Key")

    def webhook_body(self, booking: dict) -> dict:
        driver = booking["driver"] or ("", "", "")
        return {"event_id": str(uuid.uuid4()), "event_date": int(time.time() * 1000),
                "booking_id": booking["id"], "partner_reference": booking["reference"],
                "status": booking["status"], "driver_name": driver[0],
                "vehicle_plate": driver[2]}

    def webhook_request(self, body: dict) -> tuple[dict, bytes]:
        return {self.webhook_header: self.webhook_token}, json.dumps(body).encode()

    def describe(self, booking: dict) -> dict:
        return {**super().describe(booking), "bookingId": booking["id"],
                "partnerReference": booking["reference"]}

    def booking_body(self, booking: dict) -> dict:
        driver = booking["driver"] or (None, None, None)
        payload = booking["payload"]
        return {"bookingId": booking["id"], "status": booking["status"],
                "partnerReference": booking["reference"],
                "serviceType": payload.get("serviceType"),
                "passengers": payload.get("passengers"),
                "scheduledAt": payload.get("scheduledAt"),
                "driverName": driver[0], "vehiclePlate": driver[2]}

    def problems(self, body: dict) -> str | None:
        """Why a create body is malformed (400), or None."""
        if not body.get("partnerReference"):
            return "partnerReference is required"
        if body.get("serviceType") not in self.max_passengers:
            return f"serviceType must be one of {', '.join(sorted(self.max_passengers))}"
        for side in ("pickup", "destination"):
            place = body.get(side)
            if not isinstance(place, dict) or not place.get("address"):
                return f"{side}.address is required"
            if not LATLONG.match(str(place.get("latLong", ""))):
                return f"{side}.latLong must be \"lat,lng\""
            if not PHONE.match(str(place.get("contactPhone", ""))):
                return f"{side}.contactPhone must be 62... without a plus sign"
        passengers = body.get("passengers")
        if not isinstance(passengers, int) or isinstance(passengers, bool) or passengers < 1:
            return "passengers must be a positive integer"
        if body.get("scheduledAt") is not None and scheduled_time(body["scheduledAt"]) is None:
            return "scheduledAt must be ISO 8601 with a zone"
        return None

    def register_routes(self, app: Flask) -> None:
        sim = self

        @app.post("/goride/v1/bookings")
        def book():
            body = request.get_json(silent=True)
            problem = sim.problems(body) if isinstance(body, dict) else "a JSON object is required"
            if problem:
                return error(400, problem)
            seats = sim.max_passengers[body["serviceType"]]
            if body["passengers"] > seats:
                return error(422, f"A {body['serviceType']} seats at most {seats} passengers")
            faults = sim.take_faults(body["pickup"].get("note", ""))
            if "reject" in faults:
                return error(422, "Pickup is not serviceable")
            if "5xx" in faults:
                return error(503, "Service temporarily unavailable")
            if "429" in faults:
                return error(429, "Too many requests", **{"Retry-After": "2"})
            when = scheduled_time(body.get("scheduledAt"))
            booking = sim.create(f"GR-{sim.next_number()}", body["partnerReference"],
                                 body["pickup"].get("contactName", ""), body, faults,
                                 scheduled=when is not None and when > datetime.now(UTC))
            if "timeout" in faults:
                time.sleep(sim.slow_seconds)
            response = jsonify(bookingId=booking["id"], status=booking["history"][0],
                               partnerReference=booking["reference"])
            response.status_code = 201
            return response

        @app.get("/goride/v1/bookings/<booking_id>")
        def status(booking_id):
            booking = sim.bookings.get(booking_id)
            if booking is None:
                return error(404, "Booking not found")
            return jsonify(sim.booking_body(booking))

        @app.get("/goride/v1/bookings/partnerReference/<reference>")
        def by_partner_reference(reference):
            booking = sim.by_reference(reference)
            if booking is not None and "lookup_5xx" in booking["faults"]:
                return error(500, "Internal server error")
            if booking is None:
                return error(404, "Booking not found")
            return jsonify(sim.booking_body(booking))

        @app.put("/goride/v1/bookings/cancel")
        def cancel():
            booking_id = (request.get_json(silent=True) or {}).get("bookingId")
            booking = sim.bookings.get(booking_id or "")
            if booking is None:
                return error(404, "Booking not found")
            if not sim.cancel(booking):
                return error(422, f"Booking cannot be cancelled in status {booking['status']}")
            return jsonify(bookingId=booking["id"], status=booking["status"])


def scheduled_time(value) -> datetime | None:
    """``scheduledAt`` as an aware time, or None when absent or unreadable (or zoneless)."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def error(status: int, message: str, **headers):
    """The dialect's error answer (GO-SEND's shape): the text in the ``Error-Message`` header
    and the body."""
    response = jsonify(errors=[{"message": message}])
    response.status_code = status
    response.headers["Error-Message"] = message
    for name, value in headers.items():
        response.headers[name] = value
    return response


def create_simulator_app(sim: GoRideSimulator) -> Flask:
    return sim.create_app()
