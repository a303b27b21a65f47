"""Agencies and their API keys: creation, changes, key issue and revocation, each audited.

Used by the CLI and the console; one home for the rules so both behave alike. A refusal is a
:mod:`gateway.errors` error with a stable code (``agency_not_found``, ``agency_exists``,
``unknown_service``, ``key_not_found``, ``callback_url_refused``...); its message is written
for the operator, and the CLI and the console show it as it is.
A key's clear text is returned once, to be shown once, and never stored.
"""

from __future__ import annotations

import secrets

from sqlalchemy import select

from .errors import Conflict, Invalid, NotFound
from .events import Event
from .keys import generate_key, hash_key, parse_key
from .models import Agency, ApiKey, utcnow
from .urlguard import UnsafeURL, check_url, policy_from_settings


def _check_services(gateway, services: list[str]) -> None:
    unknown = sorted(set(services) - set(gateway.services))
    if unknown:
        raise Invalid("unknown_service",
                      f"unknown service(s): {', '.join(unknown)}; installed: "
                      f"{', '.join(sorted(gateway.services)) or 'none'}",
                      fields={"services": [f"unknown: {', '.join(unknown)}"]})


ROLES = ("fleet_dispatch",)


def create_agency(gateway, name: str, services: list[str], callback_url: str | None = None,
                  actor: str = "cli", key_type: str = "live", api_key: str | None = None,
                  roles: list[str] | None = None):
    """Create an agency and its first key.

    :param api_key: use this exact key (the demo agency's documented key); normally None
    :return: ``(agency, key_in_clear)``
    """
    _check_services(gateway, services)
    _check_roles(roles)
    check_callback_url(gateway, callback_url)
    if not (name or "").strip() or len(name) > 200:
        raise Invalid("agency_name_invalid", "an agency needs a name of 1 to 200 characters",
                      fields={"name": ["1 to 200 characters"]})
    with gateway.db.write() as session:
        if session.execute(select(Agency).where(Agency.name == name)).scalar_one_or_none():
            raise Conflict("agency_exists", f"an agency named {name!r} already exists")
        agency = Agency(name=name, services=sorted(set(services)), callback_url=callback_url,
                        roles=sorted(set(roles or [])),
                        callback_secret_ciphertext=gateway.vault.seal(secrets.token_hex(32)))
        session.add(agency)
        session.flush()
        gateway.track(session, Event("agency.create", actor=actor, target=f"agency:{agency.id}",
                                     details={"services": agency.services, "roles": agency.roles,
                                              "callback": bool(callback_url)}))
        key = _issue(gateway, session, agency, key_type, actor, api_key)
    return agency, key


def _check_roles(roles) -> None:
    unknown_roles = sorted(set(roles or []) - set(ROLES))
    if unknown_roles:
        raise Invalid("unknown_role", f"unknown role(s): {', '.join(unknown_roles)}; known: "
                      f"{', '.join(ROLES)}",
                      fields={"roles": [f"unknown: {', '.join(unknown_roles)}"]})


def check_callback_url(gateway, url: str | None) -> None:
    """Refuse a callback URL the gateway would refuse to call (``gateway.urlguard``): its
    shape, and its host when that is an address. A host name is checked again, resolved,
    each time a callback is sent."""
    if not url:
        return
    if len(url) > 500:
        raise Invalid("callback_url_too_long", "a callback URL has at most 500 characters",
                      fields={"callback_url": ["at most 500 characters"]})
    try:
        check_url(url, policy_from_settings(gateway.settings))
    except UnsafeURL as exc:
        raise Invalid("callback_url_refused", f"callback URL refused: {exc}",
                      fields={"callback_url": [str(exc)]}) from exc


