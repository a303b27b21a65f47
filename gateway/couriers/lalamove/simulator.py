"""The Lalamove simulator: the API v3 dialect on the shared simulator engine.

It is what ``gateway up`` books in sandbox mode and what the tests watch. It recomputes the
signature of every call from the shared secret, on its own (it does not use the adapter's
code), and refuses with 401 a call whose ``Authorization`` is missing, names another key,
is older or newer than ``signature_tolerance_seconds``, or does not match the method, path
and raw body received; a wrong ``Market`` is refused with ``ERR_INVALID_MARKET``.
``GET /_sim/signatures`` shows each verdict.

Quotations carry an ``expiresAt`` (``quotation_seconds``, or the next of
``quotation_lifetimes`` when a test sets some) and are good for one order; an order naming
an unknown, used or expired one is refused with ``ERR_INVALID_QUOTATION_ID``. Orders get
19-digit string ids and move ``ASSIGNING_DRIVER -> ON_GOING -> PICKED_UP -> COMPLETED`` (proof
photos on every drop-off stop), or end ``EXPIRED`` for want of a driver; they can be
cancelled only while ``ASSIGNING_DRIVER`` (409 ``ERR_CANCELLATION_FORBIDDEN`` after). Each step
is a webhook signed the Lalamove way (``ORDER_CREATED``, then ``ORDER_STATUS_CHANGED``), and
a completed order's proof of delivery one more, ``POD_STATUS_CHANGED`` (the event types of
the courier reference, section 4.4), carrying the order's stops with each drop-off's
``POD {status, image, deliveredAt}`` (``GET /v3/orders/{orderId}``, section 4.2). The
``image`` is a signed link that expires (the engine's ``proof_url``: ``proof_seconds``).
Every sender's and recipient's ``phone`` must be E.164 with the plus sign, else
``ERR_INVALID_PHONE_NUMBER`` (courier reference section 4.2 and its error codes; the
delivery-nodejs-sdk's order payload).

Webhooks follow Lalamove's webhook tutorial (v3_Webhook_v1.4): setting the URL
(``PATCH /v3/webhook`` with ``{"data": {"url"}}``) first sends it an empty POST, and a URL
that does not answer 200 is not registered (``ERR_INVALID_RESPONSE``, the code the courier
reference lists for "your webhook returned non-200"). An update that is not answered 200 is
sent again, 10 times in all within 24 hours with exponentially growing delays
(``RETRY_DELAYS``), each time the same body: the same ``eventId`` and the ``timestamp`` and
signature of its first sending; after the 10th failure the URL is disabled (no more
webhooks until it is set again). The tests cannot wait a day: ``POST /_sim/webhooks/retry``
with ``{"elapsed_seconds": N}`` sends each pending update again as the retry that falls due
N seconds after its first sending (its timestamp N seconds old), and
``POST /_sim/webhooks/resend`` with ``{"index": i, "elapsed_seconds": N}`` sends the i-th
logged update again that way, as a retry after an answer that was lost.

Faults and the ``/_sim/*`` endpoints are the engine's (``gateway.simulators.engine``); the
magic words go in a recipient's ``remarks``. Besides the engine's, this dialect knows:

* ``[sim:replace]``            once a driver is assigned, the order is replaced by a new id
  (``ORDER_REPLACED`` with ``prevOrderId``) and the new order goes on to the end. Reading
  the previous id (``GET /v3/orders/{prevOrderId}``) answers the order as it now is, under
  its new ``orderId``: the reference documents no field of the order details for a
  replacement, so this is the simulator's reading [U], and the adapter takes any answer
  whose ``orderId`` is not the one asked for as the replacement;
* ``expire_quotation``         (queued with ``POST /_sim/faults``) the order call is refused
  with ``ERR_INVALID_QUOTATION_ID``, as when the provider's clock runs ahead of ours;
* ``quotation_faults``         (``POST /_sim/config``) ``"5xx"`` or ``"429"``, one per
  quotation call.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import math
import re
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

import requests
from flask import Flask, jsonify, request

from ... import geo
from ...simulators.engine import DRIVERS, SimulatorEngine

LIFECYCLE = ["ASSIGNING_DRIVER", "ON_GOING", "PICKED_UP", "COMPLETED"]
TERMINAL = {"COMPLETED", "CANCELED", "REJECTED", "EXPIRED"}
CANCELLABLE = {"ASSIGNING_DRIVER"}
AUTHORIZATION = re.compile(r"hmac ([^:\s]+):(\d+):([0-9a-fA-F]+)")
#: seconds between the sendings of an update that is not answered 200: 10 sendings in all,
#: the delay doubling each time, the last one within 24 hours of the first (webhook tutorial)
RETRY_DELAYS = tuple(160 * 2 ** k for k in range(9))
#: sendings of one update after which Lalamove disables the webhook URL
MAX_SENDINGS = 1 + len(RETRY_DELAYS)
#: a stop's phone: E.164, with its plus sign
PHONE = re.compile(r"^\+[1-9]\d{7,14}$")


def _hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def _km(a: dict, b: dict) -> float:
    """Great-circle distance between two ``{"lat", "lng"}`` (strings) (``gateway.geo``)."""
    return geo.distance_m(a["lat"], a["lng"], b["lat"], b["lng"]) / 1000


def price_for(metres: float, stops: int = 2) -> int:
    """The simulator's tariff (deterministic, from the straight-line distance): Rp 9,000
    base, Rp 2,500 a started kilometre, Rp 3,000 per extra stop. Lalamove's real tariff is
    per city and vehicle and not public; the shape of the answer (``priceBreakdown`` with
    string amounts, ``total``) follows lalamove/delivery-nodejs-sdk
    ``src/models/priceBreakdown.ts``."""
    return 9000 + 2500 * math.ceil(metres / 1000) + 3000 * (stops - 2)


class LalamoveSimulator(SimulatorEngine):
    lifecycle = LIFECYCLE
    allocated_status = "ON_GOING"
    no_driver_status = "EXPIRED"
    cancelled_status = "CANCELED"
    delivered_status = "COMPLETED"
    terminal = TERMINAL
    cancellable = CANCELLABLE
    # Lalamove names the caller inside the signed Authorization header; the call log keeps
    # the Request-ID (a tracing nonce) and ``/_sim/signatures`` the key and the verdict.
    caller_header = "Request-ID"
    configurable = ("quotation_seconds", "quotation_lifetimes", "quotation_faults",
                    "signature_tolerance_seconds")

    def __init__(self, *, api_key: str, api_secret: str, market: str = "ID",
                 webhook_url: str | None = None, step_seconds: float = 1.0,
                 slow_seconds: float = 3.0, quotation_seconds: float = 300.0,
                 signature_tolerance_seconds: float = 300.0,
                 fault_rates: Mapping[str, float] | None = None,
                 fault_seed: int | None = None):
        self._ids = itertools.count(1)
        super().__init__(webhook_url=webhook_url, step_seconds=step_seconds,
                         slow_seconds=slow_seconds, fault_rates=fault_rates,
                         fault_seed=fault_seed)
        self.api_key, self.api_secret, self.market = api_key, api_secret, market
        self.quotation_seconds = quotation_seconds
        self.signature_tolerance_seconds = signature_tolerance_seconds

    @classmethod
    def from_config(cls, config: dict, *, webhook_url: str | None, step_seconds: float):
        """A simulator that accepts what a ``couriers.yaml`` Lalamove entry sends."""
        return cls(api_key=config["api_key"], api_secret=config["api_secret"],
                   market=config["market"], webhook_url=webhook_url, step_seconds=step_seconds)

    def reset(self) -> None:
        super().reset()
        with self.lock:
            self.quotations: dict[str, dict] = {}
            self.signatures: list[dict] = []
            self.quotation_lifetimes: list[float] = []
            self.quotation_faults: list[str] = []
            self._replacements: list[dict] = []
            #: updates not answered 200, waiting for their next sending
            self.retries: list[dict] = []
            #: set when the 10th sending of an update failed; cleared by setting a URL
            self.webhook_disabled = False

    def new_id(self) -> str:
        """A 19-digit id, as a string (Lalamove's ids do not survive a JS number)."""
        return f"3{next(self._ids):018d}"

    # -- authentication --------------------------------------------------------------------
    def authenticate(self, req):
        verdict = {"request_id": req.headers.get("Request-ID"), "method": req.method,
                   "path": req.path, "api_key": None, "accepted": False, "reason": None}
        with self.lock:
            self.signatures.append(verdict)
        match = AUTHORIZATION.fullmatch(req.headers.get("Authorization", ""))
        if match is None:
            verdict["reason"] = "missing or malformed Authorization"
            return error(401, "ERR_UNAUTHORIZED", verdict["reason"])
        key, timestamp, supplied = match.groups()
        verdict["api_key"] = key
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            verdict["reason"] = "unknown API key"
            return error(401, "ERR_UNAUTHORIZED", verdict["reason"])
        if abs(time.time() * 1000 - int(timestamp)) > self.signature_tolerance_seconds * 1000:
            verdict["reason"] = "timestamp outside the tolerance window"
            return error(401, "ERR_UNAUTHORIZED", verdict["reason"])
        query = req.environ.get("QUERY_STRING")
        path = f"{req.path}?{query}" if query else req.path
        signed = f"{timestamp}\r\n{req.method}\r\n{path}\r\n\r\n".encode() + req.get_data()
        if not hmac.compare_digest(_hmac_hex(self.api_secret, signed), supplied.lower()):
            verdict["reason"] = "signature mismatch"
            return error(401, "ERR_UNAUTHORIZED", verdict["reason"])
        if req.headers.get("Market") != self.market:
            verdict["reason"] = "wrong market"
            return error(422, "ERR_INVALID_MARKET", f"Market must be {self.market}")
        verdict["accepted"] = True
        return None

    # -- the dialect's bookings --------------------------------------------------------------
    def set_status(self, booking: dict, status: str) -> None:
        booking["previous_status"] = booking["status"]
        booking["updated_at"] = time.time()
        super().set_status(booking, status)
        if status == self.delivered_status:
            # then the proof of delivery, its own event (webhook event types, section 4.4)
            booking["announce"] = "POD_STATUS_CHANGED"
            self.queue_webhook(booking)
        if status == self.allocated_status and "replace" in booking["faults"] \
                and not booking.get("replaced_by"):
            # Not now: the clock may be walking the bookings.
            self._replacements.append(booking)

    def _replace_pending(self) -> None:
        with self.lock:
            pending, self._replacements = self._replacements, []
            for booking in pending:
                self.replace(booking)

    def replace(self, old: dict) -> dict:
        """Lalamove re-creates an order under a new id (``ORDER_REPLACED``): the old one goes
        quiet, the new one carries on from where it was."""
        with self.lock:
            new = {**old, "id": self.new_id(), "history": [old["status"]],
                   "faults": (old["faults"] - {"replace"}), "replaces": old["id"],
                   "announce": "ORDER_REPLACED", "updated_at": time.time(),
                   "next_step_at": time.monotonic() + self.step_seconds}
            old["replaced_by"] = new["id"]
            old["faults"] = old["faults"] | {"stall"}
            self.bookings[new["id"]] = new
            self.queue_webhook(new)
            return new

    @staticmethod
    def updated_at(booking: dict) -> float:
        return booking.get("updated_at") or booking["payload"]["created_at"]

    def order_body(self, booking: dict, *, with_stops: bool = True) -> dict:
        payload = booking["payload"]
        driver = booking["driver"]
        body = {"orderId": booking["id"], "quotationId": payload["quotationId"],
                "status": booking["status"], "market": self.market,
                "driverId": str(1000 + DRIVERS.index(driver)) if driver else "",
                "shareLink": f"http://sim.invalid/share/{booking['id']}",
                "priceBreakdown": payload["priceBreakdown"], "distance": payload["distance"],
                "metadata": payload["metadata"], "createdAt": _iso(payload["created_at"])}
        if with_stops:
            body["stops"] = self.stops_of(booking)
        return body

    def stops_of(self, booking: dict) -> list[dict]:
        """The order's stops; each drop-off with its proof of delivery once completed."""
        completed = booking["status"] == self.delivered_status
        stops = []
        for index, stop in enumerate(booking["payload"]["stops"]):
            stop = dict(stop)
            if index and completed:
                stop["POD"] = {"status": "DELIVERED",
                               "deliveredAt": _iso(self.updated_at(booking)),
                               "image": self.proof_url(booking, f"pod-{stop['stopId']}")}
            elif index:
                stop["POD"] = {"status": "PENDING"}
            stops.append(stop)
        return stops

    def webhook_body(self, booking: dict) -> dict:
        event_type = booking.pop("announce", None)
        order = self.order_body(booking, with_stops=booking["status"] == self.delivered_status)
        data: dict = {"order": order, "updatedAt": _iso(self.updated_at(booking))}
        if event_type == "ORDER_REPLACED":
            data["prevOrderId"] = booking["replaces"]
        elif event_type == "POD_STATUS_CHANGED":
            pass  # the order with its stops, each drop-off's ``POD`` {status, image, deliveredAt}
        elif len(booking["history"]) == 1 and booking["status"] == self.lifecycle[0]:
            event_type = "ORDER_CREATED"
        else:
            event_type = "ORDER_STATUS_CHANGED"
            order["previousStatus"] = booking.get("previous_status")
        return {"eventId": str(uuid.uuid4()).upper(), "eventType": event_type,
                "eventVersion": "v3", "data": data}

    def webhook_request(self, body: dict) -> tuple[dict, bytes]:
        """The envelope, with ``data`` serialised once (compactly, as Lalamove does) and its
        signature over exactly that text and the path of the registered webhook URL. The
        timestamp is that of the update's first sending (a retry keeps it)."""
        timestamp = body.setdefault("timestamp", int(time.time()))
        data = json.dumps(body["data"], separators=(",", ":"), ensure_ascii=False)
        path = urlsplit(self.webhook_url or "/").path or "/"
        signed = f"{timestamp}\r\nPOST\r\n{path}\r\n\r\n{data}".encode()
        head = {"apiKey": self.api_key, "timestamp": timestamp,
                "signature": _hmac_hex(self.api_secret, signed), "eventId": body["eventId"],
                "eventType": body["eventType"], "eventVersion": body["eventVersion"]}
        text = json.dumps(head, separators=(",", ":"))[:-1] + ',"data":' + data + "}"
        return {}, text.encode()

    # -- webhook delivery: the probe, retries, disabling ------------------------------------
    def register_webhook(self, url: str) -> int | str:
        """Set the webhook URL as ``PATCH /v3/webhook`` does: an empty POST first; the URL is
        kept only if that is answered 200. :return: the probe's answer"""
        try:
            status = requests.post(url, data=b"", timeout=5).status_code
        except requests.RequestException as exc:
            status = type(exc).__name__
        with self.lock:
            self.webhooks.append({"body": None, "probe": True, "url": url, "answer": status})
            if status == 200:
                self.webhook_url, self.webhook_disabled = url, False
        return status

    def _send(self, body: dict) -> int | str:
        if self.webhook_disabled or not self.webhook_url:
            return "disabled"
        status = super()._send(body)
        if status != 200:
            self._failed(body, sendings=1)
        return status

    def _failed(self, body: dict, sendings: int) -> None:
        with self.lock:
            if sendings >= MAX_SENDINGS:
                self.webhook_disabled = True
                return
            self.retries.append({"body": body, "sendings": sendings,
                                 "due": time.monotonic() + RETRY_DELAYS[sendings - 1]})

    def flush_retries(self, now: float | None = None) -> None:
        """Send again each pending update whose delay has passed."""
        now = time.monotonic() if now is None else now
        with self.lock:
            due = [r for r in self.retries if r["due"] <= now]
            self.retries = [r for r in self.retries if r["due"] > now]
        for retry in due:
            self._retry(retry["body"], retry["sendings"] + 1)

    def _retry(self, body: dict, sendings: int) -> int | str:
        if self.webhook_disabled or not self.webhook_url:
            return "disabled"
        status = super()._send(body)
        if status != 200:
            self._failed(body, sendings)
        return status

    @staticmethod
    def sendings_by(elapsed_seconds: float) -> int:
        """How many times an update unanswered all along has been sent ``elapsed_seconds``
        after its first sending (the schedule of ``RETRY_DELAYS``)."""
        return 1 + sum(1 for total in itertools.accumulate(RETRY_DELAYS)
                       if total <= elapsed_seconds)

    def retry_after(self, body: dict, elapsed_seconds: float) -> int | str:
        """Send ``body`` again as its retry ``elapsed_seconds`` after its first sending: its
        timestamp (and signature) say it was first sent that long ago."""
        with self.lock:
            body["timestamp"] = int(time.time() - elapsed_seconds)
        return self._retry(body, self.sendings_by(elapsed_seconds))

    def flush_webhooks(self) -> None:
        self._replace_pending()
        super().flush_webhooks()
        self.flush_retries()

    def describe(self, booking: dict) -> dict:
        return {**super().describe(booking), "orderId": booking["id"],
                "quotationId": booking["payload"]["quotationId"],
                "client_reference": booking["reference"],
                "stops": booking["payload"]["stops"]}

    # -- routes ------------------------------------------------------------------------
    def quotation(self, data: dict):
        """A quotation for ``data``, or the error answer."""
        stops = data.get("stops")
        if not data.get("serviceType") or not isinstance(stops, list):
            return error(422, "ERR_MISSING_FIELD", "serviceType and stops are required")
        if len(stops) < 2:
            return error(422, "ERR_INSUFFICIENT_STOPS", "At least two stops are required")
        if len(stops) > 16:
            return error(422, "ERR_TOO_MANY_STOPS", "At most 15 drop-offs")
        for stop in stops:
            where = stop.get("coordinates") if isinstance(stop, dict) else None
            if not isinstance(where, dict) or not all(
                    isinstance(where.get(k), str) for k in ("lat", "lng")) \
                    or not stop.get("address"):
                return error(422, "ERR_INVALID_FIELD",
                             "Each stop needs coordinates (lat, lng as strings) and an address")
        now = time.time()
        with self.lock:
            fault = self.quotation_faults.pop(0) if self.quotation_faults else None
            lifetime = float(self.quotation_lifetimes.pop(0)) if self.quotation_lifetimes \
                else self.quotation_seconds
        if fault == "5xx":
            return error(503, "ERR_UNKNOWN", "Service temporarily unavailable")
        if fault == "429":
            return error(429, "ERR_RATE_LIMIT_EXCEEDED", "Too many requests",
                         **{"Retry-After": "2"})
        metres = sum(_km(a["coordinates"], b["coordinates"])
                     for a, b in itertools.pairwise(stops)) * 1000
        total = price_for(metres, len(stops))
        quotation = {
            "quotationId": self.new_id(), "scheduleAt": _iso(now),
            "expiresAt": _iso(now + lifetime), "serviceType": data["serviceType"],
            "language": data.get("language", "id_ID"),
            "stops": [{"stopId": self.new_id(), "coordinates": s["coordinates"],
                       "address": s["address"]} for s in stops],
            "priceBreakdown": {"base": "9000", "totalExcludePriorityFee": str(total),
                               "total": str(total), "currency": "IDR"},
            "distance": {"value": str(round(metres)), "unit": "m"},
            "isRouteOptimized": bool(data.get("isRouteOptimized", False)),
        }
        with self.lock:
            self.quotations[quotation["quotationId"]] = {
                **quotation, "expires_at": now + lifetime, "used": False}
        return reply(quotation, 201)

    def order(self, data: dict):
        """An order for ``data``, or the error answer."""
        with self.lock:
            quotation = self.quotations.get(str(data.get("quotationId") or ""))
            usable = quotation is not None and not quotation["used"] \
                and time.time() < quotation["expires_at"]
        if not usable:
            return error(422, "ERR_INVALID_QUOTATION_ID",
                         "The quotation is unknown, used or expired")
        sender, recipients = data.get("sender") or {}, data.get("recipients") or []
        stop_ids = [s["stopId"] for s in quotation["stops"]]
        if sender.get("stopId") != stop_ids[0] or \
                [r.get("stopId") for r in recipients] != stop_ids[1:]:
            return error(422, "ERR_INVALID_FIELD", "sender and recipients must name the "
                                                   "quotation's stops, in order")
        if not all(p.get("name") and p.get("phone") for p in [sender, *recipients]):
            return error(422, "ERR_INVALID_PHONE_NUMBER", "Every stop needs a name and phone")
        if not all(PHONE.match(str(p["phone"])) for p in [sender, *recipients]):
            return error(422, "ERR_INVALID_PHONE_NUMBER",
                         "Phone numbers must be in E.164 format (+ and the country code)")
        faults = self.take_faults(" ".join(str(r.get("remarks") or "") for r in recipients))
        if "expire_quotation" in faults:
            with self.lock:
                quotation["expires_at"] = 0.0
            return error(422, "ERR_INVALID_QUOTATION_ID", "The quotation has expired")
        if "reject" in faults:
            return error(422, "ERR_OUT_OF_SERVICE_AREA", "A stop is out of the service area")
        if "5xx" in faults:
            return error(503, "ERR_UNKNOWN", "Service temporarily unavailable")
        if "429" in faults:
            return error(429, "ERR_RATE_LIMIT_EXCEEDED", "Too many requests",
                         **{"Retry-After": "2"})
        with self.lock:
            quotation["used"] = True
        metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        people = [sender, *recipients]
        payload = {
            "quotationId": quotation["quotationId"], "metadata": metadata,
            "created_at": time.time(),
            "priceBreakdown": quotation["priceBreakdown"], "distance": quotation["distance"],
            "stops": [{**stop, "name": person.get("name"), "phone": person.get("phone"),
                       **({"remarks": person.get("remarks", "")} if index else {})}
                      for index, (stop, person) in enumerate(zip(quotation["stops"], people,
                                                                 strict=True))]}
        with self.lock:
            booking = self.create(self.new_id(), str(metadata.get("client_reference") or ""),
                                  recipients[0].get("name", ""), payload, faults)
            body = self.order_body(booking)
        if "timeout" in faults:
            time.sleep(self.slow_seconds)
        return reply(body, 201)

    def register_routes(self, app: Flask) -> None:
        sim = self

        @app.post("/v3/quotations")
        def quotations():
            return sim.quotation(_data())

        @app.get("/v3/quotations/<quotation_id>")
        def get_quotation(quotation_id):
            quotation = sim.quotations.get(quotation_id)
            if quotation is None:
                return error(404, "ERR_INVALID_QUOTATION_ID", "No such quotation")
            return reply({k: v for k, v in quotation.items()
                          if k not in ("expires_at", "used")})

        @app.post("/v3/orders")
        def orders():
            return sim.order(_data())

        @app.get("/v3/orders/<order_id>")
        def get_order(order_id):
            booking = sim.bookings.get(order_id)
            if booking is None:
                return error(404, "ERR_ORDER_NOT_FOUND", "No such order")
            with sim.lock:
                while booking.get("replaced_by"):  # the order as it now is (see above)
                    booking = sim.bookings[booking["replaced_by"]]
                return reply(sim.order_body(booking))

        @app.get("/v3/orders/<order_id>/drivers/<driver_id>")
        def get_driver(order_id, driver_id):
            """The driver of an order (courier reference section 4, Driver details)."""
            booking = sim.bookings.get(order_id)
            driver = booking["driver"] if booking else None
            if driver is None or driver_id != str(1000 + DRIVERS.index(driver)):
                return error(404, "ERR_DRIVER_NOT_FOUND", "No such driver for this order")
            name, phone, plate = driver
            return reply({"driverId": driver_id, "name": name, "phone": f"+{phone}",
                          "plateNumber": plate, "photo": "http://sim.invalid/driver.jpg",
                          "coordinates": {"lat": "-8.2192", "lng": "114.3691",
                                          "updatedAt": _iso(time.time())}})

        @app.delete("/v3/orders/<order_id>")
        def cancel(order_id):
            booking = sim.bookings.get(order_id)
            if booking is None:
                return error(404, "ERR_ORDER_NOT_FOUND", "No such order")
            if not sim.cancel(booking):
                return error(409, "ERR_CANCELLATION_FORBIDDEN",
                             f"The order cannot be cancelled in status {booking['status']}")
            return "", 204

        @app.get("/v3/cities")
        def cities():
            return reply([{"locode": "ID_JKT", "name": "Jakarta",
                           "services": [{"key": "MOTORCYCLE"}, {"key": "MPV"},
                                        {"key": "VAN"}]}])

        @app.patch("/v3/webhook")
        def set_webhook():
            url = _data().get("url")
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                return error(422, "ERR_INVALID_FIELD", "data.url must be an http(s) URL")
            answer = sim.register_webhook(url)
            if answer != 200:
                return error(422, "ERR_INVALID_RESPONSE",
                             f"The webhook URL answered {answer}, not 200")
            return reply({"url": url})

        @app.post("/_sim/webhooks/retry")
        def sim_retry():
            elapsed = float((request.get_json(silent=True) or {}).get("elapsed_seconds", 0))
            with sim.lock:
                pending, sim.retries = sim.retries, []
            answers = [sim.retry_after(r["body"], elapsed) for r in pending]
            return jsonify(answers=answers, disabled=sim.webhook_disabled)

        @app.post("/_sim/webhooks/resend")
        def sim_resend():
            body = request.get_json(silent=True) or {}
            with sim.lock:
                sent = [w for w in sim.webhooks if w.get("body")]
                index = body.get("index", -1)
                if not isinstance(index, int) or not -len(sent) <= index < len(sent):
                    return jsonify(error="no logged webhook at that index"), 400
                event = sent[index]["body"]
            answer = sim.retry_after(event, float(body.get("elapsed_seconds", 0)))
            return jsonify(answer=answer, disabled=sim.webhook_disabled)

        @app.get("/_sim/signatures")
        def sim_signatures():
            with sim.lock:
                return jsonify(list(sim.signatures))


def _data() -> dict:
    body = request.get_json(silent=True)
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else {}


def reply(data, status: int = 200):
    """Lalamove's success answer: everything inside ``data``."""
    response = jsonify(data=data)
    response.status_code = status
    return response


def error(status: int, code: str, message: str, **headers):
    """Lalamove's error answer: ``{"errors": [{"id", "message"}]}``."""
    response = jsonify(errors=[{"id": code, "message": message}])
    response.status_code = status
    for name, value in headers.items():
        response.headers[name] = value
    return response


def create_simulator_app(sim: LalamoveSimulator) -> Flask:
    return sim.create_app()
