"""The GO-SEND adapter: GO-JEK's courier service, booked through the GoKilat partner API.

Transport only; every payload and status translation is in ``mapping.py``. Credentials
(``Client-ID``, ``Pass-Key``) and the webhook token come from ``couriers.yaml``, normally as
``{$env: ...}`` references. Webhooks are authenticated by the token we registered with
GO-SEND, in a configurable header, compared in constant time; anything else is refused.

A ``sandbox`` entry must point at a simulator on this machine or at GO-SEND's integration
host, so a test key can never reach the live service.
"""

from __future__ import annotations

import json

from marshmallow import RAISE, Schema, fields, validate

from ...errors import StartupError
from ...hookspecs import hookimpl
from ...origins import sandbox_refusal
from .. import (
    CourierAdapter,
    CourierRejected,
    WebhookRejected,
    check_static_secret,
)
from . import mapping

#: where a sandbox entry may go besides a simulator on this machine
PROVIDER_SANDBOXES = ("https://integration-kilat-api.gojekapi.com",)


class GoSendConfigSchema(Schema):
    class Meta:
        unknown = RAISE

    base_url = fields.Url(required=True, require_tld=False, schemes={"http", "https"})
    client_id = fields.String(required=True, validate=validate.Length(min=1))
    pass_key = fields.String(required=True, validate=validate.Length(min=1),
                             metadata={"secret": True})
    webhook_token = fields.String(required=True, validate=validate.Length(min=16),
                                  metadata={"secret": True})
    webhook_header = fields.String(load_default="X-Callback-Token")
    shipment_method = fields.String(load_default="Instant",
                                    validate=validate.OneOf(["Instant", "SameDay"]))
    payment_type = fields.Integer(load_default=3)


class GoSendCourier(CourierAdapter):
    name = "gosend"
    supports = frozenset({"delivery"})
    config_schema = GoSendConfigSchema
    status_map = mapping.STATUS_MAP
    simulator = "gateway.couriers.gosend.simulator:GoSendSimulator"

    def __init__(self, instance, config, session=None):
        super().__init__(instance, config, session)
        self.base_url = config["base_url"].rstrip("/")
        if self.sandbox and sandbox_refusal(self.base_url, PROVIDER_SANDBOXES):
            raise StartupError(f"courier {instance!r} is marked sandbox but its base_url is "
                               "not a simulator on this machine nor GO-SEND's integration host")
        self.http.headers.update({"Client-ID": config["client_id"],
                                  "Pass-Key": config["pass_key"],
                                  "Accept": "application/json"})

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _quote(self, order):
        response = self.http.get(self._url(mapping.PRICE_PATH),
                                 params=mapping.price_query(order, self.config["payment_type"]),
                                 timeout=self.timeout)
        self.raise_for_status(response)
        return mapping.parse_quote(self.instance, response.json(),
                                   self.config["shipment_method"])

    def _book(self, order, reference):
        payload = mapping.booking_payload(order, reference,
                                          shipment_method=self.config["shipment_method"],
                                          payment_type=self.config["payment_type"])
        response = self.http.post(self._url(mapping.BOOKING_PATH), json=payload,
                                  timeout=self.timeout)
        self.raise_for_status(response, creating=True)
        body = response.json()
        if not body.get("orderNo"):
            raise CourierRejected(body.get("errorMessage") or "no order number in the answer")
        return mapping.parse_booking(self.instance, body)

    def _get_status(self, provider_reference):
        response = self.http.get(self._url(mapping.status_path(provider_reference)),
                                 timeout=self.timeout)
        self.raise_for_status(response)
        return mapping.parse_status(response.json())

    def _find_by_reference(self, reference):
        response = self.http.get(self._url(mapping.store_order_path(reference)),
                                 timeout=self.timeout)
        if response.status_code == 404:
            return None
        self.raise_for_status(response)
        return mapping.parse_booking(self.instance, response.json())

    def _cancel(self, provider_reference):
        response = self.http.put(self._url(mapping.CANCEL_PATH),
                                 json={"orderNo": provider_reference}, timeout=self.timeout)
        self.raise_for_status(response)

    def _health_check(self):
        response = self.http.get(self._url(mapping.PRICE_PATH), timeout=self.timeout, params={
            "origin": "-8.2192,114.3691", "destination": "-8.2200,114.3700",
            "paymentType": str(self.config["payment_type"])})
        self.raise_for_status(response)

    def _verify_webhook(self, headers, raw_body):
        check_static_secret(headers, self.config["webhook_header"], self.config["webhook_token"])

    def _parse_webhook(self, headers, raw_body):
        try:
            return [mapping.parse_webhook(raw_body)]
        except (ValueError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise WebhookRejected(f"not a GO-SEND booking event: {exc}") from None


@hookimpl
def register_couriers():
    return [GoSendCourier]
