"""Jobs, run by a real rq worker on a real Redis: dispatch, retries, give-up, the sweep."""

from __future__ import annotations

from rq import Queue
from rq.registry import FailedJobRegistry
from sqlalchemy import select

from gateway.couriers import CourierRejected, CourierTemporaryError, NoDriverAvailable
from gateway.models import AuditRecord, ServiceRequest
from gateway.sweep import sweep_once
from gateway.testing import drain, free_port
from tests.conftest import SERVICE_PLUGINS, bearer, new_key
from tests.fixture_plugins.scripted_courier import scripted_courier

CREATE = "/api/v1/services/medicine_delivery/requests"
LIVE_KEY = "bGl2ZS1tb2RlLXRlc3Qta2V5LW5vdC1hLXNlY3JldCE="  # a Fernet key for tests only


def submit(app, key, body) -> str:
    response = app.test_client().post(CREATE, json=body, headers=bearer(key))
    assert response.status_code == 202, response.get_json()
    return response.get_json()["id"]


def read(app, request_id) -> ServiceRequest:
    with app.extensions["gateway"].db.read() as session:
        record = session.get(ServiceRequest, request_id)
        record.events  # noqa: B018 - load the timeline before the session closes
        return record


def statuses(record) -> list[str]:
    return [e.status for e in record.events]


def test_a_request_is_booked_with_the_first_courier_that_takes_it(make_app, medicine_body):
    plugin, courier = scripted_courier("fleet")
    app = make_app(plugins=[*SERVICE_PLUGINS, plugin])
    request_id = submit(app, new_key(app, key_type="test"), medicine_body)
    drain(app)
    record = read(app, request_id)
    assert statuses(record) == ["received", "dispatching", "booked"]
    assert record.provider == "fleet"
    assert record.provider_reference == courier.booked[0][1]
    assert record.pending_job is None


def test_the_courier_gets_the_neutral_order_without_nik_or_drug_names(make_app, medicine_body):
    plugin, courier = scripted_courier("fleet")
    app = make_app(plugins=[*SERVICE_PLUGINS, plugin])
    submit(app, new_key(app, key_type="test"), medicine_body)
    drain(app)
    order, _ref = courier.booked[0]
    flat = repr(order)
    assert "3510011203650002" not in flat
    assert "Amlodipine" not in flat
    assert order.dropoffs[0].contact.name == "Siti Aminah"
    assert order.dropoffs[0].contact.phone == "+6281234567890"


def test_a_test_key_never_reaches_a_live_courier(make_app, medicine_body):
    live, live_cls = scripted_courier("live_one", sandbox=False)
    app = make_app(plugins=[*SERVICE_PLUGINS, live], mode="live", secret_key=LIVE_KEY)
    request_id = submit(app, new_key(app, key_type="test"), medicine_body)
    drain(app)
    assert live_cls.booked == []
    assert read(app, request_id).failure_code == "no_courier_available"


def test_live_couriers_are_used_only_in_live_mode(make_app, medicine_body):
    live, live_cls = scripted_courier("live_one", sandbox=False)
    sandboxed = make_app(plugins=[*SERVICE_PLUGINS, live])
    submit(sandboxed, new_key(sandboxed, key_type="live"), medicine_body)
    drain(sandboxed)
    assert live_cls.booked == []


def test_no_driver_fails_over_to_the_next_courier(make_app, medicine_body):
    first, first_cls = scripted_courier("first", outcomes=[NoDriverAvailable("none")])
    second, second_cls = scripted_courier("second")
    app = make_app(plugins=[*SERVICE_PLUGINS, first, second],
                   services={"medicine_delivery": {"couriers": ["first", "second"]}})
    request_id = submit(app, new_key(app, key_type="test"), medicine_body)
    drain(app)
    record = read(app, request_id)
    assert record.provider == "second"
    assert first_cls.booked == [] and len(second_cls.booked) == 1
    with app.extensions["gateway"].db.read() as session:
        outcomes = session.scalars(select(AuditRecord.outcome)
                                   .where(AuditRecord.action == "courier.book")).all()
    assert outcomes == ["no_driver", "booked"]
    assert any("first: no driver" in (e.detail or "") for e in record.events)


def test_when_every_courier_refuses_the_request_ends_with_the_reason(make_app, medicine_body):
    only, _cls = scripted_courier("only", outcomes=[CourierRejected("too far")])
    app = make_app(plugins=[*SERVICE_PLUGINS, only])
    request_id = submit(app, new_key(app, key_type="test"), medicine_body)
    drain(app)
    record = read(app, request_id)
    assert (record.status, record.failure_code) == ("failed", "rejected")
    assert record.pending_job is None


