"""The queues page: what waits, runs and failed, and an admin's retry or discard of a job
that really failed (GO-SEND's simulator answering 503 to every booking)."""

from __future__ import annotations

import re

import pytest
from rq.registry import FailedJobRegistry
from sqlalchemy import select

from gateway.models import AuditRecord
from gateway.testing import drain, wait_for_status
from tests.conftest import bearer, new_key
from tests.console.conftest import sign_in
from tests.console.page import by_id, parse, untranslated

MEDICINE = "/api/v1/services/medicine_delivery/requests"


@pytest.fixture
def failed_dispatch(gosend_app, medicine_body):
    """An app whose one request's dispatch job failed for good; :return: (app, job id)."""
    # Patient with GO-SEND: the job's retries run out before repeated 503s fail over.
    app = gosend_app(dispatch={"temporary_tries_per_courier": 10})
    body = {**medicine_body, "notes_for_courier": "[sim:5xx]"}
    response = app.test_client().post(MEDICINE, json=body,
                                      headers=bearer(new_key(app, key_type="test")))
    request_id = response.get_json()["id"]
    wait_for_status(app, request_id, "failed")
    return app, f"dispatch-{request_id}"


def failed_ids(app) -> list[str]:
    gateway = app.extensions["gateway"]
    return FailedJobRegistry("dispatch", connection=gateway.redis).get_job_ids()


def audited(app, action) -> list[tuple[str, str, str]]:
    with app.extensions["gateway"].db.read() as session:
        return [tuple(row) for row in session.execute(
            select(AuditRecord.actor, AuditRecord.target, AuditRecord.outcome)
            .where(AuditRecord.action == action).order_by(AuditRecord.seq))]


def queue_row(page, name) -> dict[str, str]:
    cells = by_id(page, f"queue-{name}").all("td")
    return {cell.attrs["class"]: cell.text for cell in cells}


def test_a_failed_job_is_listed_with_the_last_line_of_its_error_and_no_traceback(
        failed_dispatch):
    app, job_id = failed_dispatch
    page = sign_in(app, "auditor").get("/console/queues")
    assert page.status_code == 200
    assert queue_row(page, "dispatch") == {"depth": "0", "oldest": "—", "started": "0",
                                           "scheduled": "0", "failed": "1"}
    assert queue_row(page, "default")["failed"] == "0"
    (row,) = by_id(page, "failed-jobs").rows()
    kind, queue, target, _failed_at, error = row
    assert (kind, queue) == ("dispatch", "dispatch")
    assert target == f"request {job_id.removeprefix('dispatch-')}"
    assert error == ("gateway.dispatch.DispatchRetry: gosend_sandbox: outcome unknown, "
                     "reconcile first")
    body = page.get_data(as_text=True)
    assert "Traceback" not in body and 'File "' not in body
    dashboard = sign_in(app, "auditor").get("/console/dashboard")
    assert by_id(dashboard, "queue-summary-dispatch").all("td")[2].text == "1"


@pytest.mark.parametrize("role", ["auditor", "operator"])
def test_only_admins_see_retry_and_discard_and_others_are_refused(failed_dispatch, role):
    app, job_id = failed_dispatch
    console = sign_in(app, role)
    page = console.get("/console/queues")
    row = by_id(page, f"failed-{job_id}")
    assert row.all("button") == [] and row.all("form") == []
    assert "Actions" not in [th.text for th in parse(page).find("failed-jobs").all("th")]
    for action in ("retry", "discard"):
        refused = console.post(f"/console/queues/dispatch/failed/{job_id}/{action}")
        assert refused.status_code == 403
    assert failed_ids(app) == [job_id]
    assert audited(app, "console.job_retry") == audited(app, "console.job_discard") == []


def test_an_admin_retries_a_failed_job_which_then_runs_and_the_retry_is_audited(
        failed_dispatch):
    app, job_id = failed_dispatch
    console = sign_in(app, "admin")
    page = console.get("/console/queues")
    buttons = [b.text for b in by_id(page, f"failed-{job_id}").all("button")]
    assert buttons == ["Retry", "Discard"]
    response = console.post(f"/console/queues/dispatch/failed/{job_id}/retry")
    assert response.status_code == 302
    page = console.get("/console/queues")
    assert f"Job {job_id} is back on its queue." in page.get_data(as_text=True)
    assert queue_row(page, "dispatch")["depth"] == "1"
    assert queue_row(page, "dispatch")["failed"] == "0"
    assert parse(page).find("failed-jobs") is None
    drain(app)  # the request already ended as failed: the job finds nothing left to do
    assert failed_ids(app) == []
    assert audited(app, "console.job_retry") == [(f"admin:{console.username}",
                                                  f"job:{job_id}", "ok")]


