"""SMS in Twilio's Programmable Messaging dialect, as pure functions (no I/O).

Why Twilio: of the SMS gateways in the reference sheet (``citizen-and-office.md`` §2) it is
the one whose send call *and* delivery-report callback are documented (Zenziva has no
delivery-report callback; Vonage calls its receipts in Indonesia "extremely unreliable").

* send: ``POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json``, form-encoded,
  HTTP Basic auth (Account SID, Auth Token); fields ``To`` (E.164), ``From`` or
  ``MessagingServiceSid``, ``Body``, ``StatusCallback`` (twilio/twilio-go
  AccountsMessagesApi.md). The answer is the message resource, ``sid`` ``SM...`` and
  ``status`` ``queued``; an error is ``{code, message, more_info, status}`` (21614: not a
  mobile number, 21610: the recipient unsubscribed, 20003: authentication, 20429: too many
  requests).
* delivery report: Twilio POSTs form fields ``MessageSid``, ``MessageStatus``, ``ErrorCode``
  (with ``AccountSid``, ``From``, ``To``...) to ``StatusCallback`` for each status after the
  first (twilio.com docs/messaging/guides/outbound-message-status-in-status-callbacks);
  statuses from twilio-openapi ``MessageEnumStatus``.
* signature: ``X-Twilio-Signature`` = base64(HMAC-SHA1(Auth Token, the webhook URL exactly as
  configured + every POST parameter, sorted by name, as name followed by value))
  (twilio.com docs/usage/webhooks/webhooks-security; twilio-node
  examples/WebhookSignatureValidation.md). The URL is ours, from configuration, never the
  request's ``Host`` header, which a forger chooses.
* inbound: a reply arrives as a form POST with ``From``, ``To``, ``Body``, ``MessageSid``
  (same security page). Twilio's Indonesian guidelines say two-way SMS is not supported
  there (twilio.com/en/guidelines/id/sms), so in Indonesia STOP comes by WhatsApp; the
  parsing is here for regions that have it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qsl

from .. import InboundMessage, Receipt, WebhookContent

SIGNATURE_HEADER = "X-Twilio-Signature"

STATUS_MAP = {
    "accepted": "sending", "scheduled": "sending", "queued": "sending", "sending": "sending",
    "sent": "sent", "delivered": "delivered", "read": "read",
    "failed": "failed", "undelivered": "failed", "canceled": "failed",
    # inbound and multi-part states: recorded, change nothing
    "receiving": None, "received": None, "partially_delivered": None,
}


def messages_path(account_sid: str) -> str:
    return f"/2010-04-01/Accounts/{account_sid}/Messages.json"


def send_form(to_e164: str, body: str, sender: dict, status_callback: str | None) -> dict:
    """The send call's form: ``sender`` is ``{"From": ...}`` or
    ``{"MessagingServiceSid": ...}``."""
    form = {"To": to_e164, "Body": body, **sender}
    if status_callback:
        form["StatusCallback"] = status_callback
    return form


def parse_send_answer(body) -> str | None:
    sid = body.get("sid") if isinstance(body, dict) else None
    return sid if isinstance(sid, str) and sid else None


def error_code(body) -> int | None:
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, int) else None


def form_pairs(raw_body: bytes) -> list[tuple[str, str]]:
    """A form body's pairs as sent (strict: a malformed body raises ValueError)."""
    return parse_qsl(raw_body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(
        raw_body))


def signature(url: str, pairs: list[tuple[str, str]], auth_token: str) -> str:
    """The ``X-Twilio-Signature`` Twilio computes for a POST of ``pairs`` to ``url``."""
    data = url + "".join(f"{name}{value}" for name, value in sorted(pairs))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def parse_webhook(raw_body: bytes, account_sid: str) -> WebhookContent:
    """A status callback's receipt, or an inbound message, for our account only.

    :raises ValueError: neither, or another account's
    """
    form = dict(form_pairs(raw_body))
    if form.get("AccountSid") != account_sid:
        raise ValueError("not for this account")
    if form.get("MessageStatus") and form.get("MessageSid"):
        raw = form["MessageStatus"]
        if raw in ("received", "receiving") and form.get("Body") is not None:
            return WebhookContent(inbound=[_inbound(form)])
        return WebhookContent(receipts=[Receipt(
            provider_message_id=form["MessageSid"], raw_status=raw,
            status=STATUS_MAP.get(raw), error=form.get("ErrorCode") or None)])
    if form.get("From") and form.get("Body") is not None:
        return WebhookContent(inbound=[_inbound(form)])
    raise ValueError("neither a status callback nor an inbound message")


def _inbound(form: dict) -> InboundMessage:
    return InboundMessage(sender=form["From"], text=form.get("Body", ""),
                          provider_message_id=form.get("MessageSid"))


# -- what the simulator sends, in the same dialect ------------------------------------------
def status_callback_form(account_sid: str, message_sid: str, status: str, sender: str,
                         to: str) -> dict:
    form = {"AccountSid": account_sid, "ApiVersion": "2010-04-01", "From": sender,
            "MessageSid": message_sid, "MessageStatus": status, "SmsSid": message_sid,
            "SmsStatus": status, "To": to}
    if status in ("failed", "undelivered"):
        form["ErrorCode"] = "30003"     # Unreachable destination handset
    return form
