"""Provider reports applied in batches (``gateway.tracking``): GO-SEND's simulator sends its
webhooks over real HTTP (its "confirmed" report for every booking it makes, as its booking
webhook documentation describes: one POST per status change), the gateway stores them, and
real rq workers on a real Redis apply them, a few jobs for many reports, each exactly once."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import timedelta

from rq import Queue
from rq.job import Job
from rq.registry import FinishedJobRegistry, ScheduledJobRegistry
from sqlalchemy import event, func, or_, select, update
from sqlalchemy.exc import OperationalError

from gateway import tracking
from gateway.agencies import create_agency
from gateway.audit import verify_chain
from gateway.jobs import apply_reports
from gateway.models import (
    AuditRecord,
    CallbackDelivery,
    Notice,
    ProviderEventRecord,
    ServiceRequest,
    StatusEvent,
    utcnow,
)
from gateway.queues import QueueNames, enqueue_job
from gateway.statuses import Status
from gateway.sweep import owed_work, sweep_once
from gateway.testing import drain
from gateway.tracking import PLATES, REPORTS, due_for_polling, hand_over
from tests.conftest import bearer
from tests.gateway.couriers.helpers import sim_get, sim_post
from tests.gateway.test_batch_dispatch import statuses, submit_many

CREATE = "/api/v1/services/medicine_delivery/requests"
#: the test key's rate limit would refuse a hundred requests in a second
UNLIMITED = {"rate_limits": {"live": {"rate": 1000.0, "burst": 1000},
                             "test": {"rate": 1000.0, "burst": 1000}}}


def book_then_report(gosend_app, gateway_gosend, medicine_body, count: int, **jobs):
    """``count`` requests booked at GO-SEND, and its first report of each (``confirmed``)
    received, stored and listed, not applied yet."""
    gateway_gosend.stop_clock()            # the test says when the simulator speaks
    sim_post(gateway_gosend, "/_sim/reset")
    app = gosend_app(jobs={"intervals": [0], **jobs}, api=UNLIMITED)
    ids = submit_many(app, medicine_body, count)
    drain(app)                              # booked; their webhooks are still held
    gateway = app.extensions["gateway"]
    before = len(sim_get(gateway_gosend, "/_sim/webhooks"))
    gateway_gosend.tick(now=0)              # ... and now sent, one per booking
    sent = sim_get(gateway_gosend, "/_sim/webhooks")[before:]
    assert len(sent) == count and {w["answer"] for w in sent} == {200}
    assert REPORTS.length(gateway.redis) == count
    return app, ids


def applied(app) -> dict[str, int]:
    """How many times each request's reports were applied (audited and on its timeline)."""
    gateway = app.extensions["gateway"]
    with gateway.db.read() as session:
        audited = dict(session.execute(
            select(AuditRecord.target, func.count()).where(
                AuditRecord.action == "provider.event").group_by(AuditRecord.target)).all())
        timeline = dict(session.execute(
            select(StatusEvent.request_id, func.count()).where(
                StatusEvent.raw_status == "confirmed",      # the report's, not the booking's
                or_(StatusEvent.detail.is_(None), ~StatusEvent.detail.startswith("booked at")))
            .group_by(StatusEvent.request_id)).all())
    assert {t.removeprefix("request:"): n for t, n in audited.items()} == timeline
    return timeline


def report_jobs(app) -> list[str]:
    redis = app.extensions["gateway"].redis
    # report batches have the reports queue; a report's own job (batches off, handed over)
    # the default one
    return [job for queue in ("reports", "default")
            for job in FinishedJobRegistry(queue, connection=redis).get_job_ids()]


def test_a_hundred_reports_are_applied_by_a_few_report_jobs_each_exactly_once(
        gosend_app, gateway_gosend, medicine_body):
    app, ids = book_then_report(gosend_app, gateway_gosend, medicine_body, 100,
                                report_batch_size=40)
    drain(app)

    assert applied(app) == {i: 1 for i in ids}
    jobs = report_jobs(app)
    assert 1 <= len(jobs) <= 4 and all(j.startswith("reports-batch-") for j in jobs)
    with app.extensions["gateway"].db.read() as session:
        assert session.scalar(select(func.count()).where(
            ProviderEventRecord.processed_at.is_(None))) == 0
    drain(app)                              # nothing left, nothing applied twice
    assert applied(app) == {i: 1 for i in ids}


