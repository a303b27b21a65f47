"""The default routing: the ``couriers`` list of each service in ``services.yaml``.

Registered through ``choose_couriers`` as ``trylast``, so any plugin can route differently
by answering first. Entries are tried in order; an entry may be a weighted group
(``{gosend: 3, grab: 1}``) whose members are tried in a random order drawn by weight, so
traffic is shared while every member remains a fallback for the others. Couriers that cannot
take the order (not in ``candidates``) are dropped; with no list configured, every candidate
is tried in name order. The service's ``routing_policy`` (``cheapest``, ``fastest``) then
reorders what routing chose by the couriers' quotes (``gateway.dispatch``, ``gateway.costs``).
"""

from __future__ import annotations

import random

from .hookspecs import hookimpl


def expand(entries: list, rng: random.Random | None = None) -> list[str]:
    """Flatten the configured entries into one order, drawing each weighted group."""
    rng = rng or random
    order: list[str] = []
    for entry in entries:
        if isinstance(entry, str):
            order.append(entry)
            continue
        pool = dict(entry)
        while pool:
            names = list(pool)
            pick = rng.choices(names, weights=[pool[n] for n in names])[0]
            order.append(pick)
            del pool[pick]
    return order


@hookimpl(trylast=True)
def choose_couriers(gateway, service, candidates):
    configured = gateway.service_settings(service.name).get("couriers") or []
    if not configured:
        return sorted(candidates)
    return [name for name in dict.fromkeys(expand(configured)) if name in candidates]
