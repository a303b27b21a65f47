"""A GO-SEND simulator: the GoKilat v10 endpoints, headers, statuses and webhooks, on this
machine, on an accelerated clock.

It is what ``gateway up`` books in sandbox mode and what the tests watch. It checks
``Client-ID``/``Pass-Key`` (401 with an ``Error-Message`` header otherwise), answers 201 with
a ``GK-11-...`` order number, allocates a simulated driver, moves each booking through
``confirmed -> allocated -> out_for_pickup -> picked -> out_for_delivery -> delivered`` one step
every ``step_seconds``, and POSTs a webhook for each step with the registered token.

Faults, the way test phone numbers work in GOV.UK Notify, come from magic words in a
route's ``destinationNote`` or from ``POST /_sim/faults`` (consumed one per create call):

* ``[sim:no_driver]``      booking confirmed, then ``no_driver``
* ``[sim:reject]``         422 on create (not serviceable)
* ``[sim:5xx]``            503 on create, nothing booked
* ``[sim:429]``            429 with ``Retry-After``
* ``[sim:timeout]``        the booking is committed, then the answer comes too late
* ``[sim:stall]``          confirmed and never advanced (only polling sees it end)
* ``[sim:drop_webhooks]``, ``[sim:duplicate_webhooks]``, ``[sim:reorder_webhooks]``
* ``[sim:lookup_5xx]``     lookups by ``storeOrderId`` answer 500 (as integrators report)

Inspection: ``GET /_sim/requests`` (every call received, without credentials),
``GET /_sim/bookings``, ``GET /_sim/webhooks``; control: ``POST /_sim/bookings/<no>/advance``,
``POST /_sim/bookings/<no>/status``, ``POST /_sim/faults``, ``POST /_sim/config``,
``POST /_sim/reset``.
"""

from __future__ import annotations

import hmac
import itertools
import random
import re
import threading
import time
import uuid
from collections import deque

import requests
from flask import Flask, jsonify, request

LIFECYCLE = ["confirmed", "allocated", "out_for_pickup", "picked", "out_for_delivery",
             "delivered"]
TERMINAL = {"delivered", "cancelled", "rejected", "no_driver"}
CANCELLABLE = {"confirmed", "allocated", "out_for_pickup"}
MAGIC = re.compile(r"\[sim:([a-z0-9_]+)\]")
DRIVERS = [("Budi Santoso", "6281200000001", "P 1234 AB"), ("Agus Salim", "6281200000002",
                                                             "P 4321 CD"),
           ("Wayan Sudarma", "6281200000003", "P 5678 EF")]


