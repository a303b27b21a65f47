"""API keys are looked up once per process, and a change anywhere is honoured at once."""

from __future__ import annotations

import time

from sqlalchemy import event, select

from gateway.agencies import revoke_key
from gateway.auth import TRUST_SECONDS
from gateway.models import Agency

SERVICES = "/api/v1/services"


def _key_lookups(gateway):
    """A list that grows by one for every statement that reads the api_keys table."""
    seen = []

    @event.listens_for(gateway.db.engine, "before_cursor_execute")
    def _watch(_conn, _cursor, statement, *_args):
        if "FROM api_keys" in statement:
            seen.append(statement)

    return seen


def test_a_known_key_is_read_from_the_database_once(agency, gateway):
    """Once per TRUST_SECONDS at most: ten calls within a second read it once; on a machine so
    busy that they take longer, once more per second they took, never once per call."""
    lookups = _key_lookups(gateway)
    started = time.monotonic()
    for _ in range(10):
        assert agency.get(SERVICES).status_code == 200
    elapsed = time.monotonic() - started
    assert 1 <= len(lookups) <= 1 + int(elapsed / TRUST_SECONDS)
    assert len(lookups) < 10


def test_a_wrong_secret_under_a_cached_prefix_is_still_refused(agency, client):
    assert agency.get(SERVICES).status_code == 200
    forged = agency.key[:-4] + ("aaaa" if not agency.key.endswith("aaaa") else "bbbb")
    response = client.get(SERVICES, headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


def test_revoking_a_cached_key_in_another_process_refuses_it_at_once(agency, make_app):
    assert agency.get(SERVICES).status_code == 200
    other = make_app().extensions["gateway"]        # another node, same database and Redis
    revoke_key(other, "_".join(agency.key.split("_")[:3]), actor="test")
    assert agency.get(SERVICES).status_code == 401


def test_deactivating_the_agency_refuses_its_cached_key_at_once(agency, gateway):
    assert agency.get(SERVICES).status_code == 200
    with gateway.db.write() as session:
        session.scalars(select(Agency).where(Agency.id == agency.agency.id)).one().active = False
    assert agency.get(SERVICES).status_code == 401


def test_a_key_revoked_where_redis_cannot_be_reached_is_refused_within_a_second(
        agency, make_app):
    """The revoking process cannot publish the change (its Redis is down, or another one):
    this process's cached entry still stops counting within a second."""
    assert agency.get(SERVICES).status_code == 200
    cut_off = make_app(redis_url="redis://127.0.0.1:9/0").extensions["gateway"]
    revoke_key(cut_off, "_".join(agency.key.split("_")[:3]), actor="test")
    revoked_at = time.monotonic()
    while agency.get(SERVICES).status_code == 200:
        assert time.monotonic() - revoked_at < 1.0, "still accepted after a second"
        time.sleep(0.05)
    assert agency.get(SERVICES).status_code == 401
