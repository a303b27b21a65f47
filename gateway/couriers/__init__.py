"""The courier-adapter contract: how a provider-neutral order reaches a courier provider.

An adapter knows orders, never services: it cannot tell a medicine delivery from an UMKM
parcel except by what the neutral order says. Each adapter class declares its ``name`` (the
adapter type, e.g. ``gosend``), what it ``supports`` (``delivery``, ``ride``, ``cold_chain``,
``cash_on_delivery``, ``multi_drop``), and its own ``config_schema``. Instances are made from
``config/couriers.yaml``, one per entry, so the same adapter can run against the real provider
and against its simulator side by side (``gosend`` and ``gosend_sandbox``).

The public methods here are template methods (as GOV.UK Notify's ``send_sms`` around
``try_send_sms``): they time the call, log it without personal data, map transport failures
to errors named by what the caller should do next, and report each outcome to an observer
(the circuit breaker). Subclasses implement the ``_``-prefixed provider-specific methods and
keep their payload mapping in pure functions beside them.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import requests
from marshmallow import Schema

from .. import origins
from ..provider_calls import never_sent, retry_after
from ..statuses import AttemptState, Status

log = logging.getLogger(__name__)


# -- errors, named by what the caller should do next ---------------------------------------
# Each class carries what it means everywhere (the attempt state it leaves, the label its
# calls are logged and counted under, whether it counts against the provider's circuit), so
# an adapter only raises the right class and dispatch, the breaker and the metrics follow.
class CourierError(Exception):
    """Base of every error an adapter raises. Raised as such (no subclass fits), it is
    treated as an answer that never came: the booking is looked up before anything else."""

    retry_after: float | None = None
    #: what the attempt that met this error becomes
    attempt_state: ClassVar[AttemptState] = AttemptState.UNKNOWN
    #: the call's outcome label in logs, metrics and the audit trail
    outcome: ClassVar[str] = "error"
    #: a failure of the provider (the circuit breaker counts it), not an answer about an order
    counts_against_provider: ClassVar[bool] = True
    #: opens the provider's circuit at once
    opens_circuit: ClassVar[bool] = False

    @property
    def failure_code(self) -> str | None:
        """The request's failure code, if this ends its last courier's attempt."""
        return self.attempt_state.failure_code

    def attempt_detail(self) -> str | None:
        """What the attempt's timeline entry says (never a credential)."""
        return str(self)[:200] or None


class CourierTemporaryError(CourierError):
    """Try the same provider again later (network trouble before sending, 429, 5xx on a read).

    :ivar retry_after: seconds the provider asked us to wait, when it said
    """

    attempt_state = AttemptState.TEMPORARY
    outcome = "temporary"

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class NoDriverAvailable(CourierError):
    """The provider has no driver now: fail over to the next courier."""

    attempt_state = AttemptState.NO_DRIVER
    outcome = "no_driver"
    counts_against_provider = False


class CourierRejected(CourierError):
    """The provider refused this order for good (validation, not serviceable): don't retry it
    there."""

    attempt_state = AttemptState.REJECTED
    outcome = "rejected"
    counts_against_provider = False


class CourierNotFound(CourierRejected):
    """The provider does not know this booking or reference."""

    outcome = "not_found"


class CourierAuthError(CourierError):
    """Our credentials were refused: take the provider out of rotation and alert."""

    attempt_state = AttemptState.AUTH
    outcome = "auth"
    opens_circuit = True

    def attempt_detail(self) -> str | None:
        return "credentials refused"


class CourierOutcomeUnknown(CourierError):
    """A create call timed out or failed mid-way: the booking may exist. Reconcile by our
    reference; never book again blindly."""

    attempt_state = AttemptState.UNKNOWN
    outcome = "unknown"


def failed_outcomes() -> frozenset[str]:
    """The outcome labels that count against a provider, for reading them back from the
    audit trail: those of every courier error class defined so far (adapters' own included)."""
    found, todo = set(), [CourierError]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.counts_against_provider:
            found.add(cls.outcome)
    return frozenset(found)


class WebhookRejected(Exception):
    """A webhook that cannot be verified. It is refused and changes nothing."""