def test_cold_chain_goes_only_to_couriers_that_declare_it(make_app, medicine_body):
    plain, plain_cls = scripted_courier("plain")
    cold, cold_cls = scripted_courier("cold", supports=("delivery", "cold_chain"))
    app = make_app(plugins=[*SERVICE_PLUGINS, plain, cold],
                   services={"medicine_delivery": {"couriers": ["plain", "cold"]}})
    medicine_body["cold_chain"] = True
    submit(app, new_key(app, key_type="test"), medicine_body)
    drain(app)
    assert plain_cls.booked == [] and len(cold_cls.booked) == 1


def test_a_temporary_error_is_retried_by_the_worker(make_app, medicine_body):
    flaky, flaky_cls = scripted_courier("flaky", outcomes=[CourierTemporaryError("502")])
    app = make_app(plugins=[*SERVICE_PLUGINS, flaky])
    request_id = submit(app, new_key(app, key_type="test"), medicine_body)
    drain(app)
    record = read(app, request_id)
    assert record.status == "booked"
    assert len(flaky_cls.booked) == 1


def test_a_job_that_keeps_failing_marks_its_request_failed_and_stays_inspectable(
        make_app, medicine_body, gateway_redis):
    errors = [CourierTemporaryError("502") for _ in range(5)]
    broken, _cls = scripted_courier("broken", outcomes=errors)
    app = make_app(plugins=[*SERVICE_PLUGINS, broken], jobs={"intervals": [0, 0]},
                   dispatch={"temporary_tries_per_courier": 10})
    request_id = submit(app, new_key(app, key_type="test"), medicine_body)
    drain(app)
    record = read(app, request_id)
    assert (record.status, record.failure_code) == ("failed", "dispatch_error")
    assert record.pending_job is None
    failed = FailedJobRegistry("dispatch", connection=gateway_redis)
    assert failed.get_job_ids() == [f"dispatch-{request_id}"]


def test_a_request_survives_redis_being_down_at_intake_and_the_sweep_enqueues_it(
        make_app, medicine_body, gateway_redis_url, gateway_redis):
    plugin, courier = scripted_courier("fleet")
    down = make_app(plugins=[*SERVICE_PLUGINS, plugin],
                    redis_url=f"redis://127.0.0.1:{free_port()}/0")
    key = new_key(down, key_type="test")
    request_id = submit(down, key, medicine_body)
    assert read(down, request_id).pending_job == "dispatch"

    # Stale only after a minute, so a slow machine building this second app cannot make the
    # fresh request look stale before the first sweep; the backdating below makes it stale.
    up = make_app(plugins=[*SERVICE_PLUGINS, plugin], sweep={"stale_after_seconds": 60,
                                                             "interval_seconds": 1})
    assert sweep_once(up.extensions["gateway"]) == 0  # not stale yet: the queue may have it
    with up.extensions["gateway"].db.write() as session:
        record = session.get(ServiceRequest, request_id)
        record.pending_since = record.pending_since.replace(year=2020)
    assert sweep_once(up.extensions["gateway"]) == 1
    assert sweep_once(up.extensions["gateway"]) == 0  # the job exists now: no double
    drain(up)
    assert read(up, request_id).status == "booked"
    assert len(courier.booked) == 1


def test_the_sweep_requeues_work_that_redis_lost(make_app, medicine_body, gateway_redis):
    plugin, courier = scripted_courier("fleet")
    app = make_app(plugins=[*SERVICE_PLUGINS, plugin])
    request_id = submit(app, new_key(app, key_type="test"), medicine_body)
    gateway_redis.flushdb()  # Redis restarted without persistence
    assert Queue("dispatch", connection=gateway_redis).count == 0
    gateway = app.extensions["gateway"]
    with gateway.db.write() as session:
        record = session.get(ServiceRequest, request_id)
        record.pending_since = record.pending_since.replace(year=2020)
    assert sweep_once(gateway) == 1
    drain(app)
    assert read(app, request_id).status == "booked"
    assert len(courier.booked) == 1


def test_running_a_dispatch_job_twice_books_once(make_app, medicine_body):
    plugin, courier = scripted_courier("fleet")
    app = make_app(plugins=[*SERVICE_PLUGINS, plugin])
    request_id = submit(app, new_key(app, key_type="test"), medicine_body)
    drain(app)
    from gateway.jobs import dispatch_request

    with app.app_context():
        assert dispatch_request(request_id) == "nothing to do"
    assert len(courier.booked) == 1


