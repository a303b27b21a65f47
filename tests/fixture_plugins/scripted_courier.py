"""A courier whose answers each test decides, for the tests of routing and the dispatch loop.

It stands in for a provider only where the question is what the gateway does with an answer
(booked, no driver, rejected, a temporary error, an unknown outcome). Provider adapters
themselves are tested over real HTTP against their simulators.
"""

from __future__ import annotations

import itertools

from gateway import CourierAdapter, hookimpl
from gateway.couriers import Booking

_counter = itertools.count(1)


class ScriptedCourier(CourierAdapter):
    default_instance = True
    outcomes: list
    booked: list
    cancelled: list
    lookups: list
    held: dict

    def _book(self, order, reference):
        outcome = self.outcomes.pop(0) if self.outcomes else "book"
        if outcome == "book_then_fail":  # booked at the provider, answer lost on the way
            self.held[reference] = self._record(order, reference)
            from gateway.couriers import CourierOutcomeUnknown

            raise CourierOutcomeUnknown("timeout after commit")
        if isinstance(outcome, Exception):
            raise outcome
        booking = self._record(order, reference)
        self.held[reference] = booking
        return booking

    def _record(self, order, reference):
        provider_reference = f"{self.name.upper()}-{next(_counter)}"
        self.booked.append((order, provider_reference))
        return Booking(provider=self.instance, provider_reference=provider_reference,
                       raw_status="confirmed")

    def _find_by_reference(self, reference):
        if not self.can_look_up:
            raise NotImplementedError
        self.lookups.append(reference)
        return self.held.get(reference)

    def _release_by_reference(self, reference):
        if not self.can_release:
            raise NotImplementedError
        booking = self.held.pop(reference, None)
        self.released.append((reference, booking.provider_reference if booking else None))

    def _cancel(self, provider_reference):
        self.cancelled.append(provider_reference)


def scripted_courier(name: str, *, sandbox: bool = True, supports=("delivery",), outcomes=(),
                     can_look_up: bool = True, can_release: bool = False):
    """:return: ``(plugin, courier_class)``; the class records what it was asked."""
    courier = type(f"Scripted_{name}", (ScriptedCourier,), {
        "name": name, "default_config": {"sandbox": sandbox},
        "supports": frozenset(supports), "outcomes": list(outcomes), "booked": [],
        "cancelled": [], "lookups": [], "released": [], "held": {},
        "can_look_up": can_look_up, "can_release": can_release})

    class Plugin:
        @hookimpl
        def register_couriers(self):
            return [courier]

    return Plugin(), courier
