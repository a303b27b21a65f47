"""Proof of delivery from Lalamove: ``POD_STATUS_CHANGED`` and ``stops[].POD`` (courier
reference section 4.2 and 4.4) with image links that expire. The gateway fetches the images
while the links work, keeps them sealed, serves them to the agency that owns the request
only, refuses links it may not follow (SSRF), non-images and oversized bodies, records the
courier's delivery time, and purges the images with the request's personal data. Each test
watches the simulator (its request log shows what was fetched)."""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import select

from gateway.models import ProofImage, ServiceRequest
from gateway.proofs import ProofFetchRetry, fetch_proofs
from gateway.purge import purge_expired
from gateway.simulators.engine import proof_jpeg
from gateway.sweep import owed_work, sweep_once
from gateway.testing import drain, wait_for_status
from gateway.tracking import poll
from tests.conftest import MEDICINE_BODY, bearer, new_key
from tests.gateway.couriers.helpers import bookings, sim_get, sim_post
from tests.gateway.couriers.lalamove.test_lalamove import (
    WEBHOOK_PATH,
    parcel,
    signed_webhook,
    submit,
)


def proof_fetches(sim) -> list[dict]:
    return [r for r in sim_get(sim, "/_sim/requests") if r["path"].startswith("/_proof/")]


def proof_of(app, key, request_id):
    return app.test_client().get(f"/api/v1/requests/{request_id}/proof", headers=bearer(key))


def stored(app) -> list[ProofImage]:
    with app.extensions["gateway"].db.read() as session:
        rows = session.scalars(select(ProofImage).order_by(ProofImage.index)).all()
        session.expunge_all()
        return rows


def stalled_request(app, sim, key, body=None, path="/api/v1/services/umkm_pickup/requests"):
    """A request booked at Lalamove whose order never moves on its own: the test reports
    its delivery itself, signed as Lalamove signs. :return: (request id, order id)"""
    response = app.test_client().post(path, json=body or parcel(app, note="[sim:stall]"),
                                      headers=bearer(key))
    assert response.status_code == 202, response.get_json()
    request_id = response.get_json()["id"]
    wait_for_status(app, request_id, "booked")
    (booking,) = bookings(sim)
    return request_id, booking["orderId"]


def report_pod(app, order_id, images, delivered_at, event_id):
    """Lalamove's ``POD_STATUS_CHANGED`` for a completed order, over HTTP to the gateway."""
    stops = [{"stopId": "1"}] + [
        {"stopId": str(n + 2), "POD": {"status": "DELIVERED", "image": image,
                                       "deliveredAt": delivered_at}}
        for n, image in enumerate(images)]
    data = {"order": {"orderId": order_id, "status": "COMPLETED", "stops": stops},
            "updatedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")}
    response = requests.post(f"{app.server_url}{WEBHOOK_PATH}", timeout=5,
                             data=signed_webhook(data, event_type="POD_STATUS_CHANGED",
                                                 event_id=event_id))
    assert response.status_code == 200


