"""WhatsApp Cloud API payloads and webhooks, as pure functions (no I/O).

Sources (the reference sheet ``citizen-and-office.md`` §1):

* send: ``POST {base_url}/{version}/{phone_number_id}/messages`` with ``Authorization: Bearer``;
  body ``{"messaging_product": "whatsapp", "to": "<digits>", "type": "template",
  "template": {"name", "language": {"code"}, "components": [{"type": "body", "parameters":
  [{"type": "text", "text": ...}]}]}}``; the answer's ``messages[0].id`` is the ``wamid``
  (Meta, developers.facebook.com .../whatsapp/messages/send-messages; whatsapp.github.io
  TemplateObject). ``to`` is the E.164 number without its ``+``. ``biz_opaque_callback_data``
  (an arbitrary string sent with the message and returned in its status webhooks: the
  whatsapp-api-js library's ``OnStatusArgs``) carries our reference, so a message whose send
  answer was lost is still recognised by its receipts.
* status webhook: ``entry[].changes[].value.statuses[]`` =
  ``{id, status: sent|delivered|read|failed, timestamp, recipient_id, errors?}``, with
  ``value.metadata.phone_number_id`` naming our number (Meta .../webhooks/reference/messages/
  status); order not guaranteed, and a message read at once skips ``delivered``.
* inbound message: ``value.messages[] = {from, id, timestamp, type: "text", text: {body}}``
  (same reference).
* signature: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(raw body, app secret)>``
  (Meta .../webhooks/create-webhook-endpoint; hexdocs whatsapp_sdk WhatsApp.Webhook).
* handshake: ``GET ?hub.mode=subscribe&hub.challenge=X&hub.verify_token=T`` answered 200 with
  ``X`` when ``T`` is ours, else 403 (same page).
* errors: ``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``; code
  ``130429`` is the throughput limit (Meta .../throughput).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime

from .. import InboundMessage, Receipt, WebhookContent

SIGNATURE_HEADER = "X-Hub-Signature-256"

STATUS_MAP = {"sent": "sent", "delivered": "delivered", "read": "read", "failed": "failed",
              # a status Meta may add later: recorded, changes nothing
              "deleted": None}

#: Meta's throughput limit (too many messages per second from one number): try again later
RATE_LIMIT_CODES = frozenset({130429, 131056})


def messages_path(version: str, phone_number_id: str) -> str:
    return f"/{version}/{phone_number_id}/messages"


def template_payload(to_e164: str, template: str, language: str,
                     parameters: tuple[str, ...], reference: str | None = None) -> dict:
    """The send body for a template message with text body parameters, in order, and our
    ``reference`` to be echoed in its status webhooks."""
    components = [{"type": "body",
                   "parameters": [{"type": "text", "text": value} for value in parameters]}
                  ] if parameters else []
    payload = {"messaging_product": "whatsapp", "recipient_type": "individual",
               "to": to_e164.removeprefix("+"), "type": "template",
               "template": {"name": template, "language": {"code": language},
                            "components": components}}
    if reference:
        payload["biz_opaque_callback_data"] = reference
    return payload


def parse_send_answer(body: dict) -> str | None:
    """The ``wamid`` of a send answer, or None."""
    messages = body.get("messages") if isinstance(body, dict) else None
    if isinstance(messages, list) and messages and isinstance(messages[0], dict):
        message_id = messages[0].get("id")
        return message_id if isinstance(message_id, str) and message_id else None
    return None


def error_code(body) -> int | None:
    error = body.get("error") if isinstance(body, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, int) else None


def signature(raw_body: bytes, app_secret: str) -> str:
    """The ``X-Hub-Signature-256`` value Meta sends for ``raw_body``."""
    return "sha256=" + hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()


def _time(value) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def parse_webhook(raw_body: bytes, phone_number_id: str) -> WebhookContent:
    """Receipts and inbound messages of a verified webhook body, for our number only:
    changes about another ``phone_number_id`` (another number of the same app) are left
    out, so they can never touch our messages.

    :raises ValueError: not a WhatsApp Business Account notification
    """
    body = json.loads(raw_body)
    if not isinstance(body, dict) or body.get("object") != "whatsapp_business_account":
        raise ValueError("not a whatsapp_business_account notification")
    receipts, inbound = [], []
    for entry in _list(body.get("entry")):
        for change in _list(entry.get("changes") if isinstance(entry, dict) else None):
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict):
                continue
            metadata = value.get("metadata") if isinstance(value.get("metadata"), dict) else {}
            if str(metadata.get("phone_number_id", "")) != phone_number_id:
                continue
            for status in _list(value.get("statuses")):
                if not isinstance(status, dict) or not isinstance(status.get("id"), str) \
                        or not isinstance(status.get("status"), str):
                    continue
                errors = _list(status.get("errors"))
                code = errors[0].get("code") if errors and isinstance(errors[0], dict) \
                    else None
                reference = status.get("biz_opaque_callback_data")
                receipts.append(Receipt(
                    provider_message_id=status["id"], raw_status=status["status"],
                    status=STATUS_MAP.get(status["status"]),
                    occurred_at=_time(status.get("timestamp")),
                    error=str(code) if code is not None else None,
                    our_reference=reference if isinstance(reference, str) else None))
            for message in _list(value.get("messages")):
                if not isinstance(message, dict) or not isinstance(message.get("from"), str):
                    continue
                text = message.get("text") if isinstance(message.get("text"), dict) else {}
                inbound.append(InboundMessage(
                    sender="+" + message["from"].lstrip("+"),
                    text=str(text.get("body", "")),
                    provider_message_id=message.get("id")
                    if isinstance(message.get("id"), str) else None))
    return WebhookContent(receipts, inbound)


def _list(value) -> list:
    return value if isinstance(value, list) else []


# -- what the simulator sends, in the same dialect ------------------------------------------
def status_notification(phone_number_id: str, message_id: str, status: str,
                        recipient_digits: str, timestamp: int, error_code_: int | None = None,
                        callback_data: str | None = None) -> dict:
    """A status webhook body as Meta sends it (for the simulator)."""
    item = {"id": message_id, "status": status, "timestamp": str(timestamp),
            "recipient_id": recipient_digits}
    if callback_data:
        item["biz_opaque_callback_data"] = callback_data
    if status != "failed":
        item["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "utility"}
    else:
        item["errors"] = [{"code": error_code_ or 131026, "title": "Message undeliverable",
                           "error_data": {"details": "Message undeliverable"}}]
    return _notification(phone_number_id, {"statuses": [item]})


def inbound_notification(phone_number_id: str, sender_digits: str, text: str,
                         message_id: str, timestamp: int) -> dict:
    """An inbound text message webhook body as Meta sends it (for the simulator)."""
    return _notification(phone_number_id, {
        "contacts": [{"profile": {"name": "Citizen"}, "wa_id": sender_digits}],
        "messages": [{"from": sender_digits, "id": message_id, "timestamp": str(timestamp),
                      "type": "text", "text": {"body": text}}]})


def _notification(phone_number_id: str, value: dict) -> dict:
    return {"object": "whatsapp_business_account", "entry": [{
        "id": "WABA-SIM", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000",
                         "phone_number_id": phone_number_id},
            **value}}]}]}
