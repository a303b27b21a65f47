"""What an agency actor may see in the console: the one place that says it.

A console account of an agency role (``agency_staff``, ``agency_manager``) sees exactly what
its agency's API key of the same type (``live`` or ``test``) would see: every query that
lists or shows requests goes through :func:`scope` or :func:`find_request`, which use the
very condition the API uses (``gateway.records.owned_by``), so another agency's request, or
one made in the other world, is a missing id (the same 404 as an unknown one). For the
gateway's own roles (admin, operator, auditor) nothing is scoped.

:func:`as_agency` is the actor such an account hands to the core when it acts for the agency
(a request made by form goes through ``gateway.intake`` with it), shaped like the actor an
API key produces; the audit record names the console account in ``key_prefix``.

Never decide "may this console user see that request" anywhere else.
"""

from __future__ import annotations

from sqlalchemy import select

from ..errors import NotFound
from ..models import Agency, ServiceRequest
from ..records import get_for_actor, owned_by
from .roles import AGENCY_ROLES


def is_agency(actor: dict | None) -> bool:
    """Is this console actor one agency's own account?"""
    return bool(actor) and actor.get("role") in AGENCY_ROLES and bool(actor.get("agency_id"))


def _world(actor: dict) -> dict:
    """The part of the actor that ``owned_by`` reads: the agency and the key type."""
    return {"id": actor["agency_id"], "key_type": actor["key_type"]}


def scope(query, actor: dict | None):
    """Limit a query over requests to what ``actor`` may see."""
    if is_agency(actor):
        return query.where(owned_by(_world(actor)))
    return query


def find_request(session, actor: dict | None, request_id: str) -> ServiceRequest:
    """The request ``request_id`` if ``actor`` may see it.

    :raises NotFound: ``request_not_found``, alike for a missing id, another agency's request
        and one made in the other world
    """
    if is_agency(actor):
        return get_for_actor(session, _world(actor), request_id)
    record = session.get(ServiceRequest, request_id)
    if record is None:
        raise NotFound("request_not_found", "No request with this id.")
    return record


def may_manage_staff_of(actor: dict | None, agency_id: str) -> bool:
    """Whose staff ``actor`` may add and remove (the role's action is checked apart): an
    admin any agency's, an agency manager only its own agency's."""
    if is_agency(actor):
        return actor["agency_id"] == agency_id
    return True


def as_agency(gateway, actor: dict) -> dict:
    """The agency actor this console account acts as, shaped like an API key's actor
    (``gateway.auth``), with no key: ``key_id`` is None.

    :raises NotFound: ``agency_not_found`` (the agency is gone or inactive)
    """
    with gateway.db.read() as session:
        agency = session.execute(select(Agency).where(
            Agency.id == actor["agency_id"], Agency.active.is_(True))).scalar_one_or_none()
        if agency is None:
            raise NotFound("agency_not_found", "The agency is not active.")
        return {"type": "agency", "id": agency.id, "name": agency.name,
                "services": list(agency.services or []), "roles": list(agency.roles or []),
                "key_id": None, "key_prefix": f"console:{actor['id']}",
                "key_type": actor["key_type"]}
