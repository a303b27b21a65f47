"""The core's default authentication: ``Authorization: Bearer <agency API key>``.

Registered through ``actor_from_request``. A key is found by its prefix and checked against
the stored SHA-256 in constant time; revoked keys and inactive agencies are not recognised.
The actor carries the key's type: requests made with a ``test`` key only ever reach sandbox
couriers.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from .hookspecs import hookimpl
from .keys import key_matches, parse_key
from .models import ApiKey


def bearer_token(request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@hookimpl
def actor_from_request(gateway, request):
    if request.blueprint == "console":
        return None   # console pages are for people signed in, never for API keys
    token = bearer_token(request)
    parsed = parse_key(token) if token else None
    if not parsed:
        return None
    prefix, _key_type = parsed
    with gateway.db.read() as session:
        key = session.execute(
            select(ApiKey).options(joinedload(ApiKey.agency)).where(ApiKey.prefix == prefix)
        ).scalar_one_or_none()
        if key is None or key.revoked_at is not None or not key.agency.active:
            return None
        if not key_matches(token, key.key_hash):
            return None
        return {
            "type": "agency",
            "id": key.agency_id,
            "name": key.agency.name,
            "services": list(key.agency.services or []),
            "roles": list(key.agency.roles or []),
            "key_id": key.id,
            "key_prefix": key.prefix,
            "key_type": key.key_type,
        }
