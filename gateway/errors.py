"""The errors the gateway's own rules raise, named by what went wrong, not by HTTP.

Records, intake, operations and the own fleet raise these; they know nothing of status codes.
The edges translate: the API answers each with the one JSON error shape
(:mod:`gateway.api.errors` holds the one table from class to HTTP status), the console shows
a page or a message, the CLI prints the message. So a rule reads the same wherever it is
enforced, and a caller of the domain (the console form, the bulk upload) gets the same code and
the same field paths the API answers with.

Every error carries a stable machine-readable ``code`` (``request_not_found``,
``idempotency_key_reused``), a ``message`` for people, and, where it helps, ``fields``
(dotted field path -> messages) and ``details`` (structured help, such as the next
departures that still have seats). The class says what the caller can do next:

* :class:`NotFound` -- nothing by that name here (or nothing this caller may see);
* :class:`Forbidden` -- it exists, but this caller may not do this;
* :class:`Invalid` -- what was asked is not acceptable as it stands: change it;
* :class:`Conflict` -- it clashes with what is stored now (a reused key, a busy reference,
  a full shuttle, a step out of order): look at the current state first.
"""

from __future__ import annotations

from typing import Any

from .settings import flatten_errors


class StartupError(Exception):
    """The gateway cannot start: plugins disagree, or the configuration is not usable."""


class GatewayError(Exception):
    """A rule of the gateway refused what was asked (base class: raise a subclass)."""

    def __init__(self, code: str, message: str, fields: dict[str, list[str]] | None = None,
                 details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.message, self.fields, self.details = code, message, fields, details


class NotFound(GatewayError):
    """Nothing by that name, or nothing this caller may see: the two look the same, so an id
    of another agency or of the other key type gives nothing away."""


class Forbidden(GatewayError):
    """The caller is known and the thing exists, but this caller may not do this."""


class Invalid(GatewayError):
    """What was asked is not acceptable as it stands; ``fields`` names what to change."""

    @classmethod
    def from_messages(cls, messages: Any, message: str = "The request is not valid.",
                      code: str = "validation_failed") -> Invalid:
        """From marshmallow's nested messages: each becomes a dotted path (``_body`` for
        what concerns the whole body)."""
        fields: dict[str, list[str]] = {}
        for path, text in flatten_errors(messages):
            fields.setdefault(path or "_body", []).append(text)
        return cls(code, message, fields=fields)


class Conflict(GatewayError):
    """What was asked clashes with what is stored now (not with any schema): a reused
    Idempotency-Key, a reference with an active request, no room left, a step out of order."""


class BudgetExhausted(Conflict):
    """The agency's budget for this service is used up (``gateway.costs``), and the service
    refuses new requests until it is raised or a new period begins."""

    def __init__(self, message: str = "The agency's budget for this service is used up.",
                 details: dict[str, Any] | None = None):
        super().__init__("budget_exhausted", message, details=details)


class Unauthenticated(GatewayError):
    """No credentials that the gateway recognises: the caller should send a valid,
    unrevoked key (or sign in) before anything else is considered."""


class TooManyRequests(GatewayError):
    """The caller asked too often: it should wait ``retry_after`` seconds, then try again."""

    def __init__(self, code: str, message: str, retry_after: float):
        super().__init__(code, message)
        self.retry_after = retry_after
