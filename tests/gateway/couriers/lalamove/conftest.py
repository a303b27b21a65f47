"""The Lalamove simulator and an app that routes to it, for every Lalamove test module (the
fixtures live beside the end-to-end tests that first needed them)."""

from tests.gateway.couriers.lalamove.test_lalamove import lalamove_app, lalamove_sim  # noqa: F401
