"""The console's request page shows the courier's proof of delivery: the delivery time to
every role, the images inline (served by the console, never cached) to roles that may read
personal data, each reading audited."""

from __future__ import annotations

from gateway.testing import drain, wait_for_status
from tests.conftest import new_key
from tests.console.conftest import sign_in
from tests.gateway.couriers.lalamove.test_lalamove import (  # noqa: F401
    lalamove_app,
    lalamove_sim,
    parcel,
    submit,
)


def test_the_request_page_shows_the_proof_images_and_the_delivery_time(
        lalamove_app, lalamove_sim):  # noqa: F811
    app = lalamove_app()
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id = submit(app, key, parcel(app))
    wait_for_status(app, request_id, "delivered")
    drain(app)

    operator = sign_in(app, "operator")
    page = operator.get(f"/console/requests/{request_id}").get_data(as_text=True)
    assert 'id="delivered-at"' in page and 'id="proof-images"' in page
    for index in (0, 1):
        src = f"/console/requests/{request_id}/proof/{index}"
        assert f'src="{src}"' in page
        image = operator.client.get(src)
        assert (image.status_code, image.mimetype) == (200, "image/jpeg")
        assert image.data.startswith(b"\xff\xd8\xff") and b"/pod-" in image.data
        assert image.headers["Cache-Control"] == "no-store"
    # an auditor sees that there is a proof and when it was delivered, not the photos
    auditor = sign_in(app, "auditor")
    page = auditor.get(f"/console/requests/{request_id}").get_data(as_text=True)
    assert 'id="delivered-at"' in page and 'id="proof-images"' in page
    assert "/proof/0" not in page
    assert auditor.client.get(f"/console/requests/{request_id}/proof/0").status_code == 403
    audit = sign_in(app, "admin").get("/console/audit?action=request.proof_image.read")
    assert audit.status_code == 200 and operator.username in audit.get_data(as_text=True)
