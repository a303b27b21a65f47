"""The engine every courier simulator shares: bookings, drivers, an accelerated clock,
webhooks with faults, and the ``/_sim/*`` inspection and control endpoints. The notifiers'
simulators (``gateway/notifiers/<name>/simulator.py``) run on it too: a message is a booking
with a short lifecycle (sent, delivered, read), its receipts the webhooks.

A provider's simulator is a subclass that speaks only its dialect: paths, authentication,
payload shape, status names, errors, how its webhooks are signed. Each lives in its courier's
folder (``gateway/couriers/gosend/simulator.py`` is the model). Faults come from magic words
in the booking's text (the way test phone numbers work in GOV.UK Notify) or from
``POST /_sim/faults`` (consumed one per create call):

* ``[sim:no_driver]``      the booking is taken, then ends for want of a driver
* ``[sim:reject]``         the create call is refused (not serviceable)
* ``[sim:5xx]``            the create call fails with 503, nothing booked
* ``[sim:429]``            the create call is rate limited (``Retry-After``)
* ``[sim:timeout]``        the booking is committed, then the answer comes too late
* ``[sim:stall]``          the booking never advances (only polling sees it end)
* ``[sim:drop_webhooks]``, ``[sim:duplicate_webhooks]``, ``[sim:reorder_webhooks]``
* ``[sim:lookup_5xx]``     lookups by our reference fail with 500

Faults can also be drawn at random, one draw per create call, with configured
probabilities: ``fault_rates`` (constructor, or ``POST /_sim/config`` with
``{"fault_rates": {"no_driver": 0.08, "5xx": 0.01, "timeout": 0.005}, "fault_seed": 7}``).
The rates are of one draw, so the faults exclude one another and each is met by that share of
create calls; they must add up to at most 1. The draw uses the simulator's own
``random.Random`` (``fault_seed``, constructor or config; setting it starts the sequence
again), so a seeded simulator draws the same faults in the same order every time, and a
rate of 0 never draws its fault. The draw is added to the magic words, the queued fault and
the outage of the same call; they all keep working. ``GET /_sim/faults`` shows the rates,
what is queued, and how many of each fault were drawn at random since the last reset.

Health: ``GET /_sim/health`` (public, at the server's root, not logged by
:class:`QuietProbeHandler`). Inspection: ``GET /_sim/requests`` (every call received,
without credentials),
``GET /_sim/bookings``, ``GET /_sim/webhooks``, ``GET /_sim/faults``; control:
``POST /_sim/bookings/<id>/advance``, ``POST /_sim/bookings/<id>/status``,
``POST /_sim/faults``, ``POST /_sim/outage`` (``{"kind": "5xx", "seconds": 60}``: every
create meets that fault for a while), ``POST /_sim/config``, ``POST /_sim/reset``.

Proof images: providers link a delivery's photo with a signed URL that expires (Grab signs
its proof links for about two hours; courier reference sections 3.4 and 8.2). A dialect
links them with :meth:`SimulatorEngine.proof_url`: ``GET /_proof/<booking>/<name>.jpg
?expires=<epoch>&signature=<hmac>`` answers the image while the link is valid and signed,
``403`` (``AccessDenied``, as a signed storage link does) after ``proof_seconds``
(``POST /_sim/config``), ``404`` for a booking it does not know. ``proof_payload`` (config)
makes it answer a non-image (``html``), an image type with a non-image body
(``fake_jpeg``), an image larger than any cap (``oversize``), or 503 (``5xx``). Its
fetches are logged in ``/_sim/requests``.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import queue
import random
import re
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Mapping

import requests
from flask import Flask, jsonify, request
from werkzeug.serving import WSGIRequestHandler

#: webhooks a running clock sends at the same time (``Simulator._run``)
WEBHOOK_SENDERS = 8
#: public, at the root of the simulator's server: what ``gateway up`` waits for
HEALTH_PATH = "/_sim/health"
PROOF_PATH = "/_proof/"


def proof_jpeg(label: str) -> bytes:
    """A small JPEG (SOI, APP0 JFIF, a comment naming ``label``, EOI): what the proof link
    of ``label`` (``<booking>/<name>``) answers, a different photo for each link."""
    comment = label.encode()[:200]
    return (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
            + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
            + bytes(range(256)) * 4 + b"\xff\xd9")


class QuietProbeHandler(WSGIRequestHandler):
    """The development server's handler, without a log line for each readiness probe."""

    def log_request(self, code="-", size="-") -> None:
        if self.path != HEALTH_PATH:
            super().log_request(code, size)

