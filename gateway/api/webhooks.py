"""Provider webhooks: ``POST /webhooks/<courier>``, and the notifiers' (WhatsApp, SMS)
``GET|POST /webhooks/notifiers/<notifier>``.

Public in the sense that no agency key is asked: each courier adapter authenticates its own
provider on the raw body, and anything it cannot verify is refused (401) and changes nothing.
The handler stores the reports in the deduplicating inbox and answers once they are
committed; jobs apply them. The webhooks (and new requests) that arrive together are stored in
one transaction by the process's group-commit writer (``gateway.group_commit``), so under load
they no longer take turns at the database's write lock one by one. A provider retrying the
same report gets 200 again, and nothing happens twice.

Anyone can post here, so what a refusal costs must stay small and write nothing:

1. the body is read only up to ``webhooks.max_body_bytes`` (413), and must be UTF-8 (400
   ``invalid_body_encoding``) and nest at most ``webhooks.max_depth`` levels (400
   ``body_too_deep``), checked on the bytes before any parser sees them;
2. a provider's registration probe (Lalamove's empty POST, recognised by the adapter) is
   answered 200 at once and only counted (``gateway_webhook_probes_total``): it carries no
   report, so it is neither verified nor stored, and it is not a refusal;
3. the adapter verifies (401 ``webhook_rejected``), then parses (the same);
4. a source address refused ``webhooks.max_rejections_per_source`` times in the window is
   answered 429 with ``Retry-After`` instead of 401 until the window ends. Its webhooks are
   still verified, and a verified one is accepted: an address may be shared (a NAT, a proxy
   that is not trusted to name the client), and a forger must not be able to get the
   provider's genuine reports refused by refusing his own.

Each refusal is counted and logged in sums by :mod:`gateway.webhook_refusals`; none writes
to the database. A verified report that cannot be stored because the database is away is
answered 503 (the provider sends it again), never 500.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, make_response, request

from ..couriers import WebhookRejected
from ..gate import public
from ..notices import apply_inbound, apply_receipts
from ..notifiers import WebhookRejected as NotifierWebhookRejected
from ..ratelimit import retry_after_header, source_of
from ..tracking import store_events
from ..webhook_refusals import UNKNOWN_COURIER
from .errors import ApiError
from .webhook_body import BodyRefused, check_body, read_body

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


@bp.post("/<courier>")
@public
def receive(courier: str):
    """Verify, deduplicate and queue a provider's status report.
    ---
    post:
      operationId: receiveWebhook
      summary: A courier provider's status report (verified by the courier's adapter)
      tags: [webhooks]
      security: []
      parameters:
      - {name: courier, in: path, required: true, schema: {type: string}}
      requestBody:
        required: true
        content: {application/json: {schema: {type: object}}}
      responses:
        200:
          description: Stored (or a duplicate), or a provider's registration probe (an
            empty body where the courier's provider sends one; nothing stored).
          content: {application/json: {schema: WebhookReceiptSchema}}
        400:
          description: Not UTF-8 (`invalid_body_encoding`) or nested deeper than
            `webhooks.max_depth` (`body_too_deep`); not parsed.
          content: {application/json: {schema: ErrorSchema}}
        401:
          description: Not verifiable (`webhook_rejected`).
          content: {application/json: {schema: ErrorSchema}}
        404:
          description: No courier of that name (`courier_not_found`).
          content: {application/json: {schema: ErrorSchema}}
        413:
          description: Over `webhooks.max_body_bytes` (`payload_too_large`).
          content: {application/json: {schema: ErrorSchema}}
        415:
          description: Sent with a Content-Encoding (`unsupported_media_type`).
          content: {application/json: {schema: ErrorSchema}}
        429:
          description: Too many refused webhooks from this address lately
            (`rate_limited`); see Retry-After.
          content: {application/json: {schema: ErrorSchema}}
        503:
          description: "The database is away; nothing was stored (`service_unavailable`):
            send it again."
          content: {application/json: {schema: ErrorSchema}}
    """
    gateway = current_app.extensions["gateway"]
    adapter = gateway.couriers.get(courier)
    if adapter is None:
        gateway.webhook_refusals.refused(UNKNOWN_COURIER, "unknown_courier",
                                         source_of(request.remote_addr))
        raise ApiError(404, "courier_not_found", "No courier of that name takes webhooks here.")
    events = _verified(gateway, courier, adapter)
    if events is None:
        # A registration probe: nothing to verify and nothing to store; answered and counted.
        gateway.metrics.count_webhook_probe(courier)
        return jsonify(received=0, duplicates=0)
    # Stored with the webhooks and new requests arriving together (one transaction), and
    # answered once that has committed.
    new_ids, duplicates = store_events(gateway, courier, events, source="webhook",
                                       grouped=True)
    return jsonify(received=len(new_ids), duplicates=duplicates)


def _verified(gateway, label: str, adapter):
    """The parsed content of this request's body, once it passed every check of the module
    docstring (size, encoding, depth, the adapter's verification, then its parsing); each
    refusal raises the API's error and is counted under ``label``. Couriers' and notifiers'
    adapters alike (``verify_webhook``, ``parse_webhook``). None for a provider's webhook
    registration probe (``is_registration_probe``: Lalamove's empty POST)."""
    refusals, limits = gateway.webhook_refusals, gateway.settings["webhooks"]
    source = source_of(request.remote_addr)
    try:
        raw = read_body(request, limits["max_body_bytes"])
        check_body(raw, limits["max_depth"])
    except BodyRefused as exc:
        refusals.refused(label, exc.reason, source)
        raise ApiError(exc.status, exc.code, exc.message) from None
    if adapter.is_registration_probe(request.headers, raw):
        return None
    try:
        adapter.verify_webhook(request.headers, raw)
    except (WebhookRejected, NotifierWebhookRejected) as exc:
        wait = refusals.wait(source)
        if wait is not None:
            refusals.refused(label, "rate_limited", source, str(exc))
            raise ApiError(429, "rate_limited", "Too many refused webhooks from this address; "
                           "retry after the time in Retry-After.",
                           headers={"Retry-After": retry_after_header(wait)}) from None
        refusals.refused(label, "unverified", source, str(exc))
        raise _rejected() from None
    try:
        return adapter.parse_webhook(request.headers, raw)
    except (WebhookRejected, NotifierWebhookRejected) as exc:
        # verified: the provider's (or our mapping's) mistake, not held against the address
        refusals.refused(label, "unreadable", source, str(exc), count_source=False)
        raise _rejected() from None


@bp.get("/notifiers/<notifier>")
@public
def notifier_handshake(notifier: str):
    """A notifier provider's check of its webhook URL (WhatsApp's subscription handshake).
    ---
    get:
      operationId: notifierWebhookHandshake
      summary: "WhatsApp: answers hub.challenge, as plain text, only for our verify token"
      tags: [webhooks]
      security: []
      parameters:
      - {name: notifier, in: path, required: true, schema: {type: string}}
      - {name: hub.mode, in: query, schema: {type: string}}
      - {name: hub.verify_token, in: query, schema: {type: string}}
      - {name: hub.challenge, in: query, schema: {type: string}}
      responses:
        200:
          description: The challenge, echoed.
          content: {text/plain: {schema: {type: string}}}
        403:
          description: Not our verify token, or no handshake here (`forbidden`).
          content: {application/json: {schema: ErrorSchema}}
        404:
          description: No notifier of that name (`notifier_not_found`).
          content: {application/json: {schema: ErrorSchema}}
    """
    gateway = current_app.extensions["gateway"]
    adapter = _notifier(gateway, notifier)
    answer = adapter.handshake(request.args)
    if answer is None:
        gateway.webhook_refusals.refused(notifier, "handshake", source_of(request.remote_addr))
        raise ApiError(403, "forbidden", "The verification handshake was refused.")
    response = make_response(answer, 200)
    response.mimetype = "text/plain"
    return response


@bp.post("/notifiers/<notifier>")
@public
def notifier_receive(notifier: str):
    """Verify and apply a notifier provider's delivery receipts and replies (STOP).
    ---
    post:
      operationId: receiveNotifierWebhook
      summary: A notifier's delivery receipts and inbound replies (verified by its adapter)
      tags: [webhooks]
      security: []
      parameters:
      - {name: notifier, in: path, required: true, schema: {type: string}}
      requestBody:
        required: true
        content:
          application/json: {schema: {type: object}}
          application/x-www-form-urlencoded: {schema: {type: object}}
      responses:
        200:
          description: Applied (a replay, a late or a foreign receipt changes nothing).
          content: {application/json: {schema: NotifierWebhookReceiptSchema}}
        400:
          description: Not UTF-8 (`invalid_body_encoding`) or nested too deep
            (`body_too_deep`).
          content: {application/json: {schema: ErrorSchema}}
        401:
          description: Not verifiable (`webhook_rejected`).
          content: {application/json: {schema: ErrorSchema}}
        404:
          description: No notifier of that name (`notifier_not_found`).
          content: {application/json: {schema: ErrorSchema}}
        413:
          description: Over `webhooks.max_body_bytes` (`payload_too_large`).
          content: {application/json: {schema: ErrorSchema}}
        415:
          description: Sent with a Content-Encoding (`unsupported_media_type`).
          content: {application/json: {schema: ErrorSchema}}
        429:
          description: Too many refused webhooks from this address lately
            (`rate_limited`); see Retry-After.
          content: {application/json: {schema: ErrorSchema}}
    """
    gateway = current_app.extensions["gateway"]
    adapter = _notifier(gateway, notifier)
    content = _verified(gateway, notifier, adapter)
    counts = apply_receipts(gateway, notifier, content.receipts)
    opt_outs = apply_inbound(gateway, notifier, content.inbound)
    return jsonify(**counts, replies=opt_outs)


def _notifier(gateway, name: str):
    adapter = gateway.notifiers.get(name)
    if adapter is None:
        gateway.webhook_refusals.refused(UNKNOWN_COURIER, "unknown_notifier",
                                         source_of(request.remote_addr))
        raise ApiError(404, "notifier_not_found",
                       "No notifier of that name takes webhooks here.")
    return adapter


def _rejected() -> ApiError:
    return ApiError(401, "webhook_rejected",
                    "The webhook could not be verified and was not accepted.")
