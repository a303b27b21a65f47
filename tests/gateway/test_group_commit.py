"""Group commit: new requests that arrive together are stored in one transaction, each caller
answered only once it committed, and one bad request never fails its neighbours.

To make a group deterministically, the writer is first kept busy by a store that waits; the
requests submitted meanwhile queue, and the writer takes them all as the next group.
"""

from __future__ import annotations

import threading
import time

import pytest
from flask import request
from sqlalchemy import func, select

from gateway import intake
from gateway.audit import verify_chain
from gateway.batch import READY_KEY
from gateway.errors import Conflict
from gateway.intake import NewRequest
from gateway.models import AuditRecord, ServiceRequest, StatusEvent
from tests.conftest import bearer


@pytest.fixture
def actor(app, gateway, agency):
    with app.test_request_context(headers=bearer(agency.key)):
        return gateway.pm.hook.actor_from_request(gateway=gateway, request=request)


@pytest.fixture
def groups(gateway):
    """``(outcome, size)`` of each group the writer commits from now on."""
    seen = []
    observe = gateway.writer._observe
    gateway.writer._observe = lambda outcome, size: (seen.append((outcome, size)),
                                                     observe(outcome, size))
    return seen


def new(actor, body, **kw) -> NewRequest:
    return NewRequest(actor, "medicine_delivery", body, correlation_id="corr-group", **kw)


def body(medicine_body, n):
    return {**medicine_body, "prescription_id": f"RX-GROUP-{n}"}


def run_together(gateway, works, held=None):
    """Call each of ``works`` (no arguments) in a thread of its own while the writer is
    held, then let it go: what they store is one group. ``held()`` is called once they all
    wait, before the writer goes on. :return: what each returned or raised, in order"""
    release, holding = threading.Event(), threading.Event()

    def hold(_session):
        holding.set()
        release.wait(10)

    holder = threading.Thread(target=gateway.writer.run, args=(hold,))
    holder.start()
    assert holding.wait(10)
    outcomes = [None] * len(works)

    def one(i):
        try:
            outcomes[i] = works[i]()
        except Exception as exc:   # the test looks at what each caller got
            outcomes[i] = exc

    callers = [threading.Thread(target=one, args=(i,)) for i in range(len(works))]
    for caller in callers:
        caller.start()
    deadline = time.monotonic() + 10
    while gateway.writer._waiting.qsize() < len(works) and time.monotonic() < deadline:
        time.sleep(0.01)
    if held is not None:
        held()
    release.set()
    for thread in [holder, *callers]:
        thread.join(10)
    return outcomes


def submit_together(gateway, news):
    """Submit ``news`` together: one group. :return: what each submit returned or raised"""
    return run_together(gateway, [lambda asked=asked: intake.submit(gateway, asked)
                                  for asked in news])


def count(gateway, model, *where):
    with gateway.db.read() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def test_requests_that_arrive_together_are_stored_whole_in_one_transaction(
        gateway, actor, medicine_body, groups, gateway_redis):
    outcomes = submit_together(gateway, [new(actor,
                                                    body(medicine_body, n))
                                         for n in range(6)])
    assert all(isinstance(o, intake.Accepted) and not o.replayed for o in outcomes)
    assert ("together", 6) in groups
    ids = {o.record.id for o in outcomes}
    with gateway.db.read() as session:
        stored = session.scalars(select(ServiceRequest).where(ServiceRequest.id.in_(ids))).all()
        assert {(r.status, r.pending_job) for r in stored} == {("received", "dispatch")}
        assert {r.external_reference for r in stored} == {f"RX-GROUP-{n}" for n in range(6)}
        first_events = session.scalars(select(StatusEvent.request_id).where(
            StatusEvent.raw_status.is_(None))).all()
        assert sorted(first_events) == sorted(ids)
        links = session.scalars(select(AuditRecord.target).where(
            AuditRecord.action == "request.create")).all()
        assert sorted(links) == sorted(f"request:{i}" for i in ids)
        assert verify_chain(session).ok
    # the group's dispatches listed together once it committed
    assert set(gateway_redis.lrange(READY_KEY, 0, -1)) == {i.encode() for i in ids}