MAGIC = re.compile(r"\[sim:([a-z0-9_]+)\]")
FAULT_NAME = re.compile(r"^[a-z0-9_]+$")
DRIVERS = [("Budi Santoso", "6281200000001", "P 1234 AB"),
           ("Agus Salim", "6281200000002", "P 4321 CD"),
           ("Wayan Sudarma", "6281200000003", "P 5678 EF")]


class SimulatorEngine:
    """Dialect-free simulation. Subclasses set the class attributes and implement the
    ``dialect`` methods at the bottom."""

    #: the provider's statuses from booked to delivered, in order
    lifecycle: list[str] = []
    #: the status at which a driver is allocated
    allocated_status: str = ""
    no_driver_status: str = ""
    cancelled_status: str = ""
    delivered_status: str = ""
    terminal: set[str] = set()
    cancellable: set[str] = set()
    #: the credential-free name of a logged call's caller, for ``/_sim/requests``
    caller_header: str = ""

    def __init__(self, *, webhook_url: str | None = None, step_seconds: float = 1.0,
                 slow_seconds: float = 3.0, fault_rates: Mapping[str, float] | None = None,
                 fault_seed: int | None = None):
        self.webhook_url = webhook_url
        self.step_seconds, self.slow_seconds = step_seconds, slow_seconds
        self.lock = threading.RLock()
        self._numbers = itertools.count(170563)
        self.url: str | None = None
        #: how long a proof link works, and what it answers (see the module docstring)
        self.proof_seconds: float = 7200.0
        self.proof_payload: str = "jpeg"
        self._proof_key = uuid.uuid4().bytes
        #: the probability of each fault per create call (one draw: they exclude one another)
        self.fault_rates: dict[str, float] = {}
        self.random = random.Random(fault_seed)
        self.set_fault_rates(fault_rates or {})
        self.reset()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: the running clock's webhook senders (``_run``)
        self._senders: list[queue.SimpleQueue] = []
        self._local = threading.local()

    def reset(self) -> None:
        with self.lock:
            self.bookings: dict[str, dict] = {}
            self.requests: list[dict] = []
            self.webhooks: list[dict] = []
            self.faults: deque[str] = deque()
            #: a fault every create meets until a time (monotonic): a provider outage
            self.outage: tuple[str, float] | None = None
            #: faults drawn at random (``fault_rates``) since the last reset, by name
            self.drawn: Counter[str] = Counter()
            self._outbox: list[dict] = []

    def next_number(self) -> int:
        return next(self._numbers)

    # -- the clock ----------------------------------------------------------------------
    def start_clock(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sim-clock", daemon=True)
        self._thread.start()

    def stop_clock(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        # The running clock hands its webhooks to senders: a provider delivers from many
        # servers at once, and a clock that waited for each answer in turn would fall
        # behind its own steps under load. A booking always goes to the same sender, so
        # its webhooks keep their order.
        self._senders = [queue.SimpleQueue() for _ in range(WEBHOOK_SENDERS)]
        for number, inbox in enumerate(self._senders):
            threading.Thread(target=self._sender, args=(inbox,), daemon=True,
                             name=f"sim-webhooks-{number}").start()
        try:
            while not self._stop.wait(min(self.step_seconds, 0.2)):
                self.tick()
        finally:
            for inbox in self._senders:
                inbox.put(None)

    def _sender(self, inbox: queue.SimpleQueue) -> None:
        with requests.Session() as session:      # kept-alive connections, like a provider's
            self._local.session = session
            while (item := inbox.get()) is not None:
                self._send(item["body"])

    def tick(self, now: float | None = None) -> None:
        """Advance every booking whose next step is due, then send what is owed."""
        now = time.monotonic() if now is None else now
        with self.lock:
            for booking in self.bookings.values():
                if booking["status"] in self.terminal or "stall" in booking["faults"]:
                    continue
                if now >= booking["next_step_at"]:
                    self.advance(booking)
                    booking["next_step_at"] = now + self.step_seconds
        self.flush_webhooks()

    def advance(self, booking: dict) -> None:
        if "no_driver" in booking["faults"]:
            self.set_status(booking, self.no_driver_status)
            return
        steps = self.lifecycle
        position = steps.index(booking["status"]) if booking["status"] in steps else 0
        self.set_status(booking, steps[min(position + 1, len(steps) - 1)])

    def set_status(self, booking: dict, status: str) -> None:
        booking["status"] = status
        if status == self.allocated_status and not booking["driver"]:
            booking["driver"] = random.choice(DRIVERS)
        if status == self.delivered_status:
            booking["receiver_name"] = booking["recipient_name"]
        booking["history"].append(status)
        self.queue_webhook(booking)

    # -- bookings ----------------------------------------------------------------------
    def create(self, provider_id: str, reference: str, recipient_name: str, payload: dict,
               faults: set[str]) -> dict:
        with self.lock:
            booking = {"id": provider_id, "reference": reference,
                       "status": self.lifecycle[0], "history": [self.lifecycle[0]],
                       "driver": None, "payload": payload, "faults": faults,
                       "recipient_name": recipient_name, "receiver_name": "",
                       "next_step_at": time.monotonic() + self.step_seconds}
            self.bookings[provider_id] = booking
            self.queue_webhook(booking)
            return booking

    def by_reference(self, reference: str) -> dict | None:
        with self.lock:
            matches = [b for b in self.bookings.values() if b["reference"] == reference]
            return matches[-1] if matches else None

    def take_faults(self, text: str) -> set[str]:
        """The faults one create call meets: its magic words, the next queued fault, the
        outage under way, and one draw from ``fault_rates``."""
        found = set(MAGIC.findall(text or ""))
        with self.lock:
            if self.faults:
                found.add(self.faults.popleft())
            if self.outage and time.monotonic() < self.outage[1]:
                found.add(self.outage[0])
            drawn = self.draw_fault()
            if drawn:
                found.add(drawn)
                self.drawn[drawn] += 1
        return found

    def draw_fault(self) -> str | None:
        """One draw from ``fault_rates``: a fault's name, or None (no fault this time).

        Exactly one number is drawn per call whatever the rates, so a seeded sequence does
        not depend on which faults happen to be configured with rate 0."""
        with self.lock:
            point = self.random.random()
            for name, rate in sorted(self.fault_rates.items()):
                if point < rate:
                    return name
                point -= rate
        return None

    def set_fault_rates(self, rates: Mapping[str, float], seed: int | None = None) -> None:
        """Draw faults at random from now on (``{}``: never). With ``seed``, the draws
        start again from that seed.

        :raises ValueError: a name that is not a fault word, a rate outside 0..1, or rates
            adding up to more than 1
        """
        if not isinstance(rates, Mapping):
            raise ValueError("fault_rates must map fault names to probabilities")
        checked = {}
        for name, rate in rates.items():
            if not isinstance(name, str) or not FAULT_NAME.match(name):
                raise ValueError(f"{name!r} is not a fault name")
            if isinstance(rate, bool) or not isinstance(rate, int | float) \
                    or not 0 <= rate <= 1:
                raise ValueError(f"the rate of {name} must be a number from 0 to 1")
            checked[name] = float(rate)
        if sum(checked.values()) > 1 + 1e-9:
            raise ValueError("fault rates add up to more than 1")
        with self.lock:
            self.fault_rates = checked
            if seed is not None:
                self.random.seed(seed)

    def start_outage(self, kind: str | None, seconds: float) -> None:
        """Every create meets fault ``kind`` (``5xx``, ``429``, ``timeout``, ``no_driver``,
        ...) for ``seconds``; ``kind=None`` ends an outage now."""
        with self.lock:
            self.outage = (kind, time.monotonic() + seconds) if kind else None

    def cancel(self, booking: dict) -> bool:
        """Cancel if the provider still allows it. :return: whether it did"""
        with self.lock:
            if booking["status"] not in self.cancellable:
                return False
            self.set_status(booking, self.cancelled_status)
        self.flush_webhooks()
        return True

    # -- webhooks ----------------------------------------------------------------------
    def webhook_target(self, booking: dict) -> str | None:
        """Where ``booking``'s webhooks go: the one URL configured, unless the dialect says
        each message names its own (an SMS gateway's ``StatusCallback``)."""
        return self.webhook_url

    def queue_webhook(self, booking: dict) -> None:
        if not self.webhook_target(booking) or "drop_webhooks" in booking["faults"]:
            return
        event = self.webhook_body(booking)
        copies = 2 if "duplicate_webhooks" in booking["faults"] else 1
        for _ in range(copies):
            self._outbox.append({"booking": booking["id"], "body": event,
                                 "hold": "reorder_webhooks" in booking["faults"]})

    def flush_webhooks(self) -> None:
        with self.lock:
            held = [w for w in self._outbox if w["hold"]]
            ready = [w for w in self._outbox if not w["hold"]]
            # Reordering: hold a booking's events until two are waiting, then send newest first.
            for number in {w["booking"] for w in held}:
                mine = [w for w in held if w["booking"] == number]
                if len(mine) >= 2 or self.bookings[number]["status"] in self.terminal:
                    ready.extend(reversed(mine))
                    held = [w for w in held if w["booking"] != number]
            self._outbox = held
        senders = self._senders if threading.current_thread() is self._thread else None
        for item in ready:
            if senders:     # the clock's tick: see ``_run``
                senders[hash(item["booking"]) % len(senders)].put(item)
            else:
                self._send(item["body"])

    def _send(self, body: dict) -> int | str:
        """Post one webhook (on a sender's connection, ``_run``); log it with the answer.
        :return: the HTTP status, or the name of the error when none came"""
        headers, data = self.webhook_request(body)
        try:
            response = (getattr(self._local, "session", None) or requests).post(
                self.webhook_url, data=data, timeout=5,
                headers={"Content-Type": "application/json", **headers})
            status = response.status_code
        except requests.RequestException as exc:
            status = type(exc).__name__
        with self.lock:
            self.webhooks.append({"body": body, "answer": status})
        return status

    # -- HTTP ------------------------------------------------------------------------------
    def create_app(self) -> Flask:
        app = Flask(f"{type(self).__name__}")
        engine = self

        @app.before_request
        def log_and_authenticate():
            if request.path.startswith("/_sim/"):
                return None
            proof = request.path.startswith(PROOF_PATH)
            with engine.lock:
                engine.requests.append({
                    "method": request.method, "path": request.path,
                    # as it came on the wire, before any decoding: what a provider would see
                    "raw_path": request.environ.get("RAW_URI", "").partition("?")[0],
                    "query": request.args.to_dict(), "json": request.get_json(silent=True),
                    # form bodies too (an SMS gateway's send call): every word a provider got
                    "form": request.form.to_dict() if request.mimetype ==
                    "application/x-www-form-urlencoded" else None,
                    "caller": request.headers.get(engine.caller_header),
                    "at": time.time()})
            # a proof link is its own credential (signed, expiring), like a storage link
            return None if proof else engine.authenticate(request)

        self.register_routes(app)
        self._register_control(app)
        return app

    # -- proof images ------------------------------------------------------------------
    def _proof_signature(self, path: str, expires: int) -> str:
        return hmac.new(self._proof_key, f"{path}:{expires}".encode(),
                        hashlib.sha256).hexdigest()

    def proof_url(self, booking: dict, name: str) -> str:
        """A signed link to one of ``booking``'s proof images, valid ``proof_seconds`` from
        the first time it is given (the same link every time it is read again)."""
        expires = booking.setdefault("proof_expires",
                                     int(time.time() + float(self.proof_seconds)))
        path = f"{PROOF_PATH}{booking['id']}/{name}.jpg"
        return f"{self.url or ''}{path}?expires={expires}&" \
               f"signature={self._proof_signature(path, expires)}"

    def serve_proof(self, booking_id: str, name: str):
        path = f"{PROOF_PATH}{booking_id}/{name}"
        try:
            expires = int(request.args.get("expires", ""))
        except ValueError:
            expires = 0
        signature = request.args.get("signature", "")
        if booking_id not in self.bookings:
            return "<Error><Code>NoSuchKey</Code></Error>", 404, {"Content-Type": "text/xml"}
        if not hmac.compare_digest(self._proof_signature(path, expires), signature) \
                or time.time() > expires:
            return "<Error><Code>AccessDenied</Code><Message>Request has expired</Message>" \
                   "</Error>", 403, {"Content-Type": "text/xml"}
        if self.proof_payload == "5xx":
            return "<Error><Code>SlowDown</Code></Error>", 503, {"Content-Type": "text/xml"}
        if self.proof_payload == "html":
            return "<html>not an image</html>", 200, {"Content-Type": "text/html"}
        if self.proof_payload == "fake_jpeg":
            return "<html>not an image</html>", 200, {"Content-Type": "image/jpeg"}
        body = proof_jpeg(f"{booking_id}/{name}")
        if self.proof_payload == "oversize":
            body = body[:-2] + bytes(6_000_000) + b"\xff\xd9"
        return body, 200, {"Content-Type": "image/jpeg"}

    def _register_control(self, app: Flask) -> None:
        engine = self

        @app.get(f"{PROOF_PATH}<booking_id>/<name>")
        def proof_image(booking_id, name):
            return engine.serve_proof(booking_id, name)

        @app.get(HEALTH_PATH)
        def sim_health():
            return jsonify(ok=True)

        @app.get("/_sim/requests")
        def sim_requests():
            return jsonify(engine.requests)

        @app.get("/_sim/bookings")
        def sim_bookings():
            with engine.lock:
                return jsonify([engine.describe(b) for b in engine.bookings.values()])

        @app.get("/_sim/webhooks")
        def sim_webhooks():
            return jsonify(engine.webhooks)

        @app.post("/_sim/faults")
        def sim_faults():
            with engine.lock:
                engine.faults.extend((request.get_json(silent=True) or {}).get("create", []))
                return jsonify(pending=list(engine.faults))

        @app.get("/_sim/faults")
        def sim_fault_state():
            with engine.lock:
                return jsonify(pending=list(engine.faults), rates=engine.fault_rates,
                               drawn=dict(engine.drawn))

        @app.post("/_sim/outage")
        def sim_outage():
            body = request.get_json(silent=True) or {}
            engine.start_outage(body.get("kind"), float(body.get("seconds", 60)))
            return jsonify(ok=True)

        @app.post("/_sim/config")
        def sim_config():
            body = request.get_json(silent=True) or {}
            if "fault_rates" in body or "fault_seed" in body:
                seed = body.get("fault_seed")
                if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
                    return jsonify(error="fault_seed must be an integer"), 400
                try:
                    engine.set_fault_rates(body.get("fault_rates", engine.fault_rates), seed)
                except ValueError as exc:
                    return jsonify(error=str(exc)), 400
            for key in ("webhook_url", "step_seconds", "proof_seconds", "proof_payload",
                        *engine.configurable):
                if key in body:
                    setattr(engine, key, body[key])
            return jsonify(ok=True)

        @app.post("/_sim/bookings/<provider_id>/advance")
        def sim_advance(provider_id):
            booking = engine.bookings.get(provider_id)
            if booking is None:
                return jsonify(error="no such booking"), 404
            with engine.lock:
                engine.advance(booking)
            engine.flush_webhooks()
            return jsonify(status=booking["status"])

        @app.post("/_sim/bookings/<provider_id>/status")
        def sim_set_status(provider_id):
            booking = engine.bookings.get(provider_id)
            if booking is None:
                return jsonify(error="no such booking"), 404
            with engine.lock:
                engine.set_status(booking, (request.get_json(silent=True) or {})["status"])
            engine.flush_webhooks()
            return jsonify(status=booking["status"])

        @app.post("/_sim/reset")
        def sim_reset():
            engine.reset()
            return jsonify(ok=True)

    # -- the dialect -----------------------------------------------------------------------
    #: extra attributes ``POST /_sim/config`` may set
    configurable: tuple[str, ...] = ()

    def authenticate(self, req):
        """None to let the call through, or the provider's own error response."""
        raise NotImplementedError

    def register_routes(self, app: Flask) -> None:
        raise NotImplementedError

    def webhook_body(self, booking: dict) -> dict:
        raise NotImplementedError

    def webhook_request(self, body: dict) -> tuple[dict, bytes]:
        """Headers and raw body of a webhook, signed or tokened as the provider does."""
        raise NotImplementedError

    def describe(self, booking: dict) -> dict:
        """A booking as ``GET /_sim/bookings`` shows it."""
        return {k: (sorted(v) if isinstance(v, set) else v) for k, v in booking.items()}
