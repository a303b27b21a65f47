"""The GO-JEK rides adapter (GoRide motorbike, GoCar car): books ``RideOrder`` rides.

**Provisional: replace the dialect when GO-JEK documents its partner ride API.** That API is
not public; this adapter speaks a dialect we define on the GO-SEND partner conventions (see
``mapping.py`` beside this module), and its simulator (``simulator.py``) is the only target
until the partner documents arrive. No live entry should be configured before then.

Transport only: every path, header, payload field and status is in ``mapping.py``, so a
new dialect replaces that module and the simulator, not this one. Credentials (``Client-ID``,
``Pass-Key``) and the webhook token come from ``couriers.yaml``, normally as ``{$env: ...}``
references. Webhooks are authenticated by the token we register, in a configurable header,
compared in constant time; anything else is refused. How many passengers an entry takes is
its ``limits.max_passengers`` in ``couriers.yaml`` (routing skips bigger parties), not a
number written here.

A ``sandbox`` entry must point at a simulator on this machine, so a test key can never reach
the live service.
"""

from __future__ import annotations

import json

from marshmallow import RAISE, Schema, fields, validate

from ...errors import StartupError
from ...hookspecs import hookimpl
from ...origins import sandbox_refusal
from .. import (
    CourierAdapter,
    CourierOutcomeUnknown,
    CourierTemporaryError,
    WebhookRejected,
    check_static_secret,
)
from . import mapping


class GoRideConfigSchema(Schema):
    class Meta:
        unknown = RAISE

    base_url = fields.Url(required=True, require_tld=False, schemes={"http", "https"})
    client_id = fields.String(required=True, validate=validate.Length(min=1))
    pass_key = fields.String(required=True, validate=validate.Length(min=1),
                             metadata={"secret": True})
    webhook_token = fields.String(required=True, validate=validate.Length(min=16),
                                  metadata={"secret": True})
    webhook_header = fields.String(load_default=mapping.DEFAULT_WEBHOOK_HEADER)
    service_type = fields.String(load_default=mapping.DEFAULT_SERVICE_TYPE,
                                 validate=validate.OneOf(mapping.SERVICE_TYPES))


class GoRideCourier(CourierAdapter):
    name = "goride"
    supports = frozenset({"ride"})
    config_schema = GoRideConfigSchema
    status_map = mapping.STATUS_MAP
    simulator = "gateway.couriers.goride.simulator:GoRideSimulator"

    def __init__(self, instance, config, session=None):
        super().__init__(instance, config, session)
        self.base_url = config["base_url"].rstrip("/")
        if self.sandbox and sandbox_refusal(self.base_url):
            raise StartupError(f"courier {instance!r} is marked sandbox but its base_url is "
                               "not a simulator on this machine")
        self.http.headers.update(mapping.auth_headers(config["client_id"], config["pass_key"]))

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def _book(self, order, reference):
        payload = mapping.booking_payload(order, reference,
                                          service_type=self.config["service_type"])
        response = self.http.post(self._url(mapping.BOOKINGS_PATH), json=payload,
                                  timeout=self.timeout)
        self.raise_for_status(response, creating=True)
        try:
            return mapping.parse_booking(self.instance, response.json())
        except ValueError as exc:
            # A success without a booking id: it may have booked all the same.
            raise CourierOutcomeUnknown(f"unreadable answer to a create: {exc}") from None

    def _get_status(self, provider_reference):
        response = self.http.get(self._url(mapping.booking_path(provider_reference)),
                                 timeout=self.timeout)
        self.raise_for_status(response)
        return mapping.parse_status(response.json())

    def _find_by_reference(self, reference):
        response = self.http.get(self._url(mapping.reference_path(reference)),
                                 timeout=self.timeout)
        if response.status_code == 404:
            return None
        self.raise_for_status(response)
        try:
            return mapping.parse_booking(self.instance, response.json())
        except ValueError as exc:
            raise CourierTemporaryError(f"unreadable answer to a lookup: {exc}") from None

    def _cancel(self, provider_reference):
        response = self.http.put(self._url(mapping.CANCEL_PATH),
                                 json=mapping.cancel_body(provider_reference),
                                 timeout=self.timeout)
        self.raise_for_status(response)

    def _verify_webhook(self, headers, raw_body):
        check_static_secret(headers, self.config["webhook_header"], self.config["webhook_token"])

    def _parse_webhook(self, headers, raw_body):
        try:
            return [mapping.parse_webhook(raw_body)]
        except (ValueError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise WebhookRejected(f"not a ride booking event: {exc}") from None


@hookimpl
def register_couriers():
    return [GoRideCourier]