def update_agency(gateway, agency_id: str, *, services: list[str], roles: list[str],
                  callback_url: str | None, active: bool, actor: str) -> Agency:
    """Change what an agency may use and where its callbacks go; the change is audited
    with what changed (names of services and roles, never secrets)."""
    _check_services(gateway, services)
    _check_roles(roles)
    check_callback_url(gateway, callback_url)
    with gateway.db.write() as session:
        agency = session.get(Agency, agency_id)
        if agency is None:
            raise NotFound("agency_not_found", "no such agency")
        before = {"services": list(agency.services or []), "roles": list(agency.roles or []),
                  "callback": agency.callback_url, "active": agency.active}
        agency.services, agency.roles = sorted(set(services)), sorted(set(roles))
        agency.callback_url, agency.active = callback_url or None, active
        after = {"services": agency.services, "roles": agency.roles,
                 "callback": agency.callback_url, "active": agency.active}
        changed = sorted(k for k in before if before[k] != after[k])
        if changed:
            gateway.track(session, Event("agency.update", actor=actor,
                                         target=f"agency:{agency.id}",
                                         details={"changed": changed,
                                                  "services": agency.services,
                                                  "roles": agency.roles,
                                                  "active": agency.active}))
        session.flush()
        session.expunge(agency)
        return agency


def _issue(gateway, session, agency: Agency, key_type: str, actor: str,
           key: str | None = None) -> str:
    key = key or generate_key(key_type)
    parsed = parse_key(key)
    if not parsed or parsed[1] != key_type:
        raise Invalid("key_malformed",
                      "the given key is not a well-formed gateway key of that type")
    row = ApiKey(agency_id=agency.id, prefix=parsed[0], key_hash=hash_key(key),
                 key_type=key_type)
    session.add(row)
    session.flush()
    gateway.track(session, Event("key.issue", actor=actor, target=f"agency:{agency.id}",
                                 details={"key_prefix": row.prefix, "key_type": key_type}))
    return key


def find_agency(session, ident: str) -> Agency | None:
    agency = session.get(Agency, ident)
    if agency is None:
        agency = session.execute(select(Agency).where(Agency.name == ident)).scalar_one_or_none()
    return agency


def issue_key(gateway, agency_ident: str, key_type: str = "live", actor: str = "cli") -> str:
    with gateway.db.write() as session:
        agency = find_agency(session, agency_ident)
        if agency is None:
            raise NotFound("agency_not_found", f"no agency with id or name {agency_ident!r}")
        return _issue(gateway, session, agency, key_type, actor)


def revoke_key(gateway, prefix: str, actor: str = "cli") -> ApiKey:
    with gateway.db.write() as session:
        key = session.execute(select(ApiKey).where(ApiKey.prefix == prefix)).scalar_one_or_none()
        if key is None:
            raise NotFound("key_not_found", f"no key with prefix {prefix!r}")
        if key.revoked_at is None:
            key.revoked_at = utcnow()
            gateway.track(session, Event("key.revoke", actor=actor,
                                         target=f"agency:{key.agency_id}",
                                         details={"key_prefix": prefix}))
        return key


def reveal_callback_secret(gateway, agency_ident: str, actor: str = "cli") -> str:
    """The secret an agency verifies our callback signatures with (audited when read)."""
    with gateway.db.write() as session:
        agency = find_agency(session, agency_ident)
        if agency is None:
            raise NotFound("agency_not_found", f"no agency with id or name {agency_ident!r}")
        gateway.track(session, Event("agency.callback_secret.read", actor=actor,
                                     target=f"agency:{agency.id}"))
        return gateway.vault.open(agency.callback_secret_ciphertext)


def acting_agency(gateway, agency_id: str, key_type: str, key_prefix: str) -> dict:
    """The actor an agency acts as when no API key is presented (its console staff, a
    spreadsheet upload's job), shaped like the one ``gateway.auth`` makes from a key, with
    ``key_id`` None and ``key_prefix`` naming who acted.

    :raises NotFound: ``agency_not_found`` (the agency is gone or inactive)
    """
    with gateway.db.read() as session:
        agency = session.execute(select(Agency).where(
            Agency.id == agency_id, Agency.active.is_(True))).scalar_one_or_none()
        if agency is None:
            raise NotFound("agency_not_found", "The agency is not active.")
        return {"type": "agency", "id": agency.id, "name": agency.name,
                "services": list(agency.services or []), "roles": list(agency.roles or []),
                "key_id": None, "key_prefix": key_prefix, "key_type": key_type}