def test_a_refused_request_does_not_fail_the_others_of_its_group(
        gateway, actor, medicine_body, groups):
    first = intake.submit(gateway, new(actor,
                                              body(medicine_body, "a"), idempotency_key="k-1"))
    outcomes = submit_together(gateway, [
        new(actor, body(medicine_body, 1)),
        # the key of another request, with another body
        new(actor, body(medicine_body, 2), idempotency_key="k-1"),
        new(actor, body(medicine_body, 3)),
    ])
    assert ("together", 3) in groups
    assert isinstance(outcomes[0], intake.Accepted) and isinstance(outcomes[2], intake.Accepted)
    assert isinstance(outcomes[1], Conflict) and outcomes[1].code == "idempotency_key_reused"
    assert count(gateway, ServiceRequest) == 3
    assert first.record.id not in {outcomes[0].record.id, outcomes[2].record.id}


def test_the_same_key_twice_in_one_group_makes_one_request(
        gateway, actor, medicine_body, groups):
    same = new(actor, body(medicine_body, 7),
                      idempotency_key="twice")
    outcomes = submit_together(gateway, [same, same])
    assert ("together", 2) in groups
    assert {o.record.id for o in outcomes} == {outcomes[0].record.id}
    assert sorted(o.replayed for o in outcomes) == [False, True]
    assert count(gateway, ServiceRequest) == 1


def test_a_second_active_reference_in_one_group_is_refused_alone(
        gateway, actor, medicine_body, groups):
    outcomes = submit_together(gateway, [
        new(actor, body(medicine_body, 8)),
        new(actor, body(medicine_body, 8)),
        new(actor, body(medicine_body, 9)),
    ])
    refused = [o for o in outcomes if isinstance(o, Conflict)]
    assert [r.code for r in refused] == ["duplicate_reference"]
    assert refused[0].fields == {"prescription_id": [
        "An active request already has this value; cancel it first."]}
    assert count(gateway, ServiceRequest) == 2


def test_a_reference_active_in_the_database_rolls_the_group_back_and_each_runs_alone(
        gateway, actor, medicine_body, groups):
    """In a group the database's unique constraint, not a query, finds the reference: the
    group's transaction fails, and each request runs again in its own."""
    intake.submit(gateway, new(actor, body(medicine_body, 10)))
    outcomes = submit_together(gateway, [
        new(actor, body(medicine_body, 11)),
        new(actor, body(medicine_body, 10)),
        new(actor, body(medicine_body, 12)),
    ])
    assert ("alone", 3) in groups
    assert isinstance(outcomes[1], Conflict) and outcomes[1].code == "duplicate_reference"
    assert all(isinstance(outcomes[i], intake.Accepted) for i in (0, 2))
    assert count(gateway, ServiceRequest) == 3
    assert count(gateway, AuditRecord, AuditRecord.action == "request.create") == 3
    with gateway.db.read() as session:
        assert verify_chain(session).ok


def test_a_failing_store_fails_only_its_caller(gateway, actor, medicine_body, groups):
    """Anything but a clean refusal (here a store that breaks after writing) rolls the group
    back; the others are stored in transactions of their own."""
    def broken(session):
        session.add(ServiceRequest(id="half-written"))
        raise RuntimeError("a bug")

    outcomes = run_together(gateway, [
        lambda: gateway.writer.run(broken),
        lambda: intake.submit(gateway, new(actor, body(medicine_body, 13)))])
    results = {"broken": outcomes[0], "ok": outcomes[1]}
    assert isinstance(results["broken"], RuntimeError)
    assert isinstance(results["ok"], intake.Accepted)
    assert ("alone", 2) in groups
    assert count(gateway, ServiceRequest, ServiceRequest.id == "half-written") == 0
    assert count(gateway, ServiceRequest) == 1


def test_a_caller_is_answered_only_once_its_group_committed(gateway, actor, medicine_body):
    accepted = intake.submit(gateway, new(actor,
                                                 body(medicine_body, 14)))
    # another connection sees it at once: the answer came after the commit
    with gateway.db.engine.connect() as conn:
        assert conn.scalar(select(ServiceRequest.status).where(
            ServiceRequest.id == accepted.record.id)) == "received"


def test_a_failing_metric_neither_undoes_nor_repeats_a_commit(gateway, actor, medicine_body):
    def broken_metric(_outcome, _size):
        raise OSError("metrics directory gone")

    gateway.writer._observe = broken_metric
    outcomes = submit_together(gateway, [new(actor, body(medicine_body, n)) for n in (20, 21)])
    assert all(isinstance(o, intake.Accepted) for o in outcomes)
    assert count(gateway, ServiceRequest) == 2
