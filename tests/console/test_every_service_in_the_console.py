"""Invariant: every registered service and courier shows in the console, with no console code
of its own (the pages are built from the registries)."""

from __future__ import annotations


def test_every_registered_service_and_courier_appears_in_the_console(app, console_as):
    gateway = app.extensions["gateway"]
    admin = console_as("admin")
    services_page = admin.get("/console/services").get_data(as_text=True)
    requests_page = admin.get("/console/requests").get_data(as_text=True)
    for name in gateway.services:
        assert f"/console/services/service/{name}" in services_page, name
        assert f'<option value="{name}"' in requests_page, name
        settings = admin.get(f"/console/services/service/{name}")
        assert settings.status_code == 200 and 'id="settings-form"' in settings.get_data(
            as_text=True)
    for name in gateway.courier_configs:
        assert f"/console/services/courier/{name}" in services_page, name
