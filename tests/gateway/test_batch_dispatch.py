"""Dispatch in batches (``gateway.batch``), watched at the GO-SEND simulator over HTTP: fewer
jobs than requests, every request booked once, and nothing lost or doubled when a batch is
interrupted or meets a request its own job is working on."""

from __future__ import annotations

import logging
from datetime import timedelta

from rq import Queue
from rq.registry import FinishedJobRegistry
from sqlalchemy import select, update

from gateway import batch
from gateway.audit import verify_chain
from gateway.models import AuditRecord, CourierAttempt, DeliveryQuote, ServiceRequest, utcnow
from gateway.queues import request_lock
from gateway.sweep import sweep_once
from gateway.testing import drain
from tests.conftest import bearer, new_key
from tests.gateway.couriers.helpers import bookings, sim_get, sim_post

CREATE = "/api/v1/services/medicine_delivery/requests"


def submit_many(app, body, count: int) -> list[str]:
    key = new_key(app, key_type="test")
    client = app.test_client()
    ids = []
    for n in range(count):
        response = client.post(CREATE, json={**body, "prescription_id": f"RX-B-{n}"},
                               headers=bearer(key))
        assert response.status_code == 202, response.get_json()
        ids.append(response.get_json()["id"])
    return ids


def statuses(app, ids) -> dict[str, str]:
    with app.extensions["gateway"].db.read() as session:
        return dict(session.execute(select(ServiceRequest.id, ServiceRequest.status)
                                    .where(ServiceRequest.id.in_(ids))).all())


def creates_received(sim) -> list[str]:
    """Our references in the create calls the simulator received, in order."""
    return [r["json"]["routes"][0]["storeOrderId"] for r in sim_get(sim, "/_sim/requests")
            if r["method"] == "POST" and r["path"].endswith("/booking")]


def test_requests_accepted_together_are_booked_by_a_few_batch_jobs_each_once(
        gosend_app, gateway_gosend, medicine_body):
    app = gosend_app(dispatch={"batch_size": 10})
    ids = submit_many(app, medicine_body, 25)
    drain(app)

    assert set(statuses(app, ids).values()) <= {"booked", "driver_assigned", "picked_up",
                                               "in_transit", "delivered"}
    assert sorted(creates_received(gateway_gosend)) == sorted(f"{i}-1" for i in ids)
    assert len(bookings(gateway_gosend)) == 25
    gateway = app.extensions["gateway"]
    finished = FinishedJobRegistry("dispatch", connection=gateway.redis).get_job_ids()
    assert 1 <= len(finished) <= 3 and all(j.startswith("dispatch-batch-") for j in finished)
    with gateway.db.read() as session:
        assert verify_chain(session).ok
        calls = session.execute(select(AuditRecord.correlation_id, AuditRecord.details).where(
            AuditRecord.action == "courier.call")).all()
        batches = session.scalars(select(AuditRecord.details).where(
            AuditRecord.action == "job.dispatch_batch")).all()
        quotes = session.execute(select(DeliveryQuote.request_id, DeliveryQuote.chosen)).all()
    # each request's quote from the courier that booked it is marked as the one chosen
    assert sorted(quotes) == sorted((i, True) for i in ids)
    # each batch of 10 is recorded a few answers a transaction (batch.RECORD_SLICE), and
    # audited once, with the answers of all its transactions
    assert sum(b["requests"] for b in batches) == 25 and sum(b["booked"] for b in batches) == 25
    assert all(b["requests"] > batch.RECORD_SLICE for b in batches[:1])
    # every provider call is audited, under the correlation id of the request it served:
    # each request's quote (gateway.costs) and its booking (and, as the simulator moves on,
    # status queries for the courier's plate, which GO-SEND's webhooks leave out)
    booking_calls = [c for c, details in calls if details["operation"] in ("quote", "book")]
    assert len(booking_calls) == 50 and all(c for c, _ in calls)


def test_with_batches_off_each_request_has_its_own_job(gosend_app, gateway_gosend, medicine_body):
    app = gosend_app(dispatch={"batch_size": 0})
    ids = submit_many(app, medicine_body, 3)
    queue = Queue("dispatch", connection=app.extensions["gateway"].redis)
    assert sorted(queue.job_ids) == sorted(f"dispatch-{i}" for i in ids)
    drain(app)
    assert len(bookings(gateway_gosend)) == 3


