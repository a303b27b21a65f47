"""The SMS simulator in Twilio's dialect, on the shared simulator engine.

It follows Twilio's documentation (sources in ``mapping.py``): ``POST /2010-04-01/Accounts/
{AccountSid}/Messages.json`` with HTTP Basic auth (401, code 20003, otherwise), a form with
``To``, ``Body`` and ``From`` or ``MessagingServiceSid`` (400, code 21604/21602, when
missing). It answers 201 with the message resource (``sid`` ``SM...``,
``status`` ``queued``) and then POSTs a status callback for each later status (``sent`` ->
``delivered``; none for the initial ``queued``, as Twilio documents) to the message's
``StatusCallback``, form-encoded and signed ``X-Twilio-Signature`` with the auth token.

Faults are the engine's (queued, outages, rates): ``reject`` (21614, not a mobile), ``5xx``,
``429`` (20429), ``timeout``, ``stall``, ``undeliverable`` (``undelivered`` callback),
``drop_webhooks``, ``duplicate_webhooks``, ``reorder_webhooks``. Every message received is
kept (``GET /_sim/requests`` shows each form): the privacy test reads them all.
"""

from __future__ import annotations

import hmac
import time
from urllib.parse import urlencode

import requests
from flask import Flask, jsonify, request

from ...simulators.engine import SimulatorEngine
from . import mapping

LIFECYCLE = ["queued", "sent", "delivered"]


class SmsSimulator(SimulatorEngine):
    lifecycle = LIFECYCLE
    no_driver_status = "undelivered"
    delivered_status = "delivered"
    terminal = {"delivered", "undelivered", "failed"}
    caller_header = "X-Sim-Caller"
    configurable = ("auth_token",)

    def __init__(self, *, account_sid: str, auth_token: str, **engine):
        """``engine``: the engine's own settings (``webhook_url``: for messages that name no
        ``StatusCallback``; ``step_seconds``, ``slow_seconds``, ``fault_rates``, ...)."""
        super().__init__(**engine)
        self.account_sid, self.auth_token = account_sid, auth_token

    @classmethod
    def from_config(cls, config: dict, *, webhook_url: str | None, step_seconds: float):
        return cls(account_sid=config["account_sid"], auth_token=config["auth_token"],
                   webhook_url=webhook_url, step_seconds=step_seconds)

    # -- dialect ------------------------------------------------------------------------
    def authenticate(self, req):
        auth = req.authorization
        if auth is not None and hmac.compare_digest(auth.username or "", self.account_sid) \
                and hmac.compare_digest(auth.password or "", self.auth_token):
            return None
        return error(401, 20003, "Authenticate")

    def advance(self, booking: dict) -> None:
        if "undeliverable" in booking["faults"] or "no_driver" in booking["faults"]:
            self.set_status(booking, "undelivered")
            return
        super().advance(booking)

    def webhook_target(self, booking: dict) -> str | None:
        return booking["payload"].get("StatusCallback") or self.webhook_url

    def queue_webhook(self, booking: dict) -> None:
        if booking["status"] == self.lifecycle[0]:
            return      # no callback for the initial status (Twilio's documentation)
        super().queue_webhook(booking)

    def webhook_body(self, booking: dict) -> dict:
        form = booking["payload"]
        return {"url": self.webhook_target(booking),
                "form": mapping.status_callback_form(
                    self.account_sid, booking["id"], booking["status"],
                    form.get("From") or form.get("MessagingServiceSid", ""), form["To"])}

    def webhook_request(self, body: dict) -> tuple[dict, bytes]:
        pairs = sorted(body["form"].items())
        return ({mapping.SIGNATURE_HEADER: mapping.signature(body["url"], pairs,
                                                             self.auth_token),
                 "Content-Type": "application/x-www-form-urlencoded"},
                urlencode(pairs).encode())

    def _send(self, body: dict) -> None:
        if not body.get("url"):
            return
        headers, data = self.webhook_request(body)
        try:
            status = requests.post(body["url"], data=data, headers=headers,
                                   timeout=5).status_code
        except requests.RequestException as exc:
            status = type(exc).__name__
        with self.lock:
            self.webhooks.append({"body": body, "answer": status})

    def describe(self, booking: dict) -> dict:
        return {**super().describe(booking), "message": booking["payload"]}

    def register_routes(self, app: Flask) -> None:
        sim = self

        @app.post("/2010-04-01/Accounts/<account_sid>/Messages.json")
        def send(account_sid):
            if account_sid != sim.account_sid:
                return error(404, 20404, "The requested resource was not found")
            form = request.form.to_dict()
            if not form.get("To"):
                return error(400, 21604, "A 'To' phone number is required.")
            if not (form.get("From") or form.get("MessagingServiceSid")):
                return error(400, 21603, "A 'From' phone number is required.")
            if not form.get("Body"):
                return error(400, 21602, "Message body is required.")
            faults = sim.take_faults("")
            if "reject" in faults:
                return error(400, 21614, "'To' number is not a valid mobile number")
            if "5xx" in faults:
                return error(500, 20500, "Internal Server Error")
            if "429" in faults:
                return error(429, 20429, "Too Many Requests")
            sid = f"SM{sim.next_number():032d}"
            booking = sim.create(sid, sid, "", form, faults)
            if "timeout" in faults:
                time.sleep(sim.slow_seconds)
            response = jsonify(sid=sid, account_sid=sim.account_sid, to=form["To"],
                               from_=form.get("From"), body=form["Body"],
                               status=booking["history"][0], num_segments="1",
                               direction="outbound-api", api_version="2010-04-01",
                               error_code=None, error_message=None, price=None,
                               uri=f"/2010-04-01/Accounts/{sim.account_sid}/Messages/{sid}.json")
            response.status_code = 201
            return response


def error(status: int, code: int, message: str):
    """Twilio's REST error object."""
    response = jsonify(code=code, message=message,
                       more_info=f"https://www.twilio.com/docs/errors/{code}", status=status)
    response.status_code = status
    return response
