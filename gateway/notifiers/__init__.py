"""Notifiers: the channels that tell citizens about their requests (WhatsApp, SMS; issue 18).

A notifier sends one templated message to one phone number and follows its delivery
receipts. It knows messages, never services nor requests: what it is given is a template
name, a language, named parameters already rendered into text, and a phone number in E.164
(``gateway.phones``). Deciding what to say, to whom, when, and whether to fall back to
another channel is the sending core's (``gateway.notices``), not a notifier's.

Each notifier takes the couriers' shape (``gateway/couriers/``): one folder per provider,
``gateway/notifiers/<name>/`` with ``adapter.py`` (transport, and the plugin that registers
it), ``mapping.py`` (pure payload and receipt translation, no I/O) and ``simulator.py`` (the
stand-in that sandbox mode and the tests talk to, on the shared simulator engine),
registered through the ``register_notifiers`` hook from an entry point of the
``gateway.notifiers`` group, the built-in ones exactly as a third party's. Instances come from
``config/notifiers.yaml``, one per entry, with the couriers' sandbox rule: a ``sandbox``
entry talks only to a simulator on this machine (or the provider's own sandbox), and only
sandbox entries ever carry a message made with a test key.

:meth:`NotifierAdapter.send` is a template method (GOV.UK Notify's ``send_sms`` around
``try_send_sms``): it times the call, logs it without the number or the text, and maps
transport failures to errors named by what the caller should do next.

A notifier must never log or put in an error the phone number, the message's text or its
parameters: they are personal data (a PIN, a first name).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

import requests
from marshmallow import Schema

from .. import origins
from ..errors import StartupError
from ..provider_calls import never_sent, retry_after

log = logging.getLogger(__name__)

#: the channels a notifier can speak; the sending core tries them in the configured order
CHANNELS = ("whatsapp", "sms")

#: receipt statuses, ranked: a receipt applies only if it moves a message forward
#: (WhatsApp's own order is not guaranteed: a ``read`` may come before its ``delivered``;
#: a ``failed`` after ``delivered`` changes nothing)
RECEIPT_RANKS = {"sending": 0, "sent": 10, "failed": 15, "delivered": 20, "read": 30}


# -- errors, named by what the caller should do next ---------------------------------------
class NotifierError(Exception):
    """Base of every error a notifier raises. Raised as such, the send may have happened:
    the sending core does not send again on this channel, it waits for a receipt and falls
    back when none comes in time."""

    outcome: ClassVar[str] = "error"
    #: try the same notifier again later (nothing was sent)
    retry: ClassVar[bool] = False
    #: this message will never go by this notifier: fall back to the next channel now
    fall_back: ClassVar[bool] = False
    retry_after: float | None = None


class NotifierTemporaryError(NotifierError):
    """Nothing was sent (network trouble before sending, 429, 5xx): try again later."""

    outcome = "temporary"
    retry = True

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class NotifierRejected(NotifierError):
    """The provider refused this message for good (not a mobile, not on the channel, a
    template it does not know): fall back to the next channel."""

    outcome = "rejected"
    fall_back = True


class NotifierAuthError(NotifierRejected):
    """Our credentials were refused: this notifier sends nothing until an operator acts;
    fall back to the next channel."""

    outcome = "auth"


class NotifierOutcomeUnknown(NotifierError):
    """The send timed out or failed mid-way: the message may be on its way. Never sent again
    on this channel; its receipt or the fallback timeout decides."""

    outcome = "unknown"


class WebhookRejected(Exception):
    """A receipt or inbound message that cannot be verified: refused, changes nothing."""


# -- what crosses the boundary -------------------------------------------------------------
@dataclass(frozen=True)
class OutgoingMessage:
    """One message to send. ``text`` is the rendered body (for a channel that takes free
    text: SMS); ``parameters`` the template's values in order (for one that takes approved
    templates: WhatsApp). ``reference`` is ours (the message row's id)."""

    to: str
    template: str
    language: str
    parameters: tuple[str, ...]
    text: str
    reference: str


@dataclass(frozen=True)
class SentMessage:
    provider_message_id: str
    status: str = "sent"


@dataclass(frozen=True)
class Receipt:
    """A delivery report: ``status`` is one of :data:`RECEIPT_RANKS` (None when the raw
    status means nothing to us); ``raw_status`` is the provider's word; ``our_reference`` the
    :attr:`OutgoingMessage.reference` when the provider echoes it (it finds a message whose
    send answer was lost)."""

    provider_message_id: str
    raw_status: str
    status: str | None
    occurred_at: datetime | None = None
    error: str | None = None
    our_reference: str | None = None


@dataclass(frozen=True)
class InboundMessage:
    """A message a citizen sent us (a reply of ``STOP``). ``sender`` is E.164."""

    sender: str
    text: str
    provider_message_id: str | None = None


@dataclass(frozen=True)
class WebhookContent:
    receipts: list[Receipt] = field(default_factory=list)
    inbound: list[InboundMessage] = field(default_factory=list)


# -- the adapter base ------------------------------------------------------------------------
class NotifierAdapter:
    """Base class of notifiers, registered (as classes) through ``register_notifiers``.

    :param instance: the entry name in ``notifiers.yaml`` (``whatsapp``, ``whatsapp_sandbox``)
    :param config: the entry's validated settings (``sandbox``, ``timeout_seconds``,
        ``cost``, and the adapter's own keys)
    """

    name: ClassVar[str]
    #: ``whatsapp`` or ``sms``: what the sending core's channel order names
    channel: ClassVar[str]
    config_schema: ClassVar[type[Schema] | None] = None
    #: raw receipt statuses this notifier can receive, each mapped (an invariant test checks)
    status_map: ClassVar[Mapping[str, str | None]] = {}
    #: ``"module:Class"`` of this provider's simulator (``from_config`` constructor)
    simulator: ClassVar[str | None] = None
    #: where a sandbox entry may go besides a simulator on this machine (the provider's own
    #: sandbox, ``scheme://host[:port][/path]``)
    provider_sandboxes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, instance: str, config: dict, session: requests.Session | None = None):
        """:raises StartupError: a sandbox entry whose ``base_url`` is neither a simulator on
        this machine nor one of :attr:`provider_sandboxes` (test keys must never reach the
        world; a notifier with no ``base_url`` calls no one over HTTP)"""
        self.instance = instance
        self.config = config
        self.sandbox = bool(config.get("sandbox", False))
        self.timeout = float(config.get("timeout_seconds", 10))
        self.base_url = str(config.get("base_url") or "").rstrip("/")
        if self.sandbox and self.base_url and \
                origins.sandbox_refusal(self.base_url, self.provider_sandboxes):
            raise StartupError(f"notifier {instance!r} is marked sandbox but its base_url is "
                               "not a simulator on this machine nor the provider's sandbox")
        self.http = session or requests.Session()
        # a redirect would carry our credentials to a host that is not in notifier_hosts
        self.http.max_redirects = 0

    def json_of(self, response: requests.Response) -> dict:
        """A provider's JSON answer, or ``{}`` when it sent none (an error page)."""
        try:
            body = response.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    # -- template methods ------------------------------------------------------------------
    def send(self, message: OutgoingMessage) -> SentMessage:
        """Send ``message``.

        :raises NotifierTemporaryError: nothing sent; try again later
        :raises NotifierRejected: never by this notifier; fall back
        :raises NotifierOutcomeUnknown: may have been sent; never send again here
        """
        started = time.monotonic()
        outcome = "ok"
        try:
            return self._send(message)
        except NotifierError as exc:
            outcome = exc.outcome
            raise
        except requests.RequestException as exc:
            failure = map_transport_error(exc)
            outcome = failure.outcome
            raise failure from exc
        finally:
            ms = round((time.monotonic() - started) * 1000, 1)
            log.info("notifier call notifier=%s operation=send outcome=%s ms=%.1f",
                     self.instance, outcome, ms,
                     extra={"notifier": self.instance, "operation": "send",
                            "outcome": outcome, "duration_ms": ms})

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> None:
        """Refuse (:class:`WebhookRejected`) anything that cannot be verified: fail closed."""
        self._verify_webhook(headers, raw_body)

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> WebhookContent:
        """A verified body's receipts and inbound messages (:class:`WebhookRejected` if it
        cannot be understood)."""
        return self._parse_webhook(headers, raw_body)

    def is_registration_probe(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        """As a courier's: a provider's check of a webhook URL, answered without verifying.
        Neither WhatsApp nor the SMS gateway sends one (WhatsApp checks with
        :meth:`handshake`). Default: none."""
        return False

    def handshake(self, args: Mapping[str, str]) -> str | None:
        """Answer a provider's subscription check of our webhook URL (a ``GET``): the text
        to answer with, or None to refuse (403). Default: no handshake (None)."""
        return None

    def cost(self) -> int:
        """What one message costs, in the region's currency (``cost`` in the entry)."""
        return int(self.config.get("cost", 0))

    # -- provider-specific parts -------------------------------------------------------------
    def _send(self, message: OutgoingMessage) -> SentMessage:
        raise NotImplementedError

    def _verify_webhook(self, headers, raw_body) -> None:
        raise WebhookRejected(f"{self.name} accepts no webhooks")

    def _parse_webhook(self, headers, raw_body) -> WebhookContent:
        raise WebhookRejected(f"{self.name} accepts no webhooks")

    # -- shared machinery ------------------------------------------------------------------
    def raise_for_status(self, response: requests.Response, detail: str = "") -> None:
        """Map an HTTP error answer to the error that says what to do next (a provider code
        in ``detail``, never the message's content)."""
        status = response.status_code
        if status < 400:
            return
        if status == 429:
            raise NotifierTemporaryError(f"rate limited {detail}".strip(),
                                         retry_after=retry_after(response))
        if status in (401, 403):
            raise NotifierAuthError(f"credentials refused ({status})")
        if status >= 500:
            raise NotifierOutcomeUnknown(f"provider error {status} on send")
        raise NotifierRejected(f"rejected ({status}) {detail}".strip())


def check_signature(supplied: str | None, expected: str) -> None:
    """Compare a webhook's signature with the one we computed, in constant time; a missing
    or different one is refused."""
    if not supplied:
        raise WebhookRejected("no signature")
    if not hmac.compare_digest(supplied.encode(), expected.encode()):
        raise WebhookRejected("wrong signature")


def map_transport_error(exc: requests.RequestException) -> NotifierError:
    """A request that never reached the provider is safe to repeat; one that may have, is an
    unknown outcome (a message is never sent twice on one channel)."""
    if never_sent(exc):
        return NotifierTemporaryError(type(exc).__name__)
    return NotifierOutcomeUnknown(f"{type(exc).__name__} on send")