def test_an_admin_discards_a_failed_job_once_and_a_second_try_is_said_and_audited(
        failed_dispatch):
    app, job_id = failed_dispatch
    console = sign_in(app, "admin")
    console.get("/console/queues")
    assert console.post(f"/console/queues/dispatch/failed/{job_id}/discard").status_code == 302
    page = console.get("/console/queues")
    assert f"Job {job_id} was discarded." in page.get_data(as_text=True)
    assert by_id(page, "no-failed-jobs").text == "No failed jobs."
    assert failed_ids(app) == []
    assert app.extensions["gateway"].redis.exists(f"rq:job:{job_id}") == 0

    console.post(f"/console/queues/dispatch/failed/{job_id}/retry")
    page = console.get("/console/queues")
    assert f"Job {job_id} is no longer a failed job" in page.get_data(as_text=True)
    actor = f"admin:{console.username}"
    assert audited(app, "console.job_discard") == [(actor, f"job:{job_id}", "ok")]
    assert audited(app, "console.job_retry") == [(actor, f"job:{job_id}", "gone")]


def test_an_unknown_queue_is_not_found(app):
    console = sign_in(app, "admin")
    console.get("/console/queues")
    assert console.post("/console/queues/nope/failed/dispatch-x/retry").status_code == 404


def test_the_page_shows_waiting_work_per_queue(app, medicine_body):
    key = new_key(app, key_type="test")
    for n in range(2):
        app.test_client().post(MEDICINE, json={**medicine_body, "prescription_id": f"RX-Q{n}"},
                               headers=bearer(key))
    page = sign_in(app, "operator").get("/console/queues")
    # one batch job waits for both requests, and the page says so
    assert queue_row(page, "dispatch")["depth"] == "1 + 2 listed for a batch"
    assert queue_row(page, "default")["depth"] == "0"
    assert by_id(page, "no-failed-jobs").text == "No failed jobs."


def test_the_queues_page_speaks_indonesian(failed_dispatch):
    app, job_id = failed_dispatch
    console = sign_in(app, "admin")
    console.post("/console/language", {"language": "id", "next": "/console/queues"})
    page = console.get("/console/queues")
    assert [b.text for b in by_id(page, f"failed-{job_id}").all("button")] == \
        ["Coba lagi", "Buang"]
    assert untranslated(page) == []


def test_a_queue_falling_behind_is_shown_with_the_age_of_its_oldest_job(make_app):
    """A job no worker has taken for longer than ``jobs.max_queue_age_seconds``: the queues
    page and the dashboard warn, in the reader's language, and say how long it has waited."""
    import time

    from gateway.queues import enqueue_job

    app = make_app(jobs={"intervals": [0], "job_timeout": 30, "max_queue_age_seconds": 1})
    page = sign_in(app, "auditor").get("/console/queues")
    assert parse(page).find("queues-lagging") is None
    with app.app_context():
        enqueue_job(app.extensions["gateway"], "poll", "a-request-nobody-polls-yet")
    time.sleep(2.1)

    page = sign_in(app, "auditor").get("/console/queues")
    # two seconds or a little more, as a busy machine took to draw the page
    waited = re.search(r"polls queue has waited (\d+) s \(more than 1 s\)",
                       by_id(page, "queues-lagging").text)
    assert waited and 2 <= int(waited.group(1)) <= 10
    row = by_id(page, "queue-polls").all("td")
    assert [c.text for c in row if c.attrs["class"] == "oldest lagging"] == [
        f"{waited.group(1)} s"]
    assert queue_row(page, "dispatch")["oldest"] == "—"
    dashboard = sign_in(app, "auditor").get("/console/dashboard")
    assert "Falling behind" in by_id(dashboard, "dashboard-queues-lagging").text

    indonesian = sign_in(app, "auditor")
    indonesian.post("/console/language", {"language": "id", "next": "/console/queues"})
    page = indonesian.get("/console/queues")
    assert "Tertinggal" in by_id(page, "queues-lagging").text
    assert untranslated(page) == []
    drain(app)
    page = sign_in(app, "auditor").get("/console/queues")
    assert parse(page).find("queues-lagging") is None