def test_a_request_cancelled_while_booking_is_cancelled_at_the_courier(make_app, medicine_body):
    plugin, courier = scripted_courier("fleet")
    app = make_app(plugins=[*SERVICE_PLUGINS, plugin])
    key = new_key(app, key_type="test")
    request_id = submit(app, key, medicine_body)

    original_book = courier._book

    def book_then_agency_cancels(self, order, reference):
        booking = original_book(self, order, reference)
        app.test_client().post(f"/api/v1/requests/{request_id}/cancel", headers=bearer(key))
        return booking

    courier._book = book_then_agency_cancels
    drain(app)
    record = read(app, request_id)
    assert record.status == "cancelled"
    assert courier.cancelled == [courier.booked[0][1]]


def test_cancelling_a_booked_request_asks_the_courier(make_app, medicine_body):
    plugin, courier = scripted_courier("fleet")
    app = make_app(plugins=[*SERVICE_PLUGINS, plugin])
    key = new_key(app, key_type="test")
    request_id = submit(app, key, medicine_body)
    drain(app)
    response = app.test_client().post(f"/api/v1/requests/{request_id}/cancel",
                                      headers=bearer(key))
    assert response.status_code == 202
    drain(app)
    record = read(app, request_id)
    assert record.status == "cancelled"
    assert courier.cancelled == [record.provider_reference]


def test_every_job_outcome_is_audited_with_the_requests_correlation_id(make_app, medicine_body):
    # The first try is a batch's (gateway.batch); its own job then retries, and books.
    flaky, _cls = scripted_courier("flaky", outcomes=[CourierTemporaryError("502")] * 2)
    app = make_app(plugins=[*SERVICE_PLUGINS, flaky])
    response = app.test_client().post(CREATE, json=medicine_body,
                                      headers={**bearer(new_key(app, key_type="test")),
                                               "X-Correlation-ID": "pharmacy-trace-42"})
    request_id = response.get_json()["id"]
    drain(app)
    with app.extensions["gateway"].db.read() as session:
        rows = session.execute(select(AuditRecord.outcome, AuditRecord.correlation_id)
                               .where(AuditRecord.action == "job.dispatch",
                                      AuditRecord.target == f"request:{request_id}")
                               .order_by(AuditRecord.seq)).all()
        tries = session.execute(select(AuditRecord.outcome, AuditRecord.correlation_id)
                                .where(AuditRecord.action == "courier.book",
                                       AuditRecord.target == f"request:{request_id}")
                                .order_by(AuditRecord.seq)).all()
    assert rows == [("retry", "pharmacy-trace-42"), ("booked", "pharmacy-trace-42")]
    assert tries == [("temporary", "pharmacy-trace-42"), ("temporary", "pharmacy-trace-42"),
                     ("booked", "pharmacy-trace-42")]


def test_repeated_temporary_errors_fail_over_to_the_next_courier(make_app, medicine_body):
    errors = [CourierTemporaryError("503"), CourierTemporaryError("503")]
    flaky, flaky_cls = scripted_courier("flaky", outcomes=errors)
    steady, steady_cls = scripted_courier("steady")
    app = make_app(plugins=[*SERVICE_PLUGINS, flaky, steady],
                   services={"medicine_delivery": {"couriers": ["flaky", "steady"]}},
                   dispatch={"temporary_tries_per_courier": 2})
    request_id = submit(app, new_key(app, key_type="test"), medicine_body)
    drain(app)
    assert read(app, request_id).provider == "steady"
    assert flaky_cls.booked == [] and len(steady_cls.booked) == 1


def test_a_timeout_after_the_provider_committed_is_reconciled_not_booked_again(
        make_app, medicine_body):
    plugin, courier = scripted_courier("gosendish", outcomes=["book_then_fail"])
    app = make_app(plugins=[*SERVICE_PLUGINS, plugin])
    request_id = submit(app, new_key(app, key_type="test"), medicine_body)
    drain(app)
    record = read(app, request_id)
    assert record.status == "booked"
    assert len(courier.booked) == 1
    assert courier.lookups == [f"{request_id}-1"]
    assert record.provider_reference == courier.booked[0][1]


