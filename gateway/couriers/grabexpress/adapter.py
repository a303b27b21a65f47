"""The GrabExpress adapter: Grab's courier service, booked through its Delivery API v1.

Transport only; every payload and status translation is in ``mapping.py``. Calls
carry an OAuth2 client-credentials token (``client_id``/``client_secret`` from
``couriers.yaml``, normally as ``{$env: ...}`` references), fetched from ``token_url`` and
kept until a little before it expires. A call answered 401 gets a fresh token and is sent
once more; a second 401 is :class:`CourierAuthError`, never a loop. The token cache is shared
by the threads of one process, behind a lock.

Grab has no lookup by our reference: a booking whose create answer was lost is released by
cancelling everything under its ``merchantOrderID`` (``release_by_reference``), and dispatch
then books again under a new reference. Webhooks are authenticated by the static
``Authorization`` (and, when configured, ``Authorization-Id``) values we gave Grab, compared
in constant time; anything else is refused.

Cash on delivery goes as Grab's ``CASH`` payment method with its amount. Grab enables payment
types per project, and a contract may cap the cash a driver collects: an entry says so with
``cash_on_delivery: false`` or ``max_cash_on_delivery``, and :meth:`refusal` then skips
such orders before any call, so routing gives them to the next courier (the own fleet takes
COD). A refusal by Grab itself ("Taxi type ID not found") is a rejection and fails over too.
Field by field, with sources: ``docs/couriers.md``.

A ``sandbox`` entry must point at a simulator on this machine or at Grab's sandbox path, so
a test key can never reach the live service.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import requests
from marshmallow import RAISE, Schema, fields, validate

from ...errors import StartupError
from ...hookspecs import hookimpl
from ...origins import sandbox_refusal
from .. import (
    CourierAdapter,
    CourierAuthError,
    CourierOutcomeUnknown,
    CourierRejected,
    CourierTemporaryError,
    WebhookRejected,
    check_static_secret,
    map_transport_error,
)
from . import mapping

log = logging.getLogger(__name__)
GRAB_API_HOST = "partner-api.grab.com"
SANDBOX_PATH = "/grab-express-sandbox"
#: where a sandbox entry may fetch its tokens besides this machine (GrabID, and its staging)
GRAB_TOKEN_HOSTS = {GRAB_API_HOST, "partner-api.stg-myteksi.com", "api.stg-myteksi.com"}
SERVICE_TYPES = ["INSTANT", "SAME_DAY"]
VEHICLE_TYPES = ["BIKE", "CAR", "JUSTEXPRESS", "VAN", "TRUCK", "TRIKE", "EBIKE", "SUV",
                 "BOXPICKUPTRUCK", "TRICYCLE", "CYCLE", "FOOT"]
#: the longest a token is refreshed before its announced expiry
EARLY_REFRESH_SECONDS = 60.0
#: how long to keep a token whose answer gives no ``expires_in`` (a 401 refreshes it sooner)
UNSTATED_LIFETIME_SECONDS = 300.0


class GrabExpressConfigSchema(Schema):
    class Meta:
        unknown = RAISE

    base_url = fields.Url(required=True, require_tld=False, schemes={"http", "https"},
                          metadata={"description": "The API base, e.g. "
                                                   "https://partner-api.grab.com/grab-express"})
    token_url = fields.Url(required=True, require_tld=False, schemes={"http", "https"},
                           metadata={"description": "GrabID's OAuth2 token endpoint."})
    client_id = fields.String(required=True, validate=validate.Length(min=1))
    client_secret = fields.String(required=True, validate=validate.Length(min=1),
                                  metadata={"secret": True})
    webhook_auth = fields.String(required=True, validate=validate.Length(min=16),
                                 metadata={"secret": True, "description":
                                           "What Grab sends in the webhook's Authorization."})
    webhook_auth_id = fields.String(load_default=None, allow_none=True,
                                    validate=validate.Length(min=1), metadata={
                                        "description": "What Grab sends in Authorization-Id, "
                                                       "if we gave it one."})
    service_type = fields.String(load_default="INSTANT", validate=validate.OneOf(SERVICE_TYPES))
    vehicle_type = fields.String(load_default="BIKE", validate=validate.OneOf(VEHICLE_TYPES))
    cash_on_delivery = fields.Boolean(load_default=True, metadata={
        "description": "Grab enabled the CASH payment method for this project (Grab sets "
                       "the payment types per project); when false, cash-on-delivery orders "
                       "skip this courier."})
    max_cash_on_delivery = fields.Integer(load_default=None, allow_none=True, strict=True,
                                          validate=validate.Range(min=1), metadata={
                                              "description": "The most cash a driver may "
                                                             "collect under the contract; "
                                                             "larger amounts skip this "
                                                             "courier."})
    cod_type = fields.String(load_default=None, allow_none=True,
                             validate=validate.OneOf(mapping.COD_TYPES), metadata={
                                 "description": "Grab's codType for cash-on-delivery orders, "
                                                "if the contract names one."})


def _sandbox_problem(base_url: str, token_url: str) -> str | None:
    if sandbox_refusal(base_url, [f"https://{GRAB_API_HOST}{SANDBOX_PATH}"]):
        return "its base_url is neither a simulator on this machine nor Grab's sandbox path"
    if sandbox_refusal(token_url, [f"https://{host}" for host in sorted(GRAB_TOKEN_HOSTS)]):
        return "its token_url is neither on this machine nor GrabID's"
    return None


class GrabExpressCourier(CourierAdapter):
    name = "grabexpress"
    supports = frozenset({"delivery", "cash_on_delivery"})
    config_schema = GrabExpressConfigSchema
    status_map = mapping.STATUS_MAP
    simulator = "gateway.couriers.grabexpress.simulator:GrabExpressSimulator"

    def __init__(self, instance, config, session=None):
        super().__init__(instance, config, session)
        self.base_url = config["base_url"].rstrip("/")
        if self.sandbox:
            problem = _sandbox_problem(self.base_url, config["token_url"])
            if problem:
                raise StartupError(f"courier {instance!r} is marked sandbox but {problem}")
        self.http.headers.update({"Accept": "application/json", "Cache-Control": "no-cache"})
        self._token_lock = threading.Lock()
        self._access_token: str | None = None
        self._token_expires_at = 0.0

    def refusal(self, order) -> str | None:
        """Also refuse, before any call, cash on delivery that this Grab project cannot take:
        the CASH payment method not enabled for it, or more cash than its contract lets a
        driver collect. Routing then tries the next courier (the own fleet takes COD)."""
        reason = super().refusal(order)
        amount = getattr(order, "cash_on_delivery", None)
        if reason is not None or not amount:
            return reason
        if not self.config.get("cash_on_delivery", True):
            return "cash on delivery is not enabled for this Grab project"
        most = self.config.get("max_cash_on_delivery")
        if most and amount > most:
            return f"cash on delivery over {most}"
        return None

    def _url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    # -- the token ---------------------------------------------------------------------
    def _token(self, stale: str | None = None) -> str:
        """A valid access token: the cached one, or a new one when it is (nearly) expired or
        is ``stale`` (refused with 401). Threads wait for one fetch instead of each making
        their own; a token another thread has just refreshed is used as it is.

        :raises CourierAuthError: GrabID refused our client credentials
        :raises CourierTemporaryError: GrabID could not be reached or failed; the API call
            was not sent, so even a create may be tried again
        """
        with self._token_lock:
            if self._access_token and self._access_token != stale \
                    and time.monotonic() < self._token_expires_at:
                return self._access_token
            self._access_token = None
            token, lifetime = self._fetch_token()
            self._access_token = token
            self._token_expires_at = time.monotonic() + lifetime \
                - min(EARLY_REFRESH_SECONDS, lifetime / 10)
            return token

    def _fetch_token(self) -> tuple[str, float]:
        try:
            response = self.http.post(
                self.config["token_url"], timeout=self.timeout,
                json=mapping.token_request(self.config["client_id"],
                                           self.config["client_secret"]))
        except requests.RequestException as exc:
            raise map_transport_error(exc, creating=False) from exc
        if 400 <= response.status_code < 500 and response.status_code != 429:
            raise CourierAuthError(f"token refused ({response.status_code})")
        self.raise_for_status(response)
        try:
            body = response.json()
            token = str(body["access_token"])
            lifetime = float(body.get("expires_in") or UNSTATED_LIFETIME_SECONDS)
        except (ValueError, KeyError, TypeError):
            raise CourierTemporaryError("no access token in GrabID's answer") from None
        return token, max(lifetime, 0.0)

    def _send(self, method: str, path: str, **kwargs) -> requests.Response:
        """One API call with a bearer token; on 401, one fresh token and one more try."""
        token = self._token()
        response = self.http.request(method, self._url(path), timeout=self.timeout,
                                     headers={"Authorization": f"Bearer {token}"}, **kwargs)
        if response.status_code == 401:
            token = self._token(stale=token)
            response = self.http.request(method, self._url(path), timeout=self.timeout,
                                         headers={"Authorization": f"Bearer {token}"}, **kwargs)
        # Grab's support asks for its request id of any call in question.
        log.info("grabexpress %s %s answered %s request_id=%s", method, path,
                 response.status_code, response.headers.get("X-Grabkit-Grab-Requestid")
                 or response.headers.get("X-Request-ID"))
        return response

    def _check(self, response: requests.Response, *, creating: bool = False) -> None:
        """Map an error answer, keeping Grab's business message ("Package over weight
        limit", "City not supported") in the error."""
        if response.status_code < 400:
            return
        try:
            text = mapping.error_text(response.json())
        except ValueError:
            text = response.text[:200] or None
        self.raise_for_status(response, creating=creating, message=text)

    # -- operations --------------------------------------------------------------------
    def _quote(self, order):
        response = self._send("POST", mapping.QUOTES_PATH, json=mapping.quote_payload(
            order, service_type=self.config["service_type"],
            vehicle_type=self.config["vehicle_type"], cod_type=self.config.get("cod_type")))
        self._check(response)
        return mapping.parse_quote(self.instance, response.json(), self.config["service_type"])

    def _book(self, order, reference):
        if len(order.dropoffs) != 1:
            raise CourierRejected("GrabExpress takes exactly one drop-off")
        payload = mapping.booking_payload(order, reference,
                                          service_type=self.config["service_type"],
                                          vehicle_type=self.config["vehicle_type"],
                                          cod_type=self.config.get("cod_type"))
        response = self._send("POST", mapping.DELIVERIES_PATH, json=payload)
        self._check(response, creating=True)
        try:
            body = response.json()
        except ValueError:
            raise CourierOutcomeUnknown("unreadable answer to create") from None
        if not isinstance(body, dict) or not body.get("deliveryID"):
            raise CourierRejected(mapping.error_text(body) or "no deliveryID in the answer")
        return mapping.parse_booking(self.instance, body)

    def _get_status(self, provider_reference):
        response = self._send("GET", mapping.delivery_path(provider_reference))
        self._check(response)
        return mapping.parse_status(response.json())

    def _cancel(self, provider_reference):
        """:raises CourierRejected: 409, the parcel is already picked up"""
        self._check(self._send("DELETE", mapping.delivery_path(provider_reference)))

    def _release_by_reference(self, reference):
        """Cancel every delivery under ``reference``; none at all (404) is released too.

        :raises CourierRejected: 409, one of them is already picked up
        """
        response = self._send("DELETE", mapping.merchant_order_path(reference))
        if response.status_code == 404:
            return
        self._check(response)

    def _health_check(self):
        self._token()

    # -- webhooks ------------------------------------------------------------------------
    def _verify_webhook(self, headers, raw_body):
        check_static_secret(headers, "Authorization", self.config["webhook_auth"])
        if self.config.get("webhook_auth_id") is not None:
            check_static_secret(headers, "Authorization-Id", self.config["webhook_auth_id"])

    def _parse_webhook(self, headers, raw_body):
        try:
            return [mapping.parse_webhook(raw_body)]
        except (ValueError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise WebhookRejected(f"not a GrabExpress delivery update: {exc}") from None


@hookimpl
def register_couriers():
    return [GrabExpressCourier]