class GoSendSimulator:
    def __init__(self, *, client_id: str, pass_key: str, webhook_url: str | None = None,
                 webhook_token: str = "", webhook_header: str = "X-Callback-Token",
                 step_seconds: float = 1.0, slow_seconds: float = 3.0):
        self.client_id, self.pass_key = client_id, pass_key
        self.webhook_url, self.webhook_token = webhook_url, webhook_token
        self.webhook_header = webhook_header
        self.step_seconds, self.slow_seconds = step_seconds, slow_seconds
        self.lock = threading.RLock()
        self._numbers = itertools.count(170563)
        self.reset()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def reset(self) -> None:
        with self.lock:
            self.bookings: dict[str, dict] = {}
            self.requests: list[dict] = []
            self.webhooks: list[dict] = []
            self.faults: deque[str] = deque()
            self._outbox: list[dict] = []

    # -- the clock ------------------------------------------------------------------------
    def start_clock(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gosend-sim-clock", daemon=True)
        self._thread.start()

    def stop_clock(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(min(self.step_seconds, 0.2)):
            self.tick()

    def tick(self, now: float | None = None) -> None:
        """Advance every booking whose next step is due, then send what is owed."""
        now = time.monotonic() if now is None else now
        with self.lock:
            for booking in self.bookings.values():
                if booking["status"] in TERMINAL or "stall" in booking["faults"]:
                    continue
                if now >= booking["next_step_at"]:
                    self._advance(booking)
                    booking["next_step_at"] = now + self.step_seconds
        self._flush_webhooks()

    def _advance(self, booking: dict) -> None:
        if "no_driver" in booking["faults"]:
            self._set_status(booking, "no_driver")
            return
        position = LIFECYCLE.index(booking["status"]) if booking["status"] in LIFECYCLE else 0
        self._set_status(booking, LIFECYCLE[min(position + 1, len(LIFECYCLE) - 1)])

    def _set_status(self, booking: dict, status: str) -> None:
        booking["status"] = status
        if status == "delivered":
            booking["receiver_name"] = booking["route"].get("destinationContactName", "")
        if status == "allocated" and not booking["driver"]:
            booking["driver"] = random.choice(DRIVERS)
        booking["history"].append(status)
        self._queue_webhook(booking)

    # -- webhooks -------------------------------------------------------------------------
    def _event(self, booking: dict) -> dict:
        driver = booking["driver"] or ("", "", "")
        return {
            "@type": "booking_event", "entity_id": booking["orderNo"],
            "type": {"no_driver": "DRIVER_NOT_FOUND"}.get(booking["status"],
                                                          "BOOKING_STATUS_UPDATE"),
            "event_date": int(time.time() * 1000), "event_id": str(uuid.uuid4()),
            "partner_id": "sim", "destination_type": "market_place",
            "booking_id": booking["orderNo"], "status": booking["status"],
            "booking_status": booking["status"], "booking_type": "instant",
            "driver_name": driver[0], "driver_phone": driver[1], "total_distance_in_kms": 2.4,
            "price": 15000.0, "receiver_name": booking["receiver_name"],
            "live_tracking_url": f"http://sim.invalid/track/{booking['orderNo']}",
        }

    def _queue_webhook(self, booking: dict) -> None:
        if not self.webhook_url or "drop_webhooks" in booking["faults"]:
            return
        event = self._event(booking)
        copies = 2 if "duplicate_webhooks" in booking["faults"] else 1
        for _ in range(copies):
            self._outbox.append({"booking": booking["orderNo"], "body": event,
                                 "hold": "reorder_webhooks" in booking["faults"]})

    def _flush_webhooks(self) -> None:
        with self.lock:
            held = [w for w in self._outbox if w["hold"]]
            ready = [w for w in self._outbox if not w["hold"]]
            # Reordering: hold a booking's events until two are waiting, then send newest first.
            for number in {w["booking"] for w in held}:
                mine = [w for w in held if w["booking"] == number]
                booking = self.bookings[number]
                if len(mine) >= 2 or booking["status"] in TERMINAL:
                    ready.extend(reversed(mine))
                    held = [w for w in held if w["booking"] != number]
            self._outbox = held
        for item in ready:
            self._send(item["body"])

    def _send(self, body: dict) -> None:
        try:
            response = requests.post(self.webhook_url, json=body, timeout=5,
                                     headers={self.webhook_header: self.webhook_token})
            status = response.status_code
        except requests.RequestException as exc:
            status = type(exc).__name__
        with self.lock:
            self.webhooks.append({"body": body, "answer": status})

    # -- helpers for the HTTP layer ------------------------------------------------------------
    def authorised(self, headers) -> bool:
        return hmac.compare_digest(headers.get("Client-ID", ""), self.client_id) and \
            hmac.compare_digest(headers.get("Pass-Key", ""), self.pass_key)

    def take_fault(self, route: dict) -> set[str]:
        found = set(MAGIC.findall(str(route.get("destinationNote", ""))))
        with self.lock:
            if self.faults:
                found.add(self.faults.popleft())
        return found

    def create(self, route: dict, faults: set[str]) -> dict:
        with self.lock:
            number = f"GK-11-{next(self._numbers)}"
            booking = {"orderNo": number, "id": len(self.bookings) + 1,
                       "storeOrderId": route.get("storeOrderId"), "status": "confirmed",
                       "history": ["confirmed"], "driver": None, "route": route,
                       "receiver_name": "",
                       "faults": faults, "next_step_at": time.monotonic() + self.step_seconds}
            self.bookings[number] = booking
            self._queue_webhook(booking)
            return booking

    def by_store_order(self, reference: str) -> dict | None:
        with self.lock:
            matches = [b for b in self.bookings.values() if b["storeOrderId"] == reference]
            return matches[-1] if matches else None


def status_body(booking: dict) -> dict:
    driver = booking["driver"] or (None, None, None)
    return {"id": booking["id"], "orderNo": booking["orderNo"], "status": booking["status"],
            "storeOrderId": booking["storeOrderId"], "driverName": driver[0],
            "driverPhone": driver[1], "vehicleNumber": driver[2], "bookingType": "Instant",
            "liveTrackingUrl": f"http://sim.invalid/track/{booking['orderNo']}",
            "cancelDescription": "cancelled by partner" if booking["status"] == "cancelled"
            else None,
            "receiverName": booking["receiver_name"],
            "proofs": {"pop": None, "pod": f"http://sim.invalid/pod/{booking['orderNo']}.jpg"
                       if booking["status"] == "delivered" else None}}


def create_simulator_app(sim: GoSendSimulator) -> Flask:
    app = Flask("gosend-simulator")

    def error(status: int, message: str, **headers):
        response = jsonify(errors=[{"message": message}])
        response.status_code = status
        response.headers["Error-Message"] = message
        for name, value in headers.items():
            response.headers[name] = value
        return response

    @app.before_request
    def log_and_authenticate():
        if request.path.startswith("/_sim/"):
            return None
        with sim.lock:
            sim.requests.append({"method": request.method, "path": request.path,
                                 "query": request.args.to_dict(),
                                 "json": request.get_json(silent=True),
                                 "client_id": request.headers.get("Client-ID"),
                                 "at": time.time()})
        if not sim.authorised(request.headers):
            return error(401, "Invalid Client-ID or Pass-Key")
        return None

    @app.get("/gokilat/v10/calculate/price")
    def price():
        if not request.args.get("origin") or not request.args.get("destination"):
            return error(400, "origin and destination are required")
        quote = {"shipment_method": "Instant", "serviceable": True, "active": True,
                 "distance": 2.4, "price": {"total_price": 15000, "go_pay_total_price": 14000}}
        return jsonify(Instant=quote, SameDay={**quote, "shipment_method": "SameDay",
                                               "price": {"total_price": 10000}})

    @app.post("/gokilat/v10/booking")
    def book():
        body = request.get_json(silent=True) or {}
        routes = body.get("routes") or []
        if len(routes) != 1 or not routes[0].get("storeOrderId"):
            return error(400, "exactly one route with a storeOrderId is required")
        faults = sim.take_fault(routes[0])
        if "reject" in faults:
            return error(422, "Destination is not serviceable")
        if "5xx" in faults:
            return error(503, "Service temporarily unavailable")
        if "429" in faults:
            return error(429, "Too many requests", **{"Retry-After": "2"})
        booking = sim.create(routes[0], faults)
        if "timeout" in faults:
            time.sleep(sim.slow_seconds)
        response = jsonify(id=booking["id"], orderNo=booking["orderNo"], bookingType="Instant",
                           storeOrderId=booking["storeOrderId"], errorMessage=None,
                           prebook=False, prebookMessage=None)
        response.status_code = 201
        return response

    @app.get("/gokilat/v10/booking/orderno/<order_no>")
    def status(order_no):
        booking = sim.bookings.get(order_no)
        if booking is None:
            return error(404, "Booking not found")
        return jsonify(status_body(booking))

    @app.get("/gokilat/v10/booking/storeOrderId/<reference>")
    def status_by_store_order(reference):
        booking = sim.by_store_order(reference)
        if booking is not None and "lookup_5xx" in booking["faults"]:
            return error(500, "Internal server error")
        if booking is None:
            return error(404, "Booking not found")
        return jsonify(status_body(booking))

    @app.put("/gokilat/v10/booking/cancel")
    def cancel():
        order_no = (request.get_json(silent=True) or {}).get("orderNo")
        booking = sim.bookings.get(order_no or "")
        if booking is None:
            return error(404, "Booking not found")
        with sim.lock:
            if booking["status"] not in CANCELLABLE:
                return error(422, f"Booking cannot be cancelled in status {booking['status']}")
            sim._set_status(booking, "cancelled")
        sim._flush_webhooks()
        return jsonify(statusCode=200, message="Booking cancelled")

    # -- inspection and control (tests, demos) -----------------------------------------------
    @app.get("/_sim/requests")
    def sim_requests():
        return jsonify(sim.requests)

    @app.get("/_sim/bookings")
    def sim_bookings():
        with sim.lock:
            return jsonify([{k: (sorted(v) if isinstance(v, set) else v)
                             for k, v in b.items()} for b in sim.bookings.values()])

    @app.get("/_sim/webhooks")
    def sim_webhooks():
        return jsonify(sim.webhooks)

    @app.post("/_sim/faults")
    def sim_faults():
        with sim.lock:
            sim.faults.extend((request.get_json(silent=True) or {}).get("create", []))
            return jsonify(pending=list(sim.faults))

    @app.post("/_sim/config")
    def sim_config():
        body = request.get_json(silent=True) or {}
        for key in ("webhook_url", "webhook_token", "webhook_header", "step_seconds"):
            if key in body:
                setattr(sim, key, body[key])
        return jsonify(ok=True)

    @app.post("/_sim/bookings/<order_no>/advance")
    def sim_advance(order_no):
        booking = sim.bookings.get(order_no)
        if booking is None:
            return error(404, "Booking not found")
        with sim.lock:
            sim._advance(booking)
        sim._flush_webhooks()
        return jsonify(status=booking["status"])

    @app.post("/_sim/bookings/<order_no>/status")
    def sim_set_status(order_no):
        booking = sim.bookings.get(order_no)
        if booking is None:
            return error(404, "Booking not found")
        with sim.lock:
            sim._set_status(booking, (request.get_json(silent=True) or {})["status"])
        sim._flush_webhooks()
        return jsonify(status=booking["status"])

    @app.post("/_sim/reset")
    def sim_reset():
        sim.reset()
        return jsonify(ok=True)

    return app