def test_an_unknown_outcome_with_no_booking_behind_it_books_once_under_a_new_reference(
        make_app, medicine_body):
    from gateway.couriers import CourierOutcomeUnknown

    plugin, courier = scripted_courier("lossy", outcomes=[CourierOutcomeUnknown("reset")])
    app = make_app(plugins=[*SERVICE_PLUGINS, plugin])
    request_id = submit(app, new_key(app, key_type="test"), medicine_body)
    drain(app)
    assert read(app, request_id).status == "booked"
    assert courier.lookups == [f"{request_id}-1"]
    assert len(courier.booked) == 1
    assert list(courier.held) == [f"{request_id}-2"]


def test_a_failing_courier_opens_its_circuit_and_traffic_returns_after_cooldown(
        make_app, medicine_body):
    import time

    errors = [CourierTemporaryError("502") for _ in range(2)]
    sick, sick_cls = scripted_courier("sick", outcomes=errors)
    backup, backup_cls = scripted_courier("backup")
    app = make_app(plugins=[*SERVICE_PLUGINS, sick, backup],
                   services={"medicine_delivery": {"couriers": ["sick", "backup"]}},
                   couriers={"sick": {"circuit": {"failure_threshold": 2, "cooldown_seconds": 3,
                                                  "window_seconds": 30}}},
                   dispatch={"temporary_tries_per_courier": 1})
    gateway = app.extensions["gateway"]
    key = new_key(app, key_type="test")
    for n in range(2):
        medicine_body["prescription_id"] = f"RX-{n}"
        submit(app, key, medicine_body)
        drain(app)
    assert gateway.circuits.state("sick") == "open"
    medicine_body["prescription_id"] = "RX-while-open"
    while_open = submit(app, key, medicine_body)
    drain(app)
    assert read(app, while_open).provider == "backup"
    with gateway.db.read() as session:
        tried = session.scalars(select(AuditRecord.details).where(
            AuditRecord.action == "courier.attempt",
            AuditRecord.target == f"request:{while_open}")).all()
    assert [d["courier"] for d in tried] == ["backup"]

    time.sleep(3.2)
    assert gateway.circuits.state("sick") == "half_open"
    medicine_body["prescription_id"] = "RX-recovered"
    recovered = submit(app, key, medicine_body)
    drain(app)
    assert read(app, recovered).provider == "sick"
    assert gateway.circuits.state("sick") == "closed"
    assert len(sick_cls.booked) == 1 and len(backup_cls.booked) == 3


def test_cancelling_while_a_booking_answer_is_unknown_releases_that_booking(
        make_app, medicine_body):
    plugin, courier = scripted_courier("lossy", outcomes=["book_then_fail"])
    app = make_app(plugins=[*SERVICE_PLUGINS, plugin],
                   jobs={"intervals": [60]})  # the retry would come much later
    key = new_key(app, key_type="test")
    request_id = submit(app, key, medicine_body)
    drain(app)  # booked at the courier, but our answer was lost: the attempt is unknown
    assert read(app, request_id).status == "dispatching"
    response = app.test_client().post(f"/api/v1/requests/{request_id}/cancel",
                                      headers=bearer(key))
    assert (response.status_code, response.get_json()["status"]) == (200, "cancelled")
    drain(app)
    assert courier.cancelled == [courier.booked[0][1]]
    assert read(app, request_id).pending_job is None


def test_a_parcel_over_a_couriers_limit_is_routed_elsewhere_with_the_reason(
        make_app):
    small, small_cls = scripted_courier("small", supports=("delivery", "cash_on_delivery"))
    big, big_cls = scripted_courier("big", supports=("delivery", "cash_on_delivery"))
    app = make_app(plugins=[*SERVICE_PLUGINS, small, big],
                   services={"umkm_pickup": {"couriers": ["small", "big"]}},
                   couriers={"small": {"limits": {"max_weight_grams": 5000, "max_side_cm": 40}}})
    body = app.extensions["gateway"].services["umkm_pickup"].example_request
    body = {**body, "parcel": {**body["parcel"], "weight_grams": 12000}}
    key = new_key(app, services=["umkm_pickup"], key_type="test")
    response = app.test_client().post("/api/v1/services/umkm_pickup/requests", json=body,
                                      headers=bearer(key))
    request_id = response.get_json()["id"]
    drain(app)
    record = read(app, request_id)
    assert record.provider == "big"
    assert small_cls.booked == [] and len(big_cls.booked) == 1
    assert "skipped small: parcel over 5000 g" in [e.detail for e in record.events]


