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

from ..agencies import acting_agency
from ..errors import NotFound
from ..models import ServiceRequest, Upload
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
    return acting_agency(gateway, actor["agency_id"], actor["key_type"],
                         f"console:{actor['id']}")


def find_upload(session, actor: dict | None, upload_id: str) -> Upload:
    """The spreadsheet upload ``upload_id`` if ``actor`` may see it: an agency's account only
    its own agency's, of its own key type; the gateway's roles any.

    :raises NotFound: ``upload_not_found``, alike for a missing id and another's upload
    """
    upload = session.get(Upload, upload_id)
    if upload is None or (is_agency(actor) and (
            upload.agency_id != actor["agency_id"] or upload.key_type != actor["key_type"])):
        raise NotFound("upload_not_found", "No upload with this id.")
    return upload
