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
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

import requests
from sqlalchemy import select

from .context import CORRELATION_HEADER
from .events import Event
from .models import Agency, CallbackDelivery, ServiceRequest, StatusEvent, utcnow
from .queues import enqueue_after_commit

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Gateway-Signature"
EVENT_ID_HEADER = "X-Gateway-Event-Id"
TIMESTAMP_HEADER = "X-Gateway-Timestamp"


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
    enqueue_after_commit(gateway, session, "callback", delivery.id)


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
    signed_at = int(time.time())
    body = callback_body(delivery, record, event, signed_at)
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body),
               EVENT_ID_HEADER: delivery.id, TIMESTAMP_HEADER: str(signed_at),
               "User-Agent": "public-service-gateway/1"}
    if record.correlation_id:
        # the agency's own X-Correlation-ID from the create call (or the one we gave it)
        headers[CORRELATION_HEADER] = record.correlation_id
    try:
        response = requests.post(url, data=body, headers=headers, allow_redirects=False,
                                 timeout=gateway.settings["callbacks"]["timeout_seconds"])
        status, error = response.status_code, None
    except requests.RequestException as exc:
        status, error = None, type(exc).__name__
    retry = status is None or status >= 500 or status == 429
    outcome = "delivered" if status is not None and 200 <= status < 300 else (
        "retry" if retry else "refused")
    with gateway.db.write() as session:
        delivery = session.get(CallbackDelivery, delivery_id)
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
    if outcome == "retry":
        raise CallbackRetry(f"callback {delivery_id}: {error or status}")
    return outcome


def give_up(gateway, delivery_id: str) -> None:
    """After the last retry: keep the outbox row, marked, for the console to show."""
    with gateway.db.write() as session:
        delivery = session.get(CallbackDelivery, delivery_id)
        if delivery is not None and not delivery.delivered_at:
            delivery.gave_up_at = utcnow()