def test_without_a_lookup_an_unknown_booking_is_released_by_our_reference_then_rebooked(
        make_app, medicine_body):
    plugin, courier = scripted_courier("grabish", outcomes=["book_then_fail"],
                                       can_look_up=False, can_release=True)
    app = make_app(plugins=[*SERVICE_PLUGINS, plugin])
    request_id = submit(app, new_key(app, key_type="test"), medicine_body)
    drain(app)
    record = read(app, request_id)
    assert record.status == "booked"
    first, second = courier.booked
    assert courier.released == [(f"{request_id}-1", first[1])]
    assert list(courier.held) == [f"{request_id}-2"]
    assert record.provider_reference == second[1]


def test_with_neither_lookup_nor_release_the_courier_is_abandoned_after_patience(
        make_app, medicine_body):
    blind, blind_cls = scripted_courier("blind", outcomes=["book_then_fail"],
                                        can_look_up=False)
    other, other_cls = scripted_courier("other")
    app = make_app(plugins=[*SERVICE_PLUGINS, blind, other],
                   services={"medicine_delivery": {"couriers": ["blind", "other"]}},
                   dispatch={"reconcile_patience_seconds": 0})
    request_id = submit(app, new_key(app, key_type="test"), medicine_body)
    drain(app)
    record = read(app, request_id)
    assert record.provider == "other"
    assert len(blind_cls.booked) == 1 and len(other_cls.booked) == 1
    assert any("no way to look it up" in (e.detail or "") for e in record.events)


def work_with_scheduler(app) -> None:
    """Like ``drain``, with rq's scheduler moving the jobs whose time has come first."""
    from redis import Redis
    from rq import Queue as RqQueue

    from gateway.queues import QueueNames
    from gateway.testing import ThreadSafeWorker

    with app.app_context():
        connection = Redis.from_url(app.extensions["gateway"].redis_url)
        queues = [RqQueue(name, connection=connection) for name in QueueNames.all()]
        ThreadSafeWorker(queues, connection=connection).work(
            burst=True, with_scheduler=True, logging_level="WARNING")
        connection.close()


def test_a_dispatch_waiting_for_an_open_circuit_spends_no_retry_and_books_after_cooldown(
        make_app, medicine_body, gateway_redis):
    """With no retry at all, a dispatch that meets an open circuit is deferred again and
    again (here three times) without failing, then books once the circuit half-opens."""
    import time

    from gateway.couriers import CourierAuthError

    sick, sick_cls = scripted_courier("sick", outcomes=[CourierAuthError("401")])
    app = make_app(plugins=[*SERVICE_PLUGINS, sick],
                   services={"medicine_delivery": {"couriers": ["sick"]}},
                   # a cool-down the steps below cannot outlive on a busy machine
                   couriers={"sick": {"circuit": {"cooldown_seconds": 12}}},
                   jobs={"intervals": [], "job_timeout": 30},
                   sweep={"stale_after_seconds": 1})
    gateway = app.extensions["gateway"]
    key = new_key(app, key_type="test")
    medicine_body["prescription_id"] = "RX-opens"
    opener = submit(app, key, medicine_body)
    drain(app)
    assert read(app, opener).status == "failed"      # credentials refused: circuit open
    assert gateway.circuits.state("sick") == "open"

    medicine_body["prescription_id"] = "RX-waits"
    waiting = submit(app, key, medicine_body)
    drain(app)
    for _ in range(2):                               # the sweep finds it owed: it waits again
        time.sleep(1.1)
        sweep_once(gateway)
        drain(app)
    assert gateway.circuits.state("sick") == "open"
    assert read(app, waiting).status == "dispatching"
    with gateway.db.read() as session:
        waits = session.scalars(select(AuditRecord.outcome).where(
            AuditRecord.action == "job.dispatch",
            AuditRecord.target == f"request:{waiting}")).all()
    assert waits == ["waiting for circuit"] * 3
    assert FailedJobRegistry("dispatch", connection=gateway_redis).get_job_ids() == []

    deadline = time.monotonic() + 25
    while read(app, waiting).status != "booked" and time.monotonic() < deadline:
        time.sleep(0.3)
        work_with_scheduler(app)                      # the wake-up job, then the dispatch
    assert read(app, waiting).status == "booked"
    assert gateway.circuits.state("sick") == "closed"
    assert len(sick_cls.booked) == 1
    assert FailedJobRegistry("dispatch", connection=gateway_redis).get_job_ids() == []
