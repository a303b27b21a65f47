"""Agency callbacks: every status change POSTed to the agency, signed, retried, deduplicable.

The callback is written to an outbox in the same transaction as the status change, then
delivered by a job. The body is JSON; the signature is HMAC-SHA256 over the exact raw body
with the agency's callback secret, sent as::

    X-Gateway-Signature: sha256=<hex digest>
    X-Gateway-Event-Id:  <uuid, the same on every retry of this callback>
    X-Gateway-Timestamp: <unix seconds when this attempt was signed>

The timestamp is inside the signed body too, so a receiver can refuse replays of old
callbacks. Network errors, 5xx and 429 are retried with backoff (rq); any other answer ends
the delivery and is recorded. The body carries references and statuses only, never personal
data.

An agency controls the endpoint, so it must not be able to slow anyone else nor reach
inside: callbacks have a queue of their own (``callbacks``) that only callback workers take
from, short timeouts, a cap on each agency's callbacks in flight (rq's rate limit), a circuit
per host, and every connection goes through :mod:`gateway.urlguard` (no loopback, private or
metadata address, no redirect, no credentials in the URL). What is kept of an answer is its
status code, never its body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from urllib.parse import urlsplit

import requests
from rq.timeouts import JobTimeoutException
from sqlalchemy import select

from .context import CORRELATION_HEADER
from .couriers import CallOutcome
from .couriers.circuit import CircuitBreaker
from .events import Event
from .models import Agency, CallbackDelivery, ServiceRequest, StatusEvent, utcnow
from .queues import callback_limit, enqueue_after_commit
from .urlguard import GuardedSession, UnsafeURL, policy_from_settings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Gateway-Signature"
EVENT_ID_HEADER = "X-Gateway-Event-Id"
TIMESTAMP_HEADER = "X-Gateway-Timestamp"

#: what an agency (and the console) reads about a failed attempt, besides ``HTTP <status>``
NO_ANSWER = "no answer"
HOST_UNAVAILABLE = "host unavailable (too many failures, waiting)"
REFUSED_PREFIX = "refused: "


class CallbackRetry(Exception):
    """The agency's endpoint could not take the callback now; rq retries it later."""


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _callback_url(session, agency_id: str) -> str | None:
    """The agency's callback URL, read once per session (a batch moves many requests of one
    agency; reading it must not flush their pending rows one by one)."""
    known = session.info.setdefault("callback_urls", {})
    if agency_id not in known:
        with session.no_autoflush:
            known[agency_id] = session.scalar(select(Agency.callback_url)
                                              .where(Agency.id == agency_id))
    return known[agency_id]


def queue_callback(gateway, session, record: ServiceRequest, event: StatusEvent) -> None:
    """Add the outbox row for a status change, if the agency wants callbacks."""
    if not _callback_url(session, record.agency_id):
        return
    session.flush()     # the event's id is the callback's sequence number
    delivery = CallbackDelivery(request_id=record.id, agency_id=record.agency_id,
                                sequence=event.id, status=event.status)
    session.add(delivery)
    session.flush()
    enqueue_after_commit(gateway, session, "callback", delivery.id,
                         rate_limit=callback_limit(gateway, record.agency_id))


def callback_body(delivery: CallbackDelivery, record: ServiceRequest, event: StatusEvent,
                  signed_at: int) -> bytes:
    return json.dumps({
        "event_id": delivery.id,
        "sequence": delivery.sequence,
        "request_id": record.id,
        "service": record.service,
        "reference": record.external_reference,
        # a test key's requests call back too: the receiver must be able to tell them apart
        "key_type": record.key_type,
        "status": delivery.status,
        "raw_status": event.raw_status,
        "provider": record.provider,
        "occurred_at": event.created_at.isoformat().replace("+00:00", "Z"),
        "signed_at": signed_at,
    }, separators=(",", ":")).encode()


def host_circuit(gateway) -> CircuitBreaker:
    """The circuit of every callback host, shared by all workers through Redis: after a few
    failed deliveries to one host, its callbacks wait out a cooldown instead of each taking a
    worker for a full timeout."""
    rules = gateway.settings["callbacks"]["circuit"]
    return CircuitBreaker(gateway.redis, _SameRules(rules), closing_operations={"callback"})


class _SameRules(dict):
    """The same circuit settings for every host."""

    def __init__(self, rules: dict):
        super().__init__()
        self.rules = rules

    def get(self, key, default=None):
        return self.rules


