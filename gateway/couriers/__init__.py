"""The courier-adapter contract: how a provider-neutral order reaches a courier provider.

An adapter knows orders, never services. Each one declares its ``name``, what it
``supports`` (``delivery``, ``ride``, ``cold_chain``, ...), whether it is a ``sandbox``
(a simulator, safe for test keys), and its own ``config_schema`` for ``couriers.yaml``.
Errors are named by what the caller should do next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from marshmallow import Schema


class CourierError(Exception):
    """Base of every error an adapter raises."""


class CourierTemporaryError(CourierError):
    """Try the same provider again later (network trouble, 429, 5xx on a read)."""


class NoDriverAvailable(CourierError):
    """The provider has no driver now: fail over to the next courier."""


class CourierRejected(CourierError):
    """The provider refused this order for good: do not retry it there."""


class CourierAuthError(CourierError):
    """Our credentials were refused: take the provider out of rotation and alert."""


class CourierOutcomeUnknown(CourierError):
    """A create call timed out or failed mid-way: the booking may exist. Reconcile by our
    reference; never book again blindly."""


@dataclass(frozen=True)
class Booking:
    provider: str
    provider_reference: str
    raw_status: str | None = None


class CourierAdapter:
    """Base class of courier adapters, registered (as classes) through ``register_couriers``."""

    name: ClassVar[str]
    supports: ClassVar[frozenset[str]] = frozenset({"delivery"})
    sandbox: ClassVar[bool] = False
    config_schema: ClassVar[type[Schema] | None] = None

    def __init__(self, config: dict):
        self.config = config

    def can_take(self, order) -> bool:
        """True when this courier supports the order's kind and every requirement it has."""
        return order.kind in self.supports and set(order.requirements) <= set(self.supports)

    def book(self, order) -> Booking:
        raise NotImplementedError

    def cancel(self, provider_reference: str) -> None:
        raise NotImplementedError
