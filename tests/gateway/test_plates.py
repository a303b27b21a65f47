"""The courier's plate, asked for in batches (``gateway.plates``): GO-SEND's webhooks name the
driver but not the plate (its booking webhook documentation); its status answer has it. Watched
at the GO-SEND simulator over HTTP: one status question per booking, asked by a few plates
jobs for many requests, none for a request that no longer needs it."""

from __future__ import annotations

from rq.registry import FinishedJobRegistry
from sqlalchemy import select

from gateway.audit import verify_chain
from gateway.models import AuditRecord, ServiceRequest
from gateway.plates import ask_batch
from gateway.testing import drain
from gateway.tracking import PLATES
from tests.gateway.couriers.helpers import bookings, sim_get, sim_post
from tests.gateway.test_batch_dispatch import submit_many
from tests.gateway.test_report_batches import UNLIMITED


def status_questions(sim) -> dict[str, int]:
    """How many status questions (GETs) the simulator received per order number."""
    asked: dict[str, int] = {}
    for call in sim_get(sim, "/_sim/requests"):
        if call["method"] == "GET" and "/booking/orderno/" in call["path"]:
            order = call["path"].rsplit("/", 1)[-1]
            asked[order] = asked.get(order, 0) + 1
    return asked


def couriers_of(app, ids) -> dict[str, tuple]:
    with app.extensions["gateway"].db.read() as session:
        return {r.id: (r.status, r.courier_first_name, r.courier_plate) for r in session.scalars(
            select(ServiceRequest).where(ServiceRequest.id.in_(ids)))}


def booked(gosend_app, gateway_gosend, medicine_body, count):
    """``count`` requests booked at the GO-SEND simulator, whose clock the test moves.
    :return: (app, gateway, request ids)"""
    gateway_gosend.stop_clock()
    sim_post(gateway_gosend, "/_sim/reset")
    app = gosend_app(api=UNLIMITED)
    ids = submit_many(app, medicine_body, count)
    drain(app)
    return app, app.extensions["gateway"], ids


def listed(gateway) -> list[str]:
    return [i.decode() for i in gateway.redis.lrange(PLATES.key, 0, -1)]


def test_plates_of_many_bookings_are_asked_by_a_few_jobs_once_each(
        gosend_app, gateway_gosend, medicine_body):
    app, gateway, ids = booked(gosend_app, gateway_gosend, medicine_body, 12)
    gateway_gosend.tick(now=float("inf"))       # each: confirmed, then allocated (a driver)
    drain(app)

    found = couriers_of(app, ids)
    plates = {b["orderNo"]: b["driver"][2] for b in bookings(gateway_gosend)}
    assert all(status == "driver_assigned" and first and plate in plates.values()
               for status, first, plate in found.values()), found
    asked = status_questions(gateway_gosend)
    assert sorted(asked) == sorted(plates) and set(asked.values()) == {1}
    finished = FinishedJobRegistry("default", connection=gateway.redis).get_job_ids()
    plate_jobs = [j for j in finished if j.startswith("plates-batch-")]
    assert 1 <= len(plate_jobs) <= 2
    with gateway.db.read() as session:
        assert verify_chain(session).ok
        calls = session.scalars(select(AuditRecord.correlation_id).where(
            AuditRecord.action == "courier.call")).all()
        correlation = dict(session.execute(select(ServiceRequest.provider_reference,
                                                  ServiceRequest.correlation_id)).all())
    # each question audited under the correlation id of the request it was asked for
    assert all(correlation[order] in calls for order in asked)


def test_a_request_that_no_longer_wants_its_plate_is_not_asked_about(
        gosend_app, gateway_gosend, medicine_body):
    app, gateway, ids = booked(gosend_app, gateway_gosend, medicine_body, 3)
    for booking in bookings(gateway_gosend)[:2]:
        sim_post(gateway_gosend, f"/_sim/bookings/{booking['orderNo']}/advance")   # allocated
    drain(app, queues=["reports"])              # applied; the two plates listed, not asked
    wanting = listed(gateway)
    assert len(wanting) == 2
    with gateway.db.write() as session:         # one was cancelled meanwhile
        session.get(ServiceRequest, wanting[0]).status = "cancelled"
    with app.app_context():
        outcomes = ask_batch(gateway, [*wanting, ids[2], "no-such-request"])
    # the cancelled one, the one with no driver yet and an unknown id: nothing asked
    assert sorted(outcomes) == ["asked"] + ["nothing to do"] * 3
    assert list(status_questions(gateway_gosend).values()) == [1]


def test_a_question_that_fails_leaves_the_others_answered(
        gosend_app, gateway_gosend, medicine_body):
    app, gateway, ids = booked(gosend_app, gateway_gosend, medicine_body, 3)
    gateway_gosend.tick(now=float("inf"))
    drain(app, queues=["reports"])
    wanting = listed(gateway)
    gone = next(b["orderNo"] for b in bookings(gateway_gosend))
    with gateway.db.write() as session:        # a booking the provider does not know
        record = session.scalars(select(ServiceRequest).where(
            ServiceRequest.provider_reference == gone)).one()
        record.provider_reference = "GK-UNKNOWN"
    with app.app_context():
        outcomes = ask_batch(gateway, wanting)
    assert sorted(outcomes) == ["asked", "asked", "failed"]
    drain(app, queues=["reports"])
    found = couriers_of(app, ids)
    assert sum(1 for _status, _first, plate in found.values() if plate) == 2
