"""The WhatsApp Cloud API simulator, on the shared simulator engine.

It follows Meta's documentation (sources in ``mapping.py``): ``POST /{version}/
{phone_number_id}/messages`` with ``Authorization: Bearer <token>`` (401 with Meta's error
object and code 190 otherwise), a template message body (400, code 100, when it is not
one), an answer ``{"messaging_product": "whatsapp", "contacts": [{"input", "wa_id"}],
"messages": [{"id": "wamid..."}]}``, then one status webhook per step (``sent`` ->
``delivered`` -> ``read``) signed ``X-Hub-Signature-256`` with the app secret.

Each message is an engine "booking" with a short lifecycle, so the engine's faults work:
queued faults (``POST /_sim/faults``), outages, ``fault_rates``, ``stall`` (no receipt after
``sent``), ``drop_webhooks``, ``duplicate_webhooks``, ``reorder_webhooks``, ``5xx``, ``429``
(Meta's 130429), ``timeout``, ``reject`` (400, code 131026: not on WhatsApp), and
``undeliverable`` (accepted, then a ``failed`` receipt). Every message received is kept
(``GET /_sim/requests``, ``GET /_sim/bookings``): the privacy test reads them all.
``POST /_sim/inbound`` ``{"from": "6281...", "text": "STOP"}`` makes a citizen's reply
arrive at the webhook, signed like a receipt.
"""

from __future__ import annotations

import hmac
import json
import time

from flask import Flask, jsonify, request

from ...simulators.engine import SimulatorEngine
from . import mapping

LIFECYCLE = ["sent", "delivered", "read"]


class WhatsAppSimulator(SimulatorEngine):
    lifecycle = LIFECYCLE
    no_driver_status = "failed"
    delivered_status = "delivered"
    terminal = {"read", "failed"}
    caller_header = "X-Sim-Caller"      # no credential-free caller name in Meta's API
    configurable = ("app_secret",)

    def __init__(self, *, access_token: str, app_secret: str, phone_number_id: str,
                 **engine):
        """``engine``: the engine's own settings (``webhook_url``, ``step_seconds``,
        ``slow_seconds``, ``fault_rates``, ``fault_seed``)."""
        super().__init__(**engine)
        self.access_token, self.app_secret = access_token, app_secret
        self.phone_number_id = phone_number_id

    @classmethod
    def from_config(cls, config: dict, *, webhook_url: str | None, step_seconds: float):
        return cls(access_token=config["access_token"], app_secret=config["app_secret"],
                   phone_number_id=config["phone_number_id"], webhook_url=webhook_url,
                   step_seconds=step_seconds)

    # -- dialect ------------------------------------------------------------------------
    def authenticate(self, req):
        if hmac.compare_digest(req.headers.get("Authorization", ""),
                               f"Bearer {self.access_token}"):
            return None
        return error(401, 190, "Invalid OAuth access token.", "OAuthException")

    def advance(self, booking: dict) -> None:
        if "undeliverable" in booking["faults"] or "no_driver" in booking["faults"]:
            self.set_status(booking, "failed")
            return
        super().advance(booking)

    def webhook_body(self, booking: dict) -> dict:
        return mapping.status_notification(
            self.phone_number_id, booking["id"], booking["status"], booking["payload"]["to"],
            int(time.time()), callback_data=booking["payload"].get("biz_opaque_callback_data"))

    def webhook_request(self, body: dict) -> tuple[dict, bytes]:
        raw = json.dumps(body).encode()
        return {mapping.SIGNATURE_HEADER: mapping.signature(raw, self.app_secret)}, raw

    def describe(self, booking: dict) -> dict:
        return {**super().describe(booking), "message": booking["payload"]}

    def send_inbound(self, sender_digits: str, text: str) -> None:
        """A citizen's message arrives at the webhook."""
        self._send(mapping.inbound_notification(
            self.phone_number_id, sender_digits, text, f"wamid.IN{self.next_number()}",
            int(time.time())))

    def register_routes(self, app: Flask) -> None:
        sim = self

        @app.post("/<version>/<phone_number_id>/messages")
        def send(version, phone_number_id):
            if phone_number_id != sim.phone_number_id:
                return error(400, 100, "Unsupported post request. Object with ID does not "
                             "exist", "GraphMethodException")
            body = request.get_json(silent=True) or {}
            template = body.get("template") if isinstance(body.get("template"), dict) else {}
            if body.get("messaging_product") != "whatsapp" or body.get("type") != "template" \
                    or not template.get("name") or not isinstance(body.get("to"), str) \
                    or not body["to"].isdigit():
                return error(400, 100, "(#100) Invalid parameter", "OAuthException")
            faults = sim.take_faults("")
            if "reject" in faults:
                return error(400, 131026, "Message undeliverable", "OAuthException")
            if "5xx" in faults:
                return error(500, 1, "An unknown error occurred", "OAuthException")
            if "429" in faults:
                return error(400, 130429, "Rate limit hit", "OAuthException")
            message_id = f"wamid.SIM{sim.next_number()}"
            sim.create(message_id, message_id, "", body, faults)
            if "timeout" in faults:
                time.sleep(sim.slow_seconds)
            return jsonify(messaging_product="whatsapp",
                           contacts=[{"input": body["to"], "wa_id": body["to"]}],
                           messages=[{"id": message_id}])

        @app.post("/_sim/inbound")
        def inbound():
            body = request.get_json(silent=True) or {}
            sim.send_inbound(str(body.get("from", "")), str(body.get("text", "")))
            return jsonify(ok=True)


def error(status: int, code: int, message: str, kind: str):
    """Meta's Graph API error object."""
    response = jsonify(error={"message": message, "type": kind, "code": code,
                              "fbtrace_id": "SIMTRACE"})
    response.status_code = status
    return response