def test_proof_images_behind_expiring_links_are_kept_and_served_to_their_agency_only(
        lalamove_app, lalamove_sim):
    app = lalamove_app()
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id = submit(app, key, parcel(app))
    wait_for_status(app, request_id, "delivered")
    drain(app)

    # Lalamove sent the proof as its own event, with links that expire (signed, two hours)
    pod = [w["body"] for w in sim_get(lalamove_sim, "/_sim/webhooks")
           if w.get("body") and w["body"]["eventType"] == "POD_STATUS_CHANGED"]
    assert len(pod) == 1
    links = [s["POD"]["image"] for s in pod[0]["data"]["order"]["stops"] if "POD" in s]
    assert len(links) == 2 and all("expires=" in u and "signature=" in u for u in links)
    # ... and the gateway fetched each image once, while the links worked
    fetches = proof_fetches(lalamove_sim)
    assert sorted(f["path"] for f in fetches) == sorted(u.split("?")[0].removeprefix(
        lalamove_sim.url) for u in links)

    listing = proof_of(app, key, request_id)
    assert listing.status_code == 200 and listing.headers["Cache-Control"] == "no-store"
    body = listing.get_json()
    photos = [proof_jpeg(u.split("?")[0].split("/_proof/")[1]) for u in links]
    assert [(i["index"], i["status"], i["content_type"], i["size"]) for i in body["images"]] \
        == [(0, "stored", "image/jpeg", len(photos[0])), (1, "stored", "image/jpeg",
                                                          len(photos[1]))]
    # the courier's delivery time, from the proof
    assert datetime.fromisoformat(body["delivered_at"]) == datetime.fromisoformat(
        pod[0]["data"]["order"]["stops"][1]["POD"]["deliveredAt"])

    image = app.test_client().get(f"/api/v1/requests/{request_id}/proof/images/1",
                                  headers=bearer(key))
    assert image.status_code == 200 and image.data == photos[1]
    assert image.mimetype == "image/jpeg" and image.headers["Cache-Control"] == "no-store"
    # kept sealed: the stored bytes are not the image
    assert all(photo not in row.ciphertext and b"JFIF" not in row.ciphertext
               and row.url_ciphertext is None for row, photo in zip(stored(app), photos,
                                                                     strict=True))

    # another agency, and the owner's other world (its live key), meet the unknown id's 404
    stranger = new_key(app, services=["umkm_pickup"], key_type="test", name="Other office")
    live = new_key(app, services=["umkm_pickup"], key_type="live")
    def answer(path, who):
        response = app.test_client().get(path, headers=bearer(who))
        return response.status_code, {k: v for k, v in response.get_json().items()
                                      if k != "correlation_id"}

    unknown = answer("/api/v1/requests/no-such-id/proof/images/1", key)
    assert unknown[0] == 404
    for index in ("2", "-1", "1.0", "\u00b2", "99999999999999999999", "%00"):
        response = app.test_client().get(
            f"/api/v1/requests/{request_id}/proof/images/{index}", headers=bearer(key))
        assert (response.status_code, response.get_json()["code"]) == (
            404, "proof_image_not_found"), index
    for other in (stranger, live):
        for path in (f"/api/v1/requests/{request_id}/proof",
                     f"/api/v1/requests/{request_id}/proof/images/1"):
            assert answer(path, other) == unknown

    # the retention purge deletes the images with the request's personal data
    assert purge_expired(app.extensions["gateway"],
                         now=datetime.now(UTC) + timedelta(days=400)) == 1
    assert stored(app) == []
    assert proof_of(app, key, request_id).get_json()["images"] == []
    assert app.test_client().get(f"/api/v1/requests/{request_id}/proof/images/1",
                                 headers=bearer(key)).status_code == 404


def test_a_link_that_expired_before_it_was_fetched_is_recorded_as_failed(
        lalamove_app, lalamove_sim):
    app = lalamove_app()
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    sim_post(lalamove_sim, "/_sim/config", {"proof_seconds": -1})
    request_id = submit(app, key, parcel(app))
    wait_for_status(app, request_id, "delivered")
    drain(app)

    fetches = proof_fetches(lalamove_sim)
    assert fetches, "the gateway tried the links"
    body = proof_of(app, key, request_id).get_json()
    assert [(i["status"], i["error"]) for i in body["images"]] == [("failed", "expired")] * 2
    assert app.test_client().get(f"/api/v1/requests/{request_id}",
                                 headers=bearer(key)).get_json()["status"] == "delivered"


def test_links_to_hosts_a_courier_may_not_send_are_never_fetched(lalamove_app, lalamove_sim):
    app = lalamove_app()
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id, order_id = stalled_request(app, lalamove_sim, key)
    sim_port = lalamove_sim.url.rsplit(":", 1)[1]
    with lalamove_sim.lock:
        genuine = lalamove_sim.proof_url(lalamove_sim.bookings[order_id], "pod-2")
    path = genuine.split(sim_port, 1)[1]
    attacks = [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",  # metadata
        f"{app.server_url}/metrics",                     # the gateway itself, another port
        f"http://localhost:{sim_port}{path}",             # the simulator, by another name
        f"http://[::ffff:127.0.0.1]:{sim_port}{path}",
        f"http://user@127.0.0.1:{sim_port}{path}",
        "file:///etc/passwd",
    ]
    report_pod(app, order_id, attacks, "2026-12-03T01:02:03.000Z", "pod-attack")
    wait_for_status(app, request_id, "delivered")
    drain(app)

    body = proof_of(app, key, request_id).get_json()
    assert [(i["status"], i["error"]) for i in body["images"]] == \
        [("failed", "refused")] * len(attacks)
    assert proof_fetches(lalamove_sim) == []
    assert all(row.url_ciphertext is None for row in stored(app))


