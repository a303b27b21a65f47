"""The courier's first name and plate reach the tracking page from what the provider reports
(the GO-SEND simulator's webhook and status answer, real HTTP), and the gateway keeps the
first name only."""

from __future__ import annotations

import time

from sqlalchemy import select

from gateway.models import ProviderEventRecord, ServiceRequest
from gateway.simulators.engine import DRIVERS
from gateway.testing import drain, wait_for_status
from gateway.tracking import poll
from tests.conftest import new_key
from tests.gateway.couriers.helpers import bookings, sim_post
from tests.gateway.public.helpers import SECRET_WORDS, submit, token_of


def test_gosends_driver_appears_by_first_name_and_plate_and_nothing_more_is_kept(
        gosend_app, gateway_gosend):
    gateway_gosend.stop_clock()            # the test moves the booking itself
    app = gosend_app()
    gateway = app.extensions["gateway"]
    answer = submit(app, key=new_key(app, key_type="test"))
    wait_for_status(app, answer["id"], "booked")
    (booking,) = bookings(gateway_gosend)
    assert sim_post(gateway_gosend, f"/_sim/bookings/{booking['orderNo']}/advance")[
        "status"] == "allocated"
    wait_for_status(app, answer["id"], "driver_assigned")
    # the webhook names the driver, GO-SEND's status answer also the plate (docs §2.4, 2.6)
    poll(gateway, answer["id"])
    drain(app)
    (booking,) = bookings(gateway_gosend)
    full_name, _phone, plate = next(d for d in DRIVERS if d[0] == booking["driver"][0])
    first, last = full_name.split(" ", 1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with gateway.db.read() as session:
            record = session.get(ServiceRequest, answer["id"])
            if record.courier_plate:
                break
        time.sleep(0.1)
        drain(app)
    assert (record.courier_first_name, record.courier_plate) == (first, plate)

    html = app.test_client().get(f"/t/{token_of(answer)}").get_data(as_text=True)
    assert first in html and plate in html
    assert last not in html and _phone not in html
    for word in SECRET_WORDS:
        assert word not in html
    # the inbox keeps the provider's report sealed, with the first name only
    with gateway.db.read() as session:
        sealed = [gateway.vault.open(r.details_ciphertext) for r in session.scalars(
            select(ProviderEventRecord).where(ProviderEventRecord.request_id == answer["id"]))
            if r.details_ciphertext]
    assert any(d.get("courier", {}).get("first_name") == first for d in sealed)
    assert last not in str(sealed)
