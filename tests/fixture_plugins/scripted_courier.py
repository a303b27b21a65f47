"""A courier whose answers each test decides, for the tests of routing and the dispatch loop.

It stands in for a provider only where the question is what the gateway does with an answer
(booked, no driver, rejected, a temporary error). Provider adapters themselves are tested
over real HTTP against their simulators.
"""

from __future__ import annotations

import itertools

from gateway import CourierAdapter, hookimpl
from gateway.couriers import Booking

_counter = itertools.count(1)


class ScriptedCourier(CourierAdapter):
    outcomes: list
    booked: list
    cancelled: list

    def book(self, order):
        outcome = self.outcomes.pop(0) if self.outcomes else "book"
        if isinstance(outcome, Exception):
            raise outcome
        reference = f"{self.name.upper()}-{next(_counter)}"
        self.booked.append((order, reference))
        return Booking(provider=self.name, provider_reference=reference, raw_status="confirmed")

    def cancel(self, provider_reference):
        self.cancelled.append(provider_reference)


def scripted_courier(name: str, *, sandbox: bool = True, supports=("delivery",), outcomes=()):
    """:return: ``(plugin, courier_class)``; the class records what it was asked."""
    courier = type(f"Scripted_{name}", (ScriptedCourier,), {
        "name": name, "sandbox": sandbox, "supports": frozenset(supports),
        "outcomes": list(outcomes), "booked": [], "cancelled": []})

    class Plugin:
        @hookimpl
        def register_couriers(self):
            return [courier]

    return Plugin(), courier