def test_a_body_that_is_not_an_image_or_is_too_large_is_refused(lalamove_app, lalamove_sim):
    app = lalamove_app(couriers={
        "lalamove_sandbox": {"adapter": "lalamove", "sandbox": True,
                             "base_url": lalamove_sim.url, "timeout_seconds": 1,
                             "api_key": "pk_test_engine",
                             "api_secret": "sk_test_engine-secret-0123456789",
                             "proof_max_bytes": 100_000},
        "gosend_sandbox": {"enabled": False}, "goride_sandbox": {"enabled": False},
        "grab_sandbox": {"enabled": False}, "shuttle": {"enabled": False},
        "own_fleet": {"enabled": True}})
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    outcomes = []
    for n, payload in enumerate(("html", "fake_jpeg", "oversize")):
        sim_post(lalamove_sim, "/_sim/reset")
        sim_post(lalamove_sim, "/_sim/config", {"proof_payload": payload})
        request_id, order_id = stalled_request(
            app, lalamove_sim, key, parcel(app, note="[sim:stall]", order_id=f"BWM-{n}"))
        with lalamove_sim.lock:
            link = lalamove_sim.proof_url(lalamove_sim.bookings[order_id], "pod-2")
        report_pod(app, order_id, [link], "2026-12-03T01:02:03.000Z", f"pod-{payload}")
        wait_for_status(app, request_id, "delivered")
        drain(app)
        assert len(proof_fetches(lalamove_sim)) == 1
        (image,) = proof_of(app, key, request_id).get_json()["images"]
        outcomes.append((image["status"], image["error"]))
    assert outcomes == [("failed", "not_an_image"), ("failed", "not_an_image"),
                        ("failed", "too_large")]
    assert all(row.ciphertext is None for row in stored(app))


def test_the_couriers_delivery_time_is_the_records_and_the_fhir_whenhandedover(
        lalamove_app, lalamove_sim):
    app = lalamove_app(services={"medicine_delivery": {"couriers": ["lalamove_sandbox"]}})
    key = new_key(app, services=["medicine_delivery"], key_type="test")
    body = copy.deepcopy(MEDICINE_BODY)
    body["notes_for_courier"] = "[sim:stall]"
    request_id, order_id = stalled_request(app, lalamove_sim, key, body,
                                           "/api/v1/services/medicine_delivery/requests")
    handed_over = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0)
    with lalamove_sim.lock:
        link = lalamove_sim.proof_url(lalamove_sim.bookings[order_id], "pod-2")
    report_pod(app, order_id, [link], handed_over.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
               "pod-fhir")
    wait_for_status(app, request_id, "delivered")
    drain(app)

    expected = handed_over.isoformat().replace("+00:00", "Z")
    with app.extensions["gateway"].db.read() as session:
        assert session.get(ServiceRequest, request_id).delivered_at == handed_over
    assert proof_of(app, key, request_id).get_json()["delivered_at"] == expected
    assert app.test_client().get(f"/api/v1/requests/{request_id}", headers=bearer(key)
                                 ).get_json()["delivered_at"] == expected
    fhir = app.test_client().get(f"/api/v1/requests/{request_id}/fhir", headers=bearer(key))
    assert fhir.status_code == 200, fhir.get_json()
    document = fhir.get_json()
    dispenses = [document] if document.get("resourceType") == "MedicationDispense" else [
        e["resource"] for e in document.get("entry", [])
        if e["resource"]["resourceType"] == "MedicationDispense"]
    assert dispenses and all(d["whenHandedOver"] == expected for d in dispenses)


def delivered_and_owed_again(app, sim, event_id) -> tuple[str, str]:
    """A stalled Lalamove request reported delivered with one proof link, its image fetched,
    then owed again as if for half an hour (pending, its link sealed, made 30 minutes ago).
    :return: (request id, the proof link)"""
    gateway = app.extensions["gateway"]
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id, order_id = stalled_request(app, sim, key)
    with sim.lock:
        link = sim.proof_url(sim.bookings[order_id], "pod-2")
    report_pod(app, order_id, [link], "2026-12-03T01:02:03.000Z", event_id)
    wait_for_status(app, request_id, "delivered")
    drain(app)
    with gateway.db.write() as session:
        row = session.scalar(select(ProofImage).where(ProofImage.request_id == request_id))
        row.status, row.ciphertext, row.url_ciphertext = "pending", None, gateway.vault.seal(link)
        row.created_at = datetime.now(UTC) - timedelta(minutes=30)
    return request_id, link


def test_a_lost_proof_job_is_found_again_by_the_sweep_while_the_link_works(
        lalamove_app, lalamove_sim):
    app = lalamove_app()
    gateway = app.extensions["gateway"]
    # as if Redis lost the job before it ran: the image is owed again, its link still sealed
    request_id, _link = delivered_and_owed_again(app, lalamove_sim, "pod-lost")
    fetched = len(proof_fetches(lalamove_sim))
    assert ("proof", request_id) in owed_work(gateway)
    sweep_once(gateway)
    drain(app)
    assert [row.status for row in stored(app)] == ["stored"]
    assert len(proof_fetches(lalamove_sim)) == fetched + 1


def test_a_proof_seen_only_by_polling_is_fetched_too(lalamove_app, lalamove_sim):
    app = lalamove_app()
    gateway = app.extensions["gateway"]
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id = submit(app, key, parcel(app, note="[sim:drop_webhooks]"))
    wait_for_status(app, request_id, "booked")
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while bookings(lalamove_sim)[0]["status"] != "COMPLETED":
        assert datetime.now(UTC) < deadline, "the order should complete"
        time.sleep(0.1)
    assert sim_get(lalamove_sim, "/_sim/webhooks") == []

    assert poll(gateway, request_id) == "new report"
    wait_for_status(app, request_id, "delivered")
    drain(app)
    body = proof_of(app, key, request_id).get_json()
    assert [i["status"] for i in body["images"]] == ["stored", "stored"]
    assert len(proof_fetches(lalamove_sim)) == 2
    assert body["delivered_at"] is not None