# -- what crosses the boundary -------------------------------------------------------------
@dataclass(frozen=True)
class Quote:
    """What a courier says an order would cost, before it is booked (neutral of providers).

    :ivar courier: the instance that quoted (``gosend``, ``grab_sandbox``): the provider
    :ivar price: the amount in whole units of ``currency`` (integer rupiah), None if not given
    :ivar valid_until: when the provider stops honouring it (Lalamove's ``expiresAt``), if said
    :ivar duration_minutes: the provider's estimate from booking to drop-off, if said
    :ivar serviceable: False when the provider does not serve this order (an answer, not an
        error: routing falls back)
    """

    courier: str
    price: int | None
    currency: str = "IDR"
    distance_km: float | None = None
    serviceable: bool = True
    valid_until: datetime | None = None
    duration_minutes: int | None = None

    @property
    def amount(self) -> int | None:
        return self.price

    @property
    def provider(self) -> str:
        return self.courier


@dataclass(frozen=True)
class Booking:
    provider: str
    provider_reference: str
    raw_status: str | None = None
    status: Status = Status.BOOKED


@dataclass(frozen=True)
class ProviderEvent:
    """One status report from a provider, by webhook or by polling.

    ``event_key`` deduplicates (the provider's event id, or a digest of the report);
    ``provider_reference`` and/or ``our_reference`` find the request. ``details`` may carry
    ``proof`` (proof of delivery) and ``new_provider_reference`` (the provider replaced the
    booking, e.g. Lalamove's ``ORDER_REPLACED``: the request follows the new id), and
    ``price`` with ``currency`` (what the provider reports charging, whole units: the
    request's final cost, ``gateway.costs``).

    ``courier_name``, ``vehicle_plate`` and ``eta`` say who is coming and when, where the
    provider's report gives them (an adapter leaves them None otherwise). The name is passed
    as the provider gives it; the core keeps only its first word (the citizen's tracking page
    shows the first name and the plate, nothing more). ``eta``: the estimated arrival at the
    drop-off, aware UTC.

    ``proof_urls`` are the links to the proof-of-delivery images the provider reports (they
    expire: the gateway fetches them at once, ``gateway.proofs``); ``delivered_at`` is when
    the provider says the delivery was handed over (the proof's time, else the delivered
    report's), which the record keeps as its delivery time.
    """

    event_key: str
    provider_reference: str | None
    our_reference: str | None
    raw_status: str
    status: Status | None
    occurred_at: datetime | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    courier_name: str | None = None
    vehicle_plate: str | None = None
    eta: datetime | None = None
    proof_urls: tuple[str, ...] = ()
    delivered_at: datetime | None = None


@dataclass(frozen=True)
class CallOutcome:
    """What the observer hears after every provider call.

    :ivar failed: the provider failed (the circuit breaker counts it); "no driver" and a
        rejection are answers, not failures
    :ivar opens_circuit: a failure that takes the provider out of rotation at once
    """

    courier: str
    operation: str
    outcome: str
    seconds: float
    error: str | None = None
    failed: bool = False
    opens_circuit: bool = False


