"""What the provider tests ask of the gateway and of a simulator, over HTTP or the test client."""

from __future__ import annotations

import requests

from tests.conftest import bearer


def detail(app, key, request_id) -> dict:
    """A request as its agency reads it."""
    return app.test_client().get(f"/api/v1/requests/{request_id}", headers=bearer(key)).get_json()


def sim_get(sim, path):
    return requests.get(f"{sim.url}{path}", timeout=5).json()


def sim_post(sim, path, body=None):
    return requests.post(f"{sim.url}{path}", json=body or {}, timeout=5).json()


def bookings(sim) -> list[dict]:
    """What the simulator holds, as its ``/_sim/bookings`` shows it."""
    return sim_get(sim, "/_sim/bookings")
