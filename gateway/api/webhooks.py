"""Provider webhooks: ``POST /webhooks/<courier>``.

Public in the sense that no agency key is asked: each courier adapter authenticates its own
provider on the raw body, and anything it cannot verify is refused (401) and changes nothing.
The handler stores the reports in the deduplicating inbox and answers at once; jobs apply
them. A provider retrying the same report gets 200 again, and nothing happens twice.
"""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify, request

from ..couriers import WebhookRejected
from ..errors import ApiError
from ..events import Event
from ..tracking import store_events
from . import public

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


@bp.post("/<courier>")
@public
def receive(courier: str):
    """Verify, deduplicate and queue a provider's status report."""
    gateway = current_app.extensions["gateway"]
    adapter = gateway.couriers.get(courier)
    if adapter is None:
        raise ApiError(404, "courier_not_found", "No courier of that name takes webhooks here.")
    raw = request.get_data(cache=False)
    try:
        adapter.verify_webhook(request.headers, raw)
        events = adapter.parse_webhook(request.headers, raw)
    except WebhookRejected as exc:
        log.warning("webhook for %s refused: %s", courier, exc)
        with gateway.db.write() as session:
            gateway.track(session, Event("provider.webhook", actor=f"courier:{courier}",
                                         outcome="refused", details={"reason": str(exc)[:120]}))
        raise ApiError(401, "webhook_rejected",
                       "The webhook could not be verified and was not accepted.") from None
    new_ids, duplicates = store_events(gateway, courier, events, source="webhook")
    return jsonify(received=len(new_ids), duplicates=duplicates)
