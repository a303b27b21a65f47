"""Run by ``test_plugin_kit.py`` with the Python of a fresh virtual environment, never imported
by the suite: it looks at the gateway as that environment installs it.

``installed SIM_PORT``: build the app from the installed entry points (``create_app()``
exactly as ``gateway serve`` does), migrate its database and create an agency allowed the
new service and a console admin (as ``gateway db upgrade``, ``gateway agencies create`` and
``gateway admins create`` would, without three more interpreter start-ups), serve the app
and the GO-SEND simulator over HTTP, report what the agency and the admin see of
``dukcapil_delivery``, then submit its example request and follow it to the end.

``uninstalled KEY REQUEST_ID``: after ``pip uninstall``, report what is left of that request
and of the service.

Run it with ``python -P`` (the ``tests`` directory holds a ``gateway`` package of its own).
It prints one JSON object; the test makes the assertions. The configuration comes from the
``GATEWAY_*`` environment variables, the admin's password from ``GATEWAY_ADMIN_PASSWORD``.
"""

from __future__ import annotations

import json
import os
import sys

from gateway import create_app
from gateway.agencies import create_agency
from gateway.console.users import create_admin
from gateway.couriers.gosend.simulator import GoSendSimulator
from gateway.migrate import upgrade
from gateway.testing import ConsoleClient, ServerThread, wait_for_status

SERVICE = "dukcapil_delivery"
COURIER = "gosend_sandbox"
ADMIN = "dukcapil-admin"


def installed(app, sim_port: str) -> dict:
    gateway = app.extensions["gateway"]
    upgrade(gateway.db)
    _agency, key = create_agency(gateway, "Disdukcapil Banyuwangi", [SERVICE],
                                 actor="plugin-kit", key_type="test")
    create_admin(gateway, ADMIN, os.environ["GATEWAY_ADMIN_PASSWORD"], "admin")
    headers = {"Authorization": f"Bearer {key}"}
    console = ConsoleClient.sign_in(app, ADMIN, os.environ["GATEWAY_ADMIN_PASSWORD"])
    client = app.test_client()
    sim = GoSendSimulator.from_config(gateway.courier_configs[COURIER], webhook_url=None,
                                      step_seconds=0.2)
    with ServerThread(sim.create_app(), port=int(sim_port)), ServerThread(app) as server:
        sim.webhook_url = f"{server.url}/webhooks/{COURIER}"
        sim.start_clock()
        try:
            example = gateway.services[SERVICE].example_request
            created = client.post(f"/api/v1/services/{SERVICE}/requests", json=example,
                                  headers=headers)
            request_id = created.get_json().get("id")
            status = wait_for_status(app, request_id, {"delivered", "failed", "no_driver"},
                                     timeout=30) if created.status_code == 202 else None
        finally:
            sim.stop_clock()
    told = json.dumps([call["json"] for call in sim.requests])
    return {
        "key": key,
        "services": [s["name"] for s in client.get("/api/v1/services", headers=headers)
                     .get_json()["services"]],
        "openapi_paths": sorted(client.get("/api/openapi.json").get_json()["paths"]),
        "console_lists_it": f'id="service-{SERVICE}"' in console.get("/console/services")
        .get_data(as_text=True),
        "created": created.status_code,
        "request_id": request_id,
        "status": status,
        "provider": client.get(f"/api/v1/requests/{request_id}", headers=headers)
        .get_json()["provider"],
        "courier_was_told_the_name": example["citizen"]["name"] in told,
        "courier_was_told_the_nik": example["citizen"]["nik"] in told,
    }


def uninstalled(app, key: str, request_id: str) -> dict:
    headers = {"Authorization": f"Bearer {key}"}
    console = ConsoleClient.sign_in(app, ADMIN, os.environ["GATEWAY_ADMIN_PASSWORD"])
    client = app.test_client()
    read = client.get(f"/api/v1/requests/{request_id}", headers=headers)
    return {
        "installed_services": sorted(app.extensions["gateway"].services),
        "read": read.status_code,
        "request": read.get_json(),
        "listed": [r["id"] for r in client.get("/api/v1/requests", headers=headers)
                   .get_json()["requests"]],
        "new_request": client.post(f"/api/v1/services/{SERVICE}/requests", json={},
                                   headers=headers).get_json()["code"],
        "console_request_page": console.get(f"/console/requests/{request_id}").status_code,
    }


def main(mode: str, *arguments: str) -> None:
    app = create_app()
    try:
        probe = installed if mode == "installed" else uninstalled
        print(json.dumps(probe(app, *arguments)))
    finally:
        app.extensions["gateway"].db.dispose()


if __name__ == "__main__":
    main(*sys.argv[1:])
