"""The default routing: the ``couriers`` list of each service in ``services.yaml``.

Registered through ``choose_couriers`` as ``trylast``, so any plugin can route differently
by answering first. The default keeps the configured order and drops couriers that cannot
take the order (``candidates``); with no list configured, every candidate is tried in name
order.
"""

from __future__ import annotations

from .hookspecs import hookimpl


@hookimpl(trylast=True)
def choose_couriers(gateway, service, candidates):
    configured = gateway.service_settings(service.name).get("couriers") or []
    if not configured:
        return sorted(candidates)
    return [name for name in configured if name in candidates]