def test_a_proof_host_that_fails_for_a_while_is_tried_again_until_the_last_attempt(
        lalamove_app, lalamove_sim):
    app = lalamove_app()
    gateway = app.extensions["gateway"]
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    request_id, order_id = stalled_request(app, lalamove_sim, key)
    sim_post(lalamove_sim, "/_sim/config", {"proof_payload": "5xx"})
    with lalamove_sim.lock:
        links = [lalamove_sim.proof_url(lalamove_sim.bookings[order_id], f"pod-{n}")
                 for n in (2, 3)]
    report_pod(app, order_id, links, "2026-12-03T01:02:03.000Z", "pod-5xx")
    wait_for_status(app, request_id, "delivered")
    drain(app)  # the first attempt meets 503: the job is scheduled again, the images owed
    assert len(proof_fetches(lalamove_sim)) == 2
    assert [row.status for row in stored(app)] == ["pending", "pending"]
    with pytest.raises(ProofFetchRetry):
        fetch_proofs(gateway, request_id)
    sim_post(lalamove_sim, "/_sim/config", {"proof_payload": "jpeg"})
    # one image works again; the last attempt gives up on the other one
    with gateway.db.write() as session:
        row = session.scalar(select(ProofImage).where(ProofImage.index == 1))
        row.url_ciphertext = gateway.vault.seal(links[1].replace("signature=", "signature=0"))
    assert fetch_proofs(gateway, request_id, last_try=True) == "1 stored, 1 failed"
    assert [(row.status, row.error) for row in stored(app)] == [("stored", None),
                                                                ("failed", "expired")]


def test_the_images_of_deliveries_reported_together_are_fetched_by_a_few_batch_jobs(
        lalamove_app, lalamove_sim):
    """One proofs job fetches several requests' images (``gateway.proofs.fetch_batch``):
    each image once, each request's outcome audited as its own job's would be, and no job of
    its own for any of them."""
    from rq.registry import FinishedJobRegistry

    from gateway.models import AuditRecord

    app = lalamove_app()
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    ids = [submit(app, key, parcel(app)) for _ in range(4)]
    for request_id in ids:
        wait_for_status(app, request_id, "delivered")
    drain(app)

    links = [s["POD"]["image"] for w in sim_get(lalamove_sim, "/_sim/webhooks")
             if w.get("body") and w["body"]["eventType"] == "POD_STATUS_CHANGED"
             for s in w["body"]["data"]["order"]["stops"] if "POD" in s]
    assert len(links) == 8
    assert sorted(f["path"] for f in proof_fetches(lalamove_sim)) == sorted(
        u.split("?")[0].removeprefix(lalamove_sim.url) for u in links)
    assert {(r.request_id, r.status) for r in stored(app)} == {(i, "stored") for i in ids}
    gateway = app.extensions["gateway"]
    finished = FinishedJobRegistry("default", connection=gateway.redis).get_job_ids()
    assert any(j.startswith("proofs-batch-") for j in finished)
    assert not any(j.startswith("proof-") for j in finished)
    with gateway.db.read() as session:
        audited = session.execute(select(AuditRecord.target, AuditRecord.outcome).where(
            AuditRecord.action == "job.proof")).all()
    assert sorted(audited) == sorted((f"request:{i}", "2 stored, 0 failed") for i in ids)


def test_an_image_still_listed_for_a_proofs_job_is_not_taken_for_lost(
        lalamove_app, lalamove_sim):
    """Behind a backlog an image waits its turn on the proofs list longer than the sweep's
    patience; the sweep leaves it there (a job of its own only found it done) and takes it
    for lost only once it is no longer listed (taken by a worker that died, or Redis lost)."""
    from gateway.proofs import PROOFS

    app = lalamove_app()
    gateway = app.extensions["gateway"]
    # as if its image waited its turn on the list for longer than the sweep's patience
    request_id, _link = delivered_and_owed_again(app, lalamove_sim, "pod-waits")
    gateway.redis.rpush(PROOFS.key, request_id)
    assert PROOFS.listed(gateway) == {request_id}
    assert ("proof", request_id) not in owed_work(gateway)
    gateway.redis.delete(PROOFS.key)        # as if Redis lost the list
    assert ("proof", request_id) in owed_work(gateway)
    sweep_once(gateway)
    drain(app)
    assert [row.status for row in stored(app)] == ["stored"]