# -- the adapter base ------------------------------------------------------------------------
class CourierAdapter:
    """Base class of courier adapters, registered (as classes) through ``register_couriers``.

    :param instance: the entry name in ``couriers.yaml`` (``gosend``, ``gosend_sandbox``)
    :param config: the entry's validated settings (``sandbox``, ``timeout_seconds``, and the
        adapter's own keys)
    :param session: the HTTP session to use (one per instance, for connection reuse; the
        gateway passes one whose pool fits a dispatch batch: ``gateway.couriers.http``)
    """

    name: ClassVar[str]
    supports: ClassVar[frozenset[str]] = frozenset({"delivery"})
    config_schema: ClassVar[type[Schema] | None] = None
    #: created even when ``couriers.yaml`` has no entry for it (the regency's own fleet)
    default_instance: ClassVar[bool] = False
    #: settings under every entry of this adapter, before the entry's own
    default_config: ClassVar[Mapping[str, Any]] = {}
    #: raw provider statuses this adapter can receive, each mapped (an invariant test checks)
    status_map: ClassVar[Mapping[str, Status | None]] = {}
    #: ``"module:Class"`` of this provider's simulator (a ``SimulatorEngine`` with a
    #: ``from_config`` constructor), served by ``gateway up`` for sandbox entries on this host
    simulator: ClassVar[str | None] = None
    #: a create answer lost at this provider is resolved by its report of the booking under
    #: our reference (it has no lookup and no cancel by our reference: Lalamove)
    adopts_reported_bookings: ClassVar[bool] = False

    def __init__(self, instance: str, config: dict, session: requests.Session | None = None):
        self.instance = instance
        self.config = config
        self.sandbox = bool(config.get("sandbox", False))
        self.timeout = float(config.get("timeout_seconds", 10))
        self.http = session or requests.Session()
        # A redirect would carry our credential headers (Pass-Key, Client-ID) to a host that
        # is not in courier_hosts: providers' APIs answer, they do not redirect.
        self.http.max_redirects = 0
        self.observer: Callable[[CallOutcome], None] | None = None
        self.gateway = None

    def bind(self, gateway) -> None:
        """Called once by the gateway after start-up (for adapters that need the database)."""
        self.gateway = gateway

    def refusal(self, order) -> str | None:
        """Why this courier cannot take ``order`` (for the timeline), or None if it can.

        Checks the order's kind and requirements against ``supports``, and the package or
        party against the entry's ``limits`` (``max_weight_grams``, ``max_side_cm``,
        ``max_passengers``), so routing skips a courier before calling it.
        """
        if order.kind not in self.supports:
            return f"takes no {order.kind} orders"
        missing = sorted(set(order.requirements) - set(self.supports))
        if missing:
            return f"does not support {', '.join(m.replace('_', ' ') for m in missing)}"
        limits = self.config.get("limits") or {}
        package = getattr(order, "package", None)
        if package is not None:
            if limits.get("max_weight_grams") and \
                    (package.weight_grams or 0) > limits["max_weight_grams"]:
                return f"parcel over {limits['max_weight_grams']} g"
            sides = [d for d in (package.length_cm, package.width_cm, package.height_cm) if d]
            if limits.get("max_side_cm") and sides and max(sides) > limits["max_side_cm"]:
                return f"parcel side over {limits['max_side_cm']} cm"
        passengers = getattr(order, "passengers", None)
        if passengers and limits.get("max_passengers") and \
                passengers > limits["max_passengers"]:
            return f"more than {limits['max_passengers']} passengers"
        return None

    def can_take(self, order) -> bool:
        return self.refusal(order) is None

    # -- template methods ------------------------------------------------------------------
    def quote(self, order) -> Quote:
        """What ``order`` would cost here, asked before booking (optional: an adapter without
        a ``_quote`` gives none, see :meth:`gives_quotes`). Nothing is booked by it.

        :raises CourierRejected: the provider gives no quote for this order
        :raises CourierTemporaryError: the call did not get through
        """
        return self._call("quote", self._quote, order)

    def gives_quotes(self) -> bool:
        """Whether this courier quotes at all (its adapter implements ``_quote``); dispatch
        asks only those."""
        return type(self)._quote is not CourierAdapter._quote

    def book(self, order, reference: str) -> Booking:
        """Book ``order`` under our ``reference`` (sent so the booking can be found again).

        :raises NoDriverAvailable: fail over
        :raises CourierRejected: this provider will never take it
        :raises CourierTemporaryError: the request did not reach the provider; try later
        :raises CourierOutcomeUnknown: it may have been booked; reconcile by ``reference``
        """
        return self._call("book", self._book, order, reference, creating=True)

    def get_status(self, provider_reference: str) -> ProviderEvent:
        return self._call("status", self._get_status, provider_reference)

    def find_by_reference(self, reference: str) -> Booking | None:
        """The booking made under our ``reference``, or None if the provider has none."""
        return self._call("find", self._find_by_reference, reference)

    def cancel(self, provider_reference: str) -> None:
        return self._call("cancel", self._cancel, provider_reference)

    def release_by_reference(self, reference: str) -> None:
        """Cancel whatever the provider holds under our ``reference`` (Grab's cancel by
        merchant order id): the way out of an unknown create for providers with no lookup."""
        return self._call("release", self._release_by_reference, reference)

    def health_check(self) -> None:
        return self._call("health", self._health_check)

    def verify_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> None:
        """Refuse (:class:`WebhookRejected`) anything that cannot be verified: fail closed."""
        self._verify_webhook(headers, raw_body)

    def parse_webhook(self, headers: Mapping[str, str], raw_body: bytes) -> list[ProviderEvent]:
        """Turn a verified webhook body into provider events (:class:`WebhookRejected` if it
        cannot be understood)."""
        return self._parse_webhook(headers, raw_body)

    def is_registration_probe(self, headers: Mapping[str, str], raw_body: bytes) -> bool:
        """True for the request a provider sends to check a webhook URL while it is being
        registered, which carries no report and must be answered 200 at once (Lalamove's
        empty POST). Such a request is answered and changes nothing; anything else is
        verified. Default: no provider probe is recognised."""
        return False

    @classmethod
    def takes_webhooks(cls) -> bool:
        """Whether this adapter verifies webhooks at all (it overrides ``_verify_webhook``)."""
        return cls._verify_webhook is not CourierAdapter._verify_webhook

    # -- provider-specific parts -------------------------------------------------------------
    def _quote(self, order) -> Quote:
        raise CourierRejected(f"{self.name} gives no quotes")

    def _book(self, order, reference: str) -> Booking:
        raise NotImplementedError

    def _get_status(self, provider_reference: str) -> ProviderEvent:
        raise NotImplementedError

    def _find_by_reference(self, reference: str) -> Booking | None:
        raise NotImplementedError

    def _cancel(self, provider_reference: str) -> None:
        raise NotImplementedError

    def _release_by_reference(self, reference: str) -> None:
        raise NotImplementedError

    def _health_check(self) -> None:
        return None

    def _verify_webhook(self, headers, raw_body) -> None:
        raise WebhookRejected(f"{self.name} accepts no webhooks")

    def _parse_webhook(self, headers, raw_body) -> list[ProviderEvent]:
        raise WebhookRejected(f"{self.name} accepts no webhooks")

    # -- shared machinery ------------------------------------------------------------------
    def _call(self, operation: str, method, *args, creating: bool = False):
        started = time.monotonic()
        outcome, error, failure = "ok", None, None
        try:
            return method(*args)
        except CourierError as exc:
            outcome, error, failure = exc.outcome, type(exc).__name__, exc
            raise
        except NotImplementedError:
            outcome = "unsupported"  # not a call to the provider: neither success nor failure
            raise
        except requests.RequestException as exc:
            failure = map_transport_error(exc, creating=creating)
            outcome, error = failure.outcome, type(exc).__name__
            raise failure from exc
        finally:
            seconds = time.monotonic() - started
            log.info("courier call courier=%s operation=%s outcome=%s ms=%.1f", self.instance,
                     operation, outcome, seconds * 1000,
                     extra={"courier": self.instance, "operation": operation,
                            "outcome": outcome, "duration_ms": round(seconds * 1000, 1)})
            if self.observer is not None:
                self.observer(CallOutcome(
                    self.instance, operation, outcome, seconds, error,
                    failed=failure is not None and failure.counts_against_provider,
                    opens_circuit=failure is not None and failure.opens_circuit))

    def raise_for_status(self, response: requests.Response, *, creating: bool = False,
                         message: str | None = None) -> None:
        """Map an HTTP error answer to the error that says what to do next."""
        status = response.status_code
        if status < 400:
            return
        text = message or response.headers.get("Error-Message") or response.reason or ""
        if status == 429:
            raise CourierTemporaryError(f"rate limited: {text}",
                                        retry_after=retry_after(response))
        if status in (401, 403):
            raise CourierAuthError(f"credentials refused ({status})")
        if status >= 500:
            if creating:
                raise CourierOutcomeUnknown(f"provider error {status} on create")
            raise CourierTemporaryError(f"provider error {status}")
        if status == 404:
            raise CourierNotFound(f"not found: {text}")
        raise CourierRejected(f"rejected ({status}): {text}")


#: hosts a ``sandbox`` entry may always talk to: simulators on this machine (compared
#: parsed, by :func:`gateway.origins.sandbox_refusal`)
LOOPBACK_HOSTS = origins.LOOPBACK_HOSTS


def check_static_secret(headers: Mapping[str, str], name: str, expected: str) -> None:
    """Webhook authentication by a secret we registered with the provider, sent back in a
    header: compared in constant time; missing or different is refused (fail closed)."""
    supplied = headers.get(name)
    if not supplied:
        raise WebhookRejected(f"no {name} header")
    if not hmac.compare_digest(supplied.encode(), expected.encode()):
        raise WebhookRejected(f"wrong {name}")


def map_transport_error(exc: requests.RequestException, *, creating: bool) -> CourierError:
    """A request that never reached the provider is safe to repeat; one that may have reached
    it, on a create call, has an unknown outcome."""
    if creating and not never_sent(exc):
        return CourierOutcomeUnknown(f"{type(exc).__name__} on create")
    return CourierTemporaryError(f"{type(exc).__name__}")