def circuit_key(url: str) -> str:
    """The circuit a URL's deliveries share: its host and port (one endpoint server)."""
    try:
        parts = urlsplit(url)
        return f"callback-host:{(parts.hostname or '').lower()}:{parts.port or parts.scheme}"
    except ValueError:
        return "callback-host:invalid"


def _post(gateway, url: str, body: bytes, headers: dict) -> tuple[int | None, str | None]:
    """POST once: ``(status, None)``, or ``(None, what went wrong)`` for the agency to read.

    Only the status code is kept: not the answer's body, nor which network error it was (a
    refused port and a silent one look the same), so the gateway is no port scanner.
    """
    settings = gateway.settings["callbacks"]
    session = GuardedSession(policy_from_settings(gateway.settings))
    try:
        response = session.post(url, data=body, headers=headers, stream=True,
                                 timeout=(settings["connect_timeout_seconds"],
                                          settings["timeout_seconds"]))
        response.close()        # the body is never read
        return response.status_code, None
    except UnsafeURL as exc:
        return None, f"{REFUSED_PREFIX}{exc}"
    except (requests.RequestException, JobTimeoutException) as exc:
        log.info("callback to %s: no answer (%s)", circuit_key(url), type(exc).__name__)
        return None, NO_ANSWER
    finally:
        session.close()


def deliver(gateway, delivery_id: str) -> str:
    with gateway.db.read() as session:
        delivery = session.get(CallbackDelivery, delivery_id)
        if delivery is None or delivery.delivered_at or delivery.gave_up_at:
            return "nothing to do"
        agency = session.get(Agency, delivery.agency_id)
        record = session.get(ServiceRequest, delivery.request_id)
        event = session.get(StatusEvent, delivery.sequence)
        url = agency.callback_url
        secret = gateway.vault.open(agency.callback_secret_ciphertext)
    circuit, key = host_circuit(gateway), circuit_key(url or "")
    if circuit.is_open(key):
        _record(gateway, delivery_id, record, "deferred", None, HOST_UNAVAILABLE)
        raise CallbackRetry(f"callback {delivery_id}: {HOST_UNAVAILABLE}")
    signed_at = int(time.time())
    body = callback_body(delivery, record, event, signed_at)
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body),
               EVENT_ID_HEADER: delivery.id, TIMESTAMP_HEADER: str(signed_at),
               "User-Agent": "public-service-gateway/1"}
    if record.correlation_id:
        # the agency's own X-Correlation-ID from the create call (or the one we gave it)
        headers[CORRELATION_HEADER] = record.correlation_id
    started = time.monotonic()
    status, error = _post(gateway, url, body, headers)
    refused_url = error is not None and error.startswith(REFUSED_PREFIX)
    retry = not refused_url and (status is None or status >= 500 or status == 429)
    outcome = "delivered" if status is not None and 200 <= status < 300 else (
        "retry" if retry else "refused")
    if not refused_url:
        circuit.record(CallOutcome(key, "callback", "temporary" if retry else "ok",
                                   time.monotonic() - started, failed=retry))
    _record(gateway, delivery_id, record, outcome, status, error)
    if outcome == "retry":
        raise CallbackRetry(f"callback {delivery_id}: {error or status}")
    return outcome


def _record(gateway, delivery_id: str, record: ServiceRequest, outcome: str,
            status: int | None, error: str | None) -> None:
    """Write the attempt's outcome on the outbox row and in the audit trail: the status code,
    or one of a few fixed words, never what the endpoint said."""
    with gateway.db.write() as session:
        delivery = session.get(CallbackDelivery, delivery_id)
        if outcome != "deferred":
            delivery.attempts += 1
        if outcome == "delivered":
            delivery.delivered_at = utcnow()
        else:
            delivery.last_error = error or f"HTTP {status}"
            if outcome == "refused":
                delivery.gave_up_at = utcnow()
        gateway.track(session, Event("callback.deliver", actor="worker",
                                     target=f"request:{delivery.request_id}", outcome=outcome,
                                     details={"event_id": delivery.id, "status": delivery.status,
                                              "http_status": status, "error": error},
                                     correlation_id=record.correlation_id))


def give_up(gateway, delivery_id: str) -> None:
    """After the last retry: keep the outbox row, marked, for the console to show."""
    with gateway.db.write() as session:
        delivery = session.get(CallbackDelivery, delivery_id)
        if delivery is not None and not delivery.delivered_at:
            delivery.gave_up_at = utcnow()