def test_a_report_that_cannot_be_applied_does_not_stop_its_neighbours(
        gosend_app, gateway_gosend, medicine_body):
    app, ids = book_then_report(gosend_app, gateway_gosend, medicine_body, 6,
                                report_batch_size=50)
    gateway = app.extensions["gateway"]
    with gateway.db.write() as session:     # a row no version of the gateway can read
        bad = session.scalars(select(ProviderEventRecord.id).order_by(
            ProviderEventRecord.id).offset(2).limit(1)).one()
        session.execute(update(ProviderEventRecord).where(ProviderEventRecord.id == bad)
                        .values(status="not-a-status"))
    drain(app)

    counts = applied(app)
    assert len(counts) == 5 and set(counts.values()) == {1}
    with gateway.db.read() as session:
        row = session.get(ProviderEventRecord, bad)
        assert row.processed_at is None and row.request_id is None
    # handed to its own job, which rq retries (and, spent, keeps in the failed registry)
    scheduled = ScheduledJobRegistry("default", connection=gateway.redis).get_job_ids()
    assert f"event-{bad}" in scheduled
    assert ("event", bad) not in owed_work(gateway)     # not stale yet


def test_two_workers_draining_at_once_apply_each_report_once(
        gosend_app, gateway_gosend, medicine_body):
    app, ids = book_then_report(gosend_app, gateway_gosend, medicine_body, 60,
                                report_batch_size=5)
    workers = [threading.Thread(target=drain, args=(app,)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    drain(app)

    assert applied(app) == {i: 1 for i in ids}
    assert all(j.startswith("reports-batch-") for j in report_jobs(app))


def test_with_report_batches_off_each_report_has_its_own_job(
        gosend_app, gateway_gosend, medicine_body):
    gateway_gosend.stop_clock()
    app = gosend_app(jobs={"intervals": [0], "report_batch_size": 0})
    ids = submit_many(app, medicine_body, 3)
    drain(app)
    gateway_gosend.tick(now=0)
    drain(app)
    assert applied(app) == {i: 1 for i in ids}
    jobs = report_jobs(app)
    assert len(jobs) == 3 and all(j.startswith("event-") for j in jobs)


def test_reports_a_dead_worker_had_taken_are_applied_through_the_sweep(
        gosend_app, gateway_gosend, medicine_body):
    app, ids = book_then_report(gosend_app, gateway_gosend, medicine_body, 6,
                                report_batch_size=50)
    gateway = app.extensions["gateway"]
    taken = REPORTS.take(gateway, 4)        # a report job took these, and its worker died
    with gateway.db.write() as session:
        session.execute(update(ProviderEventRecord).values(
            received_at=utcnow() - timedelta(hours=1)))
    # the two still listed wait for their turn; the four taken are owed work again
    owed = sorted(target for kind, target in owed_work(gateway) if kind == "event")
    assert owed == sorted(int(i) for i in taken)
    assert sweep_once(gateway) >= 4
    drain(app)

    assert applied(app) == {i: 1 for i in ids}
    assert [target for kind, target in owed_work(gateway) if kind == "event"] == []


def overdue(gateway, job_id: str, seconds: float = 60) -> None:
    """Put a scheduled job's time ``seconds`` in the past, as if the scheduler that was to
    move it had died with its worker (another takes its lock only a minute later)."""
    registry = ScheduledJobRegistry("default", connection=gateway.redis)
    assert job_id in registry.get_job_ids()
    gateway.redis.zadd(registry.key, {job_id: (utcnow() - timedelta(seconds=seconds))
                                      .timestamp()})


def test_reports_whose_own_jobs_no_scheduler_moves_are_applied_through_the_sweep(
        gosend_app, gateway_gosend, medicine_body):
    app, ids = book_then_report(gosend_app, gateway_gosend, medicine_body, 3,
                                report_batch_size=50)
    gateway = app.extensions["gateway"]
    taken = [int(i) for i in REPORTS.take(gateway, 3)]
    for event_id in taken:                  # handed to their own jobs, to retry in a minute
        hand_over(gateway, event_id, 60)
    with gateway.db.write() as session:
        session.execute(update(ProviderEventRecord).values(
            received_at=utcnow() - timedelta(hours=1)))
    # still to run in time: their jobs are left alone
    assert sweep_once(gateway) == 0
    # past their time with no scheduler to move them: lost, queued again
    for event_id in taken:
        overdue(gateway, f"event-{event_id}")
    assert sweep_once(gateway) >= 3
    drain(app)

    assert applied(app) == {i: 1 for i in ids}
    assert [target for kind, target in owed_work(gateway) if kind == "event"] == []


def set_received(gateway, event_ids, ago: timedelta) -> None:
    with gateway.db.write() as session:
        session.execute(update(ProviderEventRecord).where(ProviderEventRecord.id.in_(event_ids))
                        .values(received_at=utcnow() - ago))


def test_a_poll_is_held_back_behind_the_report_backlog_and_not_for_ever_by_a_lost_report(
        gosend_app, gateway_gosend, medicine_body):
    app, ids = book_then_report(gosend_app, gateway_gosend, medicine_body, 3,
                                report_batch_size=50)
    gateway = app.extensions["gateway"]
    with gateway.db.write() as session:     # quiet for long: due for a poll but for the reports
        session.execute(update(ServiceRequest).values(updated_at=utcnow() - timedelta(days=1)))
    assert due_for_polling(gateway) == []   # listed, just stored

    # two taken by a worker that died (no longer listed, no job), a little older than the
    # one still listed, which has waited five minutes: the backlog in front of them has not
    # drained, so their turn would not have come yet either
    lost = [int(i) for i in REPORTS.take(gateway, 2)]
    listed = int(gateway.redis.lindex(REPORTS.key, 0))
    set_received(gateway, [listed], timedelta(minutes=5))
    set_received(gateway, lost, timedelta(minutes=5, seconds=10))
    assert due_for_polling(gateway) == []

    # a backlog an hour old counts as POLL_HOLD_LIMIT at most: a lost report holds no poll
    # back for ever behind a list no worker takes
    set_received(gateway, [listed], timedelta(hours=1))
    set_received(gateway, lost, timedelta(hours=1, seconds=10))
    with gateway.db.read() as session:
        polled_lost = set(session.scalars(select(ServiceRequest.id).join(
            ProviderEventRecord, ProviderEventRecord.provider_reference
            == ServiceRequest.provider_reference).where(ProviderEventRecord.id.in_(lost))))
    assert len(polled_lost) == 2 and polled_lost <= set(due_for_polling(gateway))

    # five minutes again, and the backlog drains: the lost reports' bookings are polled
    set_received(gateway, [listed], timedelta(minutes=5))
    set_received(gateway, lost, timedelta(minutes=5, seconds=10))
    assert due_for_polling(gateway) == []
    drain(app)                              # the listed report applied; the lost ones not
    with gateway.db.read() as session:
        assert set(session.scalars(select(ProviderEventRecord.id).where(
            ProviderEventRecord.processed_at.is_(None)))) == set(lost)
    assert polled_lost <= set(due_for_polling(gateway))


def test_polls_wait_on_their_own_queue_behind_citizens_notices(
        gosend_app, gateway_gosend, medicine_body):
    app, ids = book_then_report(gosend_app, gateway_gosend, medicine_body, 1,
                                report_batch_size=50)
    gateway = app.extensions["gateway"]
    enqueue_job(gateway, "poll", ids[0])
    assert Job.fetch(f"poll-{ids[0]}", connection=gateway.redis).origin == QueueNames.POLLS
    order = QueueNames.own_work()
    assert order.index(QueueNames.DEFAULT) < order.index(QueueNames.POLLS)


def test_a_report_job_steps_aside_for_a_booking_waiting(
        gosend_app, gateway_gosend, medicine_body, monkeypatch):
    """A booking waits for the report job's transaction in hand, not for its whole slice
    (the transaction's time bound cut to nothing here: one report each)."""
    app, ids = book_then_report(gosend_app, gateway_gosend, medicine_body, 8,
                                report_batch_size=50)
    gateway = app.extensions["gateway"]
    monkeypatch.setattr(tracking, "REPORT_TRANSACTION_SECONDS", 0)
    later = submit_many(app, medicine_body, 1)     # its booking waits on the dispatch queue
    with app.app_context():
        outcomes = apply_reports()

    assert sum(outcomes.values()) == 1      # the transaction in hand, then the booking's turn
    assert REPORTS.length(gateway.redis) == 7
    drain(app)
    assert applied(app) == {i: 1 for i in ids}
    assert statuses(app, later) == {later[0]: "booked"}


def move_to_queue(gateway, job_id: str) -> None:
    """Run a report's own job now rather than after its retry's wait (the tests' workers run
    no scheduler)."""
    job = Job.fetch(job_id, connection=gateway.redis)
    ScheduledJobRegistry("default", connection=gateway.redis).remove(job)
    Queue("default", connection=gateway.redis).enqueue_job(job)


def commits_of(gateway, work) -> int:
    """How many transactions ``work`` committed."""
    commits = []

    def count(_conn):
        commits.append(1)

    event.listen(gateway.db.engine, "commit", count)
    try:
        work()
    finally:
        event.remove(gateway.db.engine, "commit", count)
    return len(commits)


def test_a_report_failing_mid_chunk_is_undone_alone_with_its_after_commit_work(
        gosend_app, gateway_gosend, medicine_body, callback_receiver, monkeypatch):
    """GO-SEND's webhooks (its booking webhook documentation: one POST per status change)
    for five bookings, ``confirmed`` then ``allocated`` each, applied by one report job; the
    middle booking's ``allocated`` fails after its status change was made (a listener
    broke), so that its callback and its courier poll were already planned."""
    gateway_gosend.stop_clock()
    sim_post(gateway_gosend, "/_sim/reset")
    app = gosend_app(jobs={"intervals": [0], "report_batch_size": 50}, api=UNLIMITED)
    gateway = app.extensions["gateway"]
    _agency, key = create_agency(gateway, "Puskesmas Gabungan", ["medicine_delivery"],
                                 callback_receiver.url, actor="test", key_type="test")
    client = app.test_client()
    ids = []
    for n in range(5):
        answer = client.post(CREATE, json={**medicine_body, "prescription_id": f"RX-C-{n}"},
                             headers=bearer(key))
        assert answer.status_code == 202, answer.get_json()
        ids.append(answer.get_json()["id"])
    drain(app)                              # booked; the booked callbacks delivered
    gateway_gosend.tick(now=float("inf"))   # every booking: its confirmed, then allocated
    assert REPORTS.length(gateway.redis) == 10
    bad_request = ids[2]
    with gateway.db.read() as session:
        bad = session.scalar(select(ProviderEventRecord.id).join(
            ServiceRequest, ServiceRequest.provider_reference
            == ProviderEventRecord.provider_reference).where(
            ServiceRequest.id == bad_request, ProviderEventRecord.raw_status == "allocated"))

    real_apply = tracking._apply

    def breaks_after_its_work(gateway, session, row, attempt, record):
        outcome = real_apply(gateway, session, row, attempt, record)
        if row.id == bad:
            raise RuntimeError("a listener broke after the status change")
        return outcome

    monkeypatch.setattr(tracking, "_apply", breaks_after_its_work)
    # however slow the machine, the chunk is not cut in two by its transactions' time bound
    monkeypatch.setattr(tracking, "REPORT_TRANSACTION_SECONDS", 60)
    outcomes = {}

    def run_the_report_job():
        with app.app_context():
            outcomes.update(apply_reports())

    assert commits_of(gateway, run_the_report_job) == 1      # the whole chunk, one commit
    assert outcomes["handed over"] == 1 and sum(outcomes.values()) == 10
    monkeypatch.undo()

    assert statuses(app, ids) == {i: "booked" if i == bad_request else "driver_assigned"
                                  for i in ids}
    with gateway.db.read() as session:
        row = session.get(ProviderEventRecord, bad)
        assert row.processed_at is None and row.request_id is None
        called_back = set(session.execute(select(CallbackDelivery.request_id,
                                                 CallbackDelivery.status)).all())
        notices = set(session.scalars(select(Notice.request_id).where(
            Notice.kind == "courier_assigned")))
        assert verify_chain(session).ok
    assert {(i, "driver_assigned") for i in ids if i != bad_request} <= called_back
    assert (bad_request, "driver_assigned") not in called_back
    assert bad_request not in notices
    redis = gateway.redis
    # the courier's plate is asked for (GO-SEND's webhook names the driver only), but not
    # for the report that was undone
    wanting = {i.decode() for i in redis.lrange(PLATES.key, 0, -1)}
    assert [i in wanting for i in ids] == [i != bad_request for i in ids]
    assert f"event-{bad}" in ScheduledJobRegistry("default", connection=redis).get_job_ids()
    assert audited_reports(gateway) == {i: 1 if i == bad_request else 2 for i in ids}

    move_to_queue(gateway, f"event-{bad}")  # its own job: applied this time
    drain(app)
    assert statuses(app, ids) == {i: "driver_assigned" for i in ids}
    by_request: dict[str, list[tuple[int, str]]] = {}
    for call in callback_receiver.received:
        body = json.loads(call.body)
        by_request.setdefault(body["request_id"], []).append((body["sequence"], body["status"]))
    # every status called back once; in the agency's order (``sequence``), forward only
    for calls in by_request.values():
        in_order = [status for _sequence, status in sorted(calls)]
        assert in_order == sorted(in_order, key=lambda s: Status(s).rank)
        assert len(set(in_order)) == len(in_order) and in_order[-1] == "driver_assigned"
    assert set(by_request) == set(ids)
    # each webhook applied once (the polls for the plate added a report each)
    assert audited_reports(gateway, source="webhook") == {i: 2 for i in ids}
    with gateway.db.read() as session:
        assert verify_chain(session).ok
        assert session.scalar(select(func.count()).where(
            ProviderEventRecord.processed_at.is_(None))) == 0


def audited_reports(gateway, source: str | None = None) -> dict[str, int]:
    """How many reports of each request were applied (audited), of ``source`` or any."""
    counted: dict[str, int] = {}
    with gateway.db.read() as session:
        for target, details in session.execute(select(AuditRecord.target, AuditRecord.details)
                                               .where(AuditRecord.action == "provider.event")):
            if source is None or details.get("source") == source:
                request_id = target.removeprefix("request:")
                counted[request_id] = counted.get(request_id, 0) + 1
    return counted


def test_a_chunk_that_cannot_commit_loses_no_report(gosend_app, gateway_gosend, medicine_body):
    app, ids = book_then_report(gosend_app, gateway_gosend, medicine_body, 6,
                                report_batch_size=50)
    gateway = app.extensions["gateway"]

    def database_away(_session):
        raise OperationalError("COMMIT", {}, sqlite3.OperationalError("disk I/O error"))

    event.listen(gateway.db.session_factory, "before_commit", database_away)
    try:
        with app.app_context():
            outcomes = apply_reports()
    finally:
        event.remove(gateway.db.session_factory, "before_commit", database_away)

    assert outcomes == {"handed over": 6}
    assert applied(app) == {}               # nothing of the chunk was applied
    with gateway.db.read() as session:
        unapplied = list(session.scalars(select(ProviderEventRecord.id).where(
            ProviderEventRecord.processed_at.is_(None))))
        assert verify_chain(session).ok
    assert len(unapplied) == 6
    scheduled = ScheduledJobRegistry("default", connection=gateway.redis).get_job_ids()
    assert {f"event-{i}" for i in unapplied} <= set(scheduled)   # each to its own job
    for event_id in unapplied:
        move_to_queue(gateway, f"event-{event_id}")
    drain(app)
    assert applied(app) == {i: 1 for i in ids}


def test_a_chunk_cut_by_its_transaction_time_bound_applies_every_report_once(
        gosend_app, gateway_gosend, medicine_body, monkeypatch):
    """On a slow machine a chunk's transaction ends early (the API waits for SQLite's write
    lock that long at most): the rest of the chunk goes on in the next transactions."""
    app, ids = book_then_report(gosend_app, gateway_gosend, medicine_body, 8,
                                report_batch_size=50)
    gateway = app.extensions["gateway"]
    monkeypatch.setattr(tracking, "REPORT_TRANSACTION_SECONDS", 0)   # one report each
    outcomes = {}

    def run_the_report_job():
        with app.app_context():
            outcomes.update(apply_reports())

    assert commits_of(gateway, run_the_report_job) == 8
    assert sum(outcomes.values()) == 8 and REPORTS.length(gateway.redis) == 0
    assert applied(app) == {i: 1 for i in ids}
