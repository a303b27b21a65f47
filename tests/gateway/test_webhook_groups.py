"""Webhooks stored in groups, like new requests: the provider reports (and new requests) that
arrive together are stored in one transaction, each provider answered 200 only once it has
committed, each report listed for a report job after that commit; a duplicate is answered as
one and stored once; one bad webhook never fails its neighbours; the database away is 503 and
stores nothing.

The writer is held as in ``test_group_commit`` (the webhooks posted meanwhile wait, and the
writer takes them all as its next group). The reports are GO-SEND's webhook bodies as its
documentation describes them (``entity_id``, ``status``, ``event_id``, ``event_date``; the
``X-Callback-Token`` header we registered), as ``test_webhook_abuse`` posts them.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gateway import intake, tracking
from gateway.db import DatabaseUnavailable
from gateway.models import ProviderEventRecord, ServiceRequest
from gateway.pytest_plugin import GOSEND_TEST_CREDENTIALS
from gateway.tracking import REPORTS
from tests.gateway.test_group_commit import (  # noqa: F401 - fixtures
    actor,
    body,
    count,
    groups,
    new,
    run_together,
)
from tests.gateway.test_invariants import assert_error_shape

URL = "/webhooks/gosend_sandbox"
TOKEN = {"X-Callback-Token": GOSEND_TEST_CREDENTIALS["webhook_token"]}


@pytest.fixture
def app(make_app):
    """An app whose GO-SEND entry takes webhooks (its provider is never called here)."""
    return make_app(couriers={"gosend_sandbox": {"base_url": "http://127.0.0.1:9",
                                                 **GOSEND_TEST_CREDENTIALS}})


def report(event_id: str, order_no: str = "GK-1", status: str = "picked") -> dict:
    return {"entity_id": order_no, "status": status, "event_id": event_id,
            "event_date": 1700000000000}


def stored_keys(gateway) -> list[str]:
    with gateway.db.read() as session:
        return sorted(session.scalars(select(ProviderEventRecord.event_key)))


def listed(gateway, gateway_redis) -> list[int]:
    """The report ids listed for a report job, in order."""
    return [int(i) for i in gateway_redis.lrange(REPORTS.key, 0, -1)]


def post_together(app, reports, held=None, also=()):
    """Post ``reports`` as GO-SEND would, each from a thread of its own, as one group (with
    ``also``: more works of the same group). :return: per report ``(status, body, stored
    when answered)``: whether another connection found the report the moment its answer
    came, then what each of ``also`` returned"""
    gateway = app.extensions["gateway"]

    def post(sent):
        answer = app.test_client().post(URL, json=sent, headers=TOKEN)
        with gateway.db.engine.connect() as conn:
            stored = conn.scalar(select(ProviderEventRecord.id).where(
                ProviderEventRecord.event_key == sent["event_id"])) is not None
        return answer.status_code, answer.get_json(), stored, answer

    return run_together(gateway, [lambda sent=sent: post(sent) for sent in reports]
                        + list(also), held=held)


def test_webhooks_and_requests_that_arrive_together_share_one_transaction(
        app, gateway, actor, medicine_body, groups, gateway_redis):  # noqa: F811
    outcomes = post_together(app, [report(f"evt-{n}", f"GK-{n}") for n in range(5)],
                             also=[lambda: intake.submit(gateway, new(actor,
                                                                      body(medicine_body, 1)))])
    answers, created = outcomes[:5], outcomes[5]
    assert ("together", 6) in groups
    # each answered 200 only once its report was committed (another connection sees it)
    assert [(status, got, stored) for status, got, stored, _ in answers] == \
        [(200, {"received": 1, "duplicates": 0}, True)] * 5
    assert isinstance(created, intake.Accepted) and count(gateway, ServiceRequest) == 1
    assert stored_keys(gateway) == [f"evt-{n}" for n in range(5)]
    # listed for a report job once committed, together, oldest first
    with gateway.db.read() as session:
        ids = sorted(session.scalars(select(ProviderEventRecord.id)))
    assert listed(gateway, gateway_redis) == ids


def test_a_duplicate_in_the_group_and_one_from_an_earlier_group_are_stored_once(
        app, gateway, groups, gateway_redis):  # noqa: F811
    client = app.test_client()
    first = client.post(URL, json=report("evt-old"), headers=TOKEN)
    assert first.get_json() == {"received": 1, "duplicates": 0}

    answers = post_together(app, [report("evt-new"), report("evt-new"), report("evt-old"),
                                  report("evt-other", "GK-2")])
    # one query per webhook and the group's own keys: no rollback, no second pass
    assert ("together", 4) in groups and not [g for g in groups if g[0] == "alone"]
    got = [a[1] for a in answers]
    assert sorted(got[:2], key=lambda g: g["received"]) == [
        {"received": 0, "duplicates": 1}, {"received": 1, "duplicates": 0}]
    assert got[2:] == [{"received": 0, "duplicates": 1}, {"received": 1, "duplicates": 0}]
    assert stored_keys(gateway) == ["evt-new", "evt-old", "evt-other"]
    ids = listed(gateway, gateway_redis)
    assert len(ids) == len(set(ids)) == 3
    # the provider's retry of any of them later: a duplicate again, nothing more stored
    again = client.post(URL, json=report("evt-new"), headers=TOKEN)
    assert again.get_json() == {"received": 0, "duplicates": 1}
    assert len(stored_keys(gateway)) == 3


def test_a_webhook_whose_store_fails_does_not_fail_its_neighbours(
        app, gateway, groups, gateway_redis, monkeypatch):  # noqa: F811
    """A store that breaks after adding its row (here a bug on one report) rolls its group
    back; the others are stored again, each in its own transaction, and listed once."""
    queue_report = tracking.queue_report

    def broken(gw, session, row):
        if row.event_key == "evt-bad":
            raise RuntimeError("a bug")
        queue_report(gw, session, row)

    monkeypatch.setattr(tracking, "queue_report", broken)
    answers = post_together(app, [report("evt-a"), report("evt-bad", "GK-2"),
                                  report("evt-c", "GK-3")])
    assert ("alone", 3) in groups
    assert [(a[0], a[1]) for a in (answers[0], answers[2])] == \
        [(200, {"received": 1, "duplicates": 0})] * 2
    assert answers[1][0] == 500
    assert_error_shape(answers[1][3], 500)
    assert stored_keys(gateway) == ["evt-a", "evt-c"]
    with gateway.db.read() as session:
        ids = sorted(session.scalars(select(ProviderEventRecord.id)))
    assert sorted(listed(gateway, gateway_redis)) == ids


def test_the_database_away_answers_each_webhook_of_the_group_503_and_stores_nothing(
        app, gateway, groups, gateway_redis):  # noqa: F811
    write = gateway.writer._write

    def away():
        raise DatabaseUnavailable("the database is away")

    def database_goes_away():
        gateway.writer._write = away

    answers = post_together(app, [report(f"evt-{n}", f"GK-{n}") for n in range(3)],
                            held=database_goes_away)
    gateway.writer._write = write
    assert ("failed", 3) in groups
    for status, got, stored, answer in answers:
        assert (status, got["code"], stored) == (503, "service_unavailable", False)
        assert_error_shape(answer, 503)
        assert answer.headers["Retry-After"]
    assert stored_keys(gateway) == [] and listed(gateway, gateway_redis) == []
    # the provider sends them again once it is back: stored, as new
    client = app.test_client()
    for n in range(3):
        again = client.post(URL, json=report(f"evt-{n}", f"GK-{n}"), headers=TOKEN)
        assert again.get_json() == {"received": 1, "duplicates": 0}
    assert len(listed(gateway, gateway_redis)) == 3


def test_a_report_stored_from_a_poll_still_finds_a_webhook_s_duplicate(app, gateway):
    """The poll path stores in a transaction of its own with the same store."""
    client = app.test_client()
    client.post(URL, json=report("evt-1"), headers=TOKEN)
    events = gateway.couriers["gosend_sandbox"].parse_webhook(
        TOKEN, b'{"entity_id": "GK-1", "status": "picked", "event_id": "evt-1"}')
    assert tracking.store_events(gateway, "gosend_sandbox", events, source="poll") == ([], 1)
    fresh = gateway.couriers["gosend_sandbox"].parse_webhook(
        TOKEN, b'{"entity_id": "GK-1", "status": "delivered", "event_id": "evt-2"}')
    new_ids, duplicates = tracking.store_events(gateway, "gosend_sandbox", fresh,
                                                source="poll")
    assert len(new_ids) == 1 and duplicates == 0
    assert stored_keys(gateway) == ["evt-1", "evt-2"]