def test_a_request_its_own_job_is_working_on_is_left_to_that_job(
        gosend_app, gateway_gosend, medicine_body):
    app = gosend_app()
    gateway = app.extensions["gateway"]
    busy, free = submit_many(app, medicine_body, 2)
    lock = request_lock(gateway, "dispatch", busy)
    assert lock.acquire(blocking=False)
    with app.app_context():
        outcomes = batch.dispatch_batch(gateway, [busy, free])
    assert outcomes == {"booked": 1}
    assert creates_received(gateway_gosend) == [f"{free}-1"]
    assert statuses(app, [busy]) == {busy: "received"}       # untouched, still owed
    lock.release()
    with gateway.db.write() as session:   # as if its job had been lost: the sweep finds it
        session.execute(update(ServiceRequest).where(ServiceRequest.id == busy)
                        .values(pending_since=utcnow() - timedelta(hours=1)))
    sweep_once(gateway)
    drain(app)
    assert sorted(creates_received(gateway_gosend)) == sorted([f"{free}-1", f"{busy}-1"])


def test_a_batch_interrupted_after_calling_the_courier_is_adopted_not_booked_twice(
        gosend_app, gateway_gosend, medicine_body):
    """A worker killed between the provider's answer and recording it: the attempts stay
    pending; the sweep's jobs look them up by our reference and adopt what was booked."""
    app = gosend_app()
    gateway = app.extensions["gateway"]
    ids = submit_many(app, medicine_body, 3)
    gateway.redis.delete(batch.READY_KEY)        # the killed batch had taken them
    with app.app_context():
        planned = batch._plan(gateway, ids, [])
        batch._call_couriers(gateway, planned)   # ... and died here
    assert len(bookings(gateway_gosend)) == 3
    with gateway.db.write() as session:
        assert set(session.scalars(select(CourierAttempt.state))) == {"pending"}
        session.execute(update(ServiceRequest).where(ServiceRequest.id.in_(ids))
                        .values(pending_since=utcnow() - timedelta(hours=1)))
    assert sweep_once(gateway) == 3
    drain(app)

    assert len(bookings(gateway_gosend)) == 3                    # nothing booked twice
    assert sorted(creates_received(gateway_gosend)) == sorted(f"{i}-1" for i in ids)
    assert set(statuses(app, ids).values()) - {"booked", "driver_assigned", "picked_up",
                                               "in_transit", "delivered"} == set()
    with gateway.db.read() as session:
        hows = session.scalars(select(AuditRecord.details).where(
            AuditRecord.action == "courier.book", AuditRecord.outcome == "booked")).all()
    assert [h["how"] for h in hows] == ["found by our reference"] * 3


def test_a_refusal_in_a_batch_hands_the_request_to_its_own_job_which_fails_over(
        gosend_app, gateway_gosend, medicine_body):
    app = gosend_app()
    (request_id,) = submit_many(app, {**medicine_body, "notes_for_courier": "[sim:reject]"}, 1)
    drain(app)
    assert creates_received(gateway_gosend) == [f"{request_id}-1"]    # tried once, refused
    with app.extensions["gateway"].db.read() as session:
        record = session.get(ServiceRequest, request_id)
        attempts = session.execute(select(CourierAttempt.courier, CourierAttempt.state)
                                   .where(CourierAttempt.request_id == request_id)
                                   .order_by(CourierAttempt.attempt_no)).all()
    assert attempts == [("gosend_sandbox", "rejected"), ("own_fleet", "booked")]
    assert record.provider == "own_fleet"


def test_a_batch_making_more_calls_at_once_than_requests_default_pool_keeps_its_connections(
        gosend_app, gateway_gosend, medicine_body, caplog):
    """16 bookings at GO-SEND at the same moment (each answer held half a second): the
    courier's connection pool holds them all, so none is thrown away after its call
    (requests' default pool holds 10, and urllib3 would discard the other 6, each
    connection made again for the next call)."""
    gateway_gosend.slow_seconds = 0.5
    sim_post(gateway_gosend, "/_sim/faults", {"create": ["timeout"] * 16})
    app = gosend_app(dispatch={"batch_size": 16, "batch_concurrency": 16})
    ids = submit_many(app, medicine_body, 16)
    with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"):
        drain(app)
    discarded = [r.getMessage() for r in caplog.records
                 if r.name == "urllib3.connectionpool" and "pool is full" in r.getMessage()]
    assert discarded == []
    assert sorted(creates_received(gateway_gosend)) == sorted(f"{i}-1" for i in ids)
    assert set(statuses(app, ids).values()) <= {"booked", "driver_assigned", "picked_up",
                                               "in_transit", "delivered"}
