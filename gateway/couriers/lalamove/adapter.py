"""The Lalamove adapter: on-demand couriers booked through Lalamove's API v3.

Transport only; every payload, signature and status translation is in ``mapping.py``.
Credentials (``api_key``, ``api_secret``) come from ``couriers.yaml``, normally as
``{$env: ...}`` references. Each call is signed with the secret over the exact body it sends
(serialised once), names its ``Market`` and carries a fresh ``Request-ID``.

A booking is a quotation, then an order naming it. A quotation lasts about five minutes: one
that expires within ``quotation_margin_seconds``, or that the order call calls stale
(``ERR_INVALID_QUOTATION_ID``), is replaced once by a fresh one; a stale one is never ordered
with knowingly. A timeout or a 5xx on the order call is an unknown outcome (the wallet may
have been debited); on the quotation call it is only a temporary error.

Lalamove has no lookup and no cancel by our reference, so this adapter implements neither:
an unknown outcome waits for a webhook that carries our reference in ``metadata`` (see
``gateway.dispatch``). Webhooks are verified in the body: ``apiKey`` must be ours, the
timestamp within Lalamove's retry window (an update is sent again for 24 hours with the
timestamp of its first sending; only a few minutes of clock skew into the future), and the
signature must match the raw ``data`` text signed with our secret and the registered
``webhook_path``; anything else is refused. A retry is the same report again: the inbox
deduplicates it by its ``eventId``. The empty POST Lalamove sends when a webhook URL is set
is answered 200 and nothing else (:meth:`LalamoveCourier.is_registration_probe`).

A ``sandbox`` entry must point at a simulator on this machine or at Lalamove's sandbox host,
so a test key can never reach the live service.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import logging
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import requests
from marshmallow import RAISE, Schema, fields, validate
from redis.exceptions import RedisError

from ...errors import StartupError
from ...hookspecs import hookimpl
from ...origins import sandbox_refusal
from .. import (
    CourierAdapter,
    CourierOutcomeUnknown,
    CourierRejected,
    CourierTemporaryError,
    Quote,
    WebhookRejected,
    map_transport_error,
)
from . import mapping

log = logging.getLogger(__name__)

#: where a sandbox entry may go besides a simulator on this machine
PROVIDER_SANDBOXES = ("https://rest.sandbox.lalamove.com",)
#: how many unbooked quotations are kept for their orders' bookings (each lives 5 minutes)
QUOTATIONS_KEPT = 1000

#: answers to a quotation that mean "not from here, not to there" rather than "try later"
NOT_SERVICEABLE = {"ERR_OUT_OF_SERVICE_AREA", "ERR_REVERSE_GEOCODE_FAILURE"}
#: Lalamove sends an update not answered 200 again, 10 times within 24 hours, then disables
#: the webhook URL (webhook tutorial v1.4): a retry may carry a timestamp this old
RETRY_WINDOW_SECONDS = 24 * 3600
RETRY_WINDOW_MARGIN_SECONDS = 2 * 3600


class LalamoveConfigSchema(Schema):
    class Meta:
        unknown = RAISE

    base_url = fields.Url(required=True, require_tld=False, schemes={"http", "https"})
    api_key = fields.String(required=True, validate=validate.Length(min=1),
                            metadata={"secret": True})
    api_secret = fields.String(required=True, validate=validate.Length(min=1),
                               metadata={"secret": True})
    market = fields.String(load_default="ID", validate=validate.Length(min=2),
                           metadata={"description": "The Market header (country code)."})
    service_type = fields.String(load_default="MOTORCYCLE", validate=validate.Length(min=1))
    language = fields.String(load_default="id_ID", validate=validate.Length(min=2))
    webhook_path = fields.String(
        load_default="/webhooks/lalamove_sandbox", validate=validate.Regexp(r"^/\S*$"),
        metadata={"description": "The path of the webhook URL registered with Lalamove "
                                 "(/webhooks/<this entry's name>): it is part of what "
                                 "Lalamove signs."})
    webhook_max_age_seconds = fields.Integer(
        strict=True, load_default=RETRY_WINDOW_SECONDS + RETRY_WINDOW_MARGIN_SECONDS,
        validate=validate.Range(min=60),
        metadata={"description": "Signed webhooks whose timestamp is older are refused. "
                                 "Lalamove sends an update again for 24 hours with the "
                                 "timestamp of its first sending, so the default is 24 h "
                                 "plus a 2 h margin; replays are deduplicated by eventId."})
    webhook_clock_skew_seconds = fields.Integer(
        strict=True, load_default=300, validate=validate.Range(min=1),
        metadata={"description": "Signed webhooks whose timestamp is further than this in "
                                 "the future are refused (clock skew, not retries)."})
    quotation_margin_seconds = fields.Integer(
        strict=True, load_default=15, validate=validate.Range(min=0),
        metadata={"description": "A quotation expiring sooner than this is replaced."})
    pod_enabled = fields.Boolean(load_default=True,
                                 metadata={"description": "Ask drivers for a proof photo."})


class LalamoveCourier(CourierAdapter):
    name = "lalamove"
    # Cash on delivery is not settled for API v3 (reference section 9): not declared.
    supports = frozenset({"delivery", "multi_drop"})
    config_schema = LalamoveConfigSchema
    status_map = mapping.STATUS_MAP
    simulator = "gateway.couriers.lalamove.simulator:LalamoveSimulator"
    adopts_reported_bookings = True

    def __init__(self, instance, config, session=None):
        super().__init__(instance, config, session)
        #: quotations of the last orders quoted, by order reference, for their booking
        self._quoted: dict[str, mapping.Quotation] = {}
        self._quoted_lock = threading.Lock()
        self.base_url = config["base_url"].rstrip("/")
        if self.sandbox and sandbox_refusal(self.base_url, PROVIDER_SANDBOXES):
            raise StartupError(f"courier {instance!r} is marked sandbox but its base_url is "
                               "not a simulator on this machine nor Lalamove's sandbox host")
        # What Lalamove signs is the path as it receives it, prefix included.
        self._path_prefix = urlsplit(self.base_url).path.rstrip("/")
        self.http.headers.update({"Accept": "application/json"})

    def refusal(self, order):
        reason = super().refusal(order)
        if reason is None and len(getattr(order, "dropoffs", ())) > mapping.MAX_DROPOFFS:
            return f"more than {mapping.MAX_DROPOFFS} drop-offs"
        return reason

    # -- transport ---------------------------------------------------------------------
    def _send(self, method: str, path: str, payload=None) -> requests.Response:
        """One signed call: the body is serialised once, and those bytes are both signed and
        sent."""
        body = mapping.encode(payload) if payload is not None else ""
        signed_path = f"{self._path_prefix}{path}"
        headers = mapping.request_headers(
            api_key=self.config["api_key"], secret=self.config["api_secret"],
            market=self.config["market"], method=method, path=signed_path, body_text=body,
            timestamp_ms=int(time.time() * 1000), request_id=str(uuid.uuid4()))
        return self.http.request(method, f"{self.base_url}{path}", headers=headers,
                                 data=body.encode() if body else None, timeout=self.timeout)

    @staticmethod
    def _error_of(response: requests.Response) -> tuple[str | None, str | None]:
        """The provider's error code and ``"CODE: message"`` text of an answer."""
        try:
            body = response.json()
        except ValueError:
            return None, response.text[:200] or None
        return mapping.first_error(body)[0], mapping.error_text(body)

    def _check(self, response: requests.Response, *, creating: bool = False) -> None:
        """Map an error answer, keeping Lalamove's error code in the message."""
        if response.status_code < 400:
            return
        _code, text = self._error_of(response)
        self.raise_for_status(response, creating=creating, message=text)

    def _now(self) -> datetime:
        return datetime.now(UTC)

    # -- operations --------------------------------------------------------------------
    def _quotation(self, order) -> mapping.Quotation:
        """A fresh quotation. Nothing is booked by it, so every failure is temporary or a
        refusal, never an unknown outcome.

        :raises CourierRejected: the order cannot be quoted (out of the service area, ...)
        :raises CourierTemporaryError: the call failed or the answer cannot be read
        """
        payload = mapping.quotation_payload(order, service_type=self.config["service_type"],
                                            language=self.config["language"])
        try:
            response = self._send("POST", mapping.QUOTATIONS_PATH, payload)
            self._check(response)
            return mapping.parse_quotation(response.json(), received_at=self._now(),
                                           stops=1 + len(order.dropoffs))
        except requests.RequestException as exc:
            raise map_transport_error(exc, creating=False) from exc
        except ValueError as exc:
            raise CourierTemporaryError(f"unreadable quotation: {exc}") from None

    def _quote(self, order):
        """Lalamove's quotation (``POST /v3/quotations``) as a neutral quote. The quotation
        is kept for the order's booking, which places an order naming it (quote-token then
        book, courier-apis.md §1) while it is fresh."""
        try:
            quotation = self._quotation(order)
        except CourierRejected as exc:
            if any(code in str(exc) for code in NOT_SERVICEABLE):
                return Quote(courier=self.instance, price=None, serviceable=False)
            raise
        with self._quoted_lock:
            self._quoted[order.reference] = quotation
            while len(self._quoted) > QUOTATIONS_KEPT:
                self._quoted.pop(next(iter(self._quoted)))
        return mapping.parse_quote(self.instance, quotation)

    def _book(self, order, reference):
        margin = self.config["quotation_margin_seconds"]
        with self._quoted_lock:
            quotation = self._quoted.pop(order.reference, None)
        if quotation is None:
            quotation = self._quotation(order)
        requoted = False
        while True:
            if mapping.is_stale(quotation, self._now(), margin):
                if requoted:
                    raise CourierTemporaryError("every quotation expired before it could be "
                                                "used")
                quotation, requoted = self._quotation(order), True
                continue
            payload = mapping.order_payload(quotation, order, reference,
                                            pod_enabled=self.config["pod_enabled"])
            response = self._send("POST", mapping.ORDERS_PATH, payload)
            if response.status_code >= 400 and \
                    self._error_of(response)[0] == mapping.STALE_QUOTATION:
                # Nothing was booked: the provider refused the quotation, not the order.
                if requoted:
                    raise CourierTemporaryError(f"{mapping.STALE_QUOTATION} for a fresh "
                                                "quotation too")
                quotation, requoted = self._quotation(order), True
                continue
            self._check(response, creating=True)
            try:
                return mapping.parse_booking(self.instance, response.json())
            except ValueError as exc:
                # Accepted, but we cannot tell which order was made: reconcile, never rebook.
                raise CourierOutcomeUnknown(f"unreadable order answer: {exc}") from None

    def _get_status(self, provider_reference):
        response = self._send("GET", mapping.order_path(provider_reference))
        self._check(response)
        try:
            body = response.json()
            event = mapping.parse_order(body, asked=provider_reference)
        except ValueError as exc:
            raise CourierTemporaryError(f"unreadable order: {exc}") from None
        driver_id = mapping.driver_of(body)
        if driver_id is None:
            return event
        return dataclasses.replace(event, **self._driver(event.provider_reference, driver_id))

    def _driver(self, order_id: str, driver_id: str) -> dict:
        """Who the driver is (name and plate): a call of its own at Lalamove. The status is
        what the poll is for, so a failure here costs only the driver's details."""
        try:
            response = self._send("GET", mapping.driver_path(order_id, driver_id))
            if response.status_code >= 400:
                return {}
            return mapping.parse_driver(response.json())
        except (requests.RequestException, ValueError) as exc:
            log.info("lalamove driver details not read: %s", type(exc).__name__)
            return {}

    def _cancel(self, provider_reference):
        """:raises CourierRejected: ``ERR_CANCELLATION_FORBIDDEN`` once a driver is on it"""
        response = self._send("DELETE", mapping.order_path(provider_reference))
        self._check(response)

    def register_webhook(self, url: str) -> None:
        """Set the URL Lalamove sends webhooks to (``PATCH /v3/webhook``). Lalamove first
        sends the URL an empty POST and keeps it only if that is answered 200.

        :raises CourierRejected: Lalamove refused the URL (``ERR_INVALID_RESPONSE``: it did
            not answer the probe with 200)
        """
        self._call("webhook", lambda: self._check(
            self._send("PATCH", mapping.WEBHOOK_URL_PATH, {"data": {"url": url}})))

    def _health_check(self):
        self._check(self._send("GET", mapping.CITIES_PATH))

    # -- webhooks ----------------------------------------------------------------------
    def is_registration_probe(self, headers, raw_body) -> bool:
        """Lalamove checks a webhook URL being registered with a POST that has no body and
        expects 200 at once (webhook tutorial v1.4, "Receiving the webhooks", step 6). Only
        an empty (or blank) body is a probe: any body with content is verified as a report."""
        return not raw_body.strip()

    def _envelope(self, raw_body) -> mapping.WebhookEnvelope:
        try:
            return mapping.read_webhook(raw_body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise WebhookRejected(f"not a Lalamove webhook: {exc}") from None

    def _verify_webhook(self, headers, raw_body):
        envelope = self._envelope(raw_body)
        body = envelope.body
        api_key, supplied = body.get("apiKey"), body.get("signature")
        if not isinstance(api_key, str) or not hmac.compare_digest(
                api_key.encode(), self.config["api_key"].encode()):
            raise WebhookRejected("not our API key")
        if not isinstance(supplied, str) or not supplied:
            raise WebhookRejected("no signature")
        sent_at = mapping.webhook_time(body.get("timestamp"))
        if sent_at is None:
            raise WebhookRejected("no timestamp")
        if not mapping.within_retry_window(
                sent_at, self._now(),
                max_age=timedelta(seconds=self.config["webhook_max_age_seconds"]),
                max_ahead=timedelta(seconds=self.config["webhook_clock_skew_seconds"])):
            raise WebhookRejected("timestamp outside the retry window")
        expected = mapping.webhook_signature(self.config["api_secret"], body["timestamp"],
                                             self.config["webhook_path"], envelope.raw_data)
        if not hmac.compare_digest(supplied.lower().encode(), expected.encode()):
            raise WebhookRejected("wrong signature")

    def _parse_webhook(self, headers, raw_body):
        envelope = self._envelope(raw_body)
        try:
            events = mapping.parse_webhook(envelope)
        except ValueError as exc:
            raise WebhookRejected(f"not a Lalamove order event: {exc}") from None
        first = self._first_event_id(envelope.body)
        if first is not None:
            events = [dataclasses.replace(event, event_key=first) for event in events]
        return events

    def _first_event_id(self, body) -> str | None:
        """The ``eventId`` under which this signed body was first received, if another.

        The signature covers the timestamp and ``data``, not the ``eventId``: within the
        retry window, a body seen once (a leaked log, a proxy) could be sent again under a
        new ``eventId`` and pass as a new report. So each signature is remembered (in Redis,
        for as long as its timestamp is acceptable) with the first ``eventId`` it came with,
        and a body that comes back under another is stored under that first one: the inbox
        sees a duplicate, and the sender gets the same 200 as for any retry. Without Redis
        this check is skipped; statuses still move forward only.
        """
        event_id, signature = body.get("eventId"), body.get("signature")
        redis = getattr(self.gateway, "redis", None)
        if redis is None or not event_id or not isinstance(signature, str):
            return None
        digest = hashlib.sha256(signature.lower().encode()).hexdigest()
        key = f"gateway:webhooks:{self.instance}:signature:{digest}"
        seconds = (self.config["webhook_max_age_seconds"] +
                   self.config["webhook_clock_skew_seconds"])
        try:
            redis.set(key, str(event_id)[:128], nx=True, ex=seconds)
            first = redis.get(key)
        except RedisError as exc:
            log.warning("lalamove webhook replay check skipped, Redis unavailable (%s)",
                        type(exc).__name__)
            return None
        first = first.decode() if isinstance(first, bytes) else first
        return first if first and first != str(event_id)[:128] else None


@hookimpl
def register_couriers():
    return [LalamoveCourier]
