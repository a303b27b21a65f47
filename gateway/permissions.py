"""The core's default permissions: an agency acts on its own requests and allowed services.

Registered through ``permission_allowed``; other plugins may add opinions, and any ``False``
wins. Queries that return requests are scoped by agency and key type as well
(``gateway.records.owned_by``), so this is the second line, not the only one.
"""

from __future__ import annotations

from .hookspecs import hookimpl

AGENCY_ACTIONS = {"services:list", "requests:create", "requests:read", "requests:list",
                  "requests:cancel"}


@hookimpl
def permission_allowed(actor, action, resource):
    if not actor or actor.get("type") != "agency":
        return None
    if action == "fleet:dispatch":
        return "fleet_dispatch" in actor.get("roles", ())
    if action not in AGENCY_ACTIONS:
        return None
    if action == "requests:create":
        return resource in actor.get("services", ())
    if action in ("requests:read", "requests:cancel"):
        # its own agency's, and made with the same type of key (test and live never mix)
        return (getattr(resource, "agency_id", None) == actor["id"]
                and getattr(resource, "key_type", None) == actor.get("key_type"))
    return True
