"""A job rq still calls live but that will never run (its worker killed) is enqueued again;
one that will run is left alone. Read through rq's public API (``gateway.queues``)."""

from __future__ import annotations

from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus

from gateway.queues import enqueue_job, job_id


def stored_job(gateway, target: str) -> Job:
    return Job.fetch(job_id("dispatch", target), connection=gateway.redis)


def test_a_job_waiting_in_its_queue_is_not_enqueued_twice(gateway):
    assert enqueue_job(gateway, "dispatch", "req-1")
    assert not enqueue_job(gateway, "dispatch", "req-1")
    assert Queue("dispatch", connection=gateway.redis).count == 1


def test_a_queued_job_no_queue_holds_is_enqueued_again(gateway):
    """A worker killed between taking a job off its queue and marking it started."""
    assert enqueue_job(gateway, "dispatch", "req-2")
    queue = Queue("dispatch", connection=gateway.redis)
    queue.remove(stored_job(gateway, "req-2"))
    assert enqueue_job(gateway, "dispatch", "req-2")
    assert queue.job_ids == [job_id("dispatch", "req-2")]


def started_by_a_worker(gateway, target: str) -> tuple[Queue, SimpleWorker]:
    """A dispatch job a registered worker took off its queue and started."""
    queue = Queue("dispatch", connection=gateway.redis)
    assert enqueue_job(gateway, "dispatch", target)
    queue.remove(stored_job(gateway, target))
    worker = SimpleWorker([queue], connection=gateway.redis)
    worker.register_birth()
    job = stored_job(gateway, target)
    job.worker_name = worker.name
    job.set_status(JobStatus.STARTED)
    job.save()
    return queue, worker


def test_a_started_job_is_enqueued_again_only_when_its_worker_is_gone(gateway):
    queue, worker = started_by_a_worker(gateway, "req-3")
    assert not enqueue_job(gateway, "dispatch", "req-3"), "its worker is alive: it will finish"

    worker.register_death()
    gateway.redis.delete(worker.key)   # what a killed worker leaves: its heartbeat expired
    assert enqueue_job(gateway, "dispatch", "req-3")
    assert queue.job_ids == [job_id("dispatch", "req-3")]


def test_a_started_job_of_a_worker_that_stopped_saying_it_is_alive_is_enqueued_again(gateway):
    """A killed ``gateway worker``: rq keeps a busy worker registered for its job's
    monitoring interval plus a minute, but the worker's own proof of life lapses within
    seconds (``gateway.worker.saying_alive``), and that is what counts."""
    from gateway.queues import LIFE_SECONDS, say_alive
    from gateway.worker import saying_alive

    queue, worker = started_by_a_worker(gateway, "req-4")
    with saying_alive(gateway.redis, worker.name):
        assert not enqueue_job(gateway, "dispatch", "req-4"), "alive: it will finish"
    assert 0 < LIFE_SECONDS <= 10
    say_alive(gateway.redis, worker.name)
    assert not enqueue_job(gateway, "dispatch", "req-4")
    gateway.redis.delete(f"gateway:worker-alive:{worker.name}")   # its proof of life lapsed
    assert gateway.redis.exists(worker.key), "rq still has it registered"
    assert enqueue_job(gateway, "dispatch", "req-4")
    assert queue.job_ids == [job_id("dispatch", "req-4")]


def a_worker_that_was_killed(gateway, name: str) -> None:
    """What a killed ``gateway worker`` leaves: it said it was alive, and stopped."""
    from gateway.queues import _life_keys, say_alive

    say_alive(gateway.redis, name)
    gateway.redis.delete(_life_keys(name)[0])


def test_a_request_lock_held_by_a_killed_worker_is_broken_at_once(gateway):
    """Not kept for the lock's whole timeout (job_timeout + 10 s): its holder is dead."""
    from gateway.queues import request_lock, say_alive

    held = request_lock(gateway, "dispatch", "req-lock")
    assert held.acquire(blocking=False, token="worker-a|1")
    say_alive(gateway.redis, "worker-a")
    assert not request_lock(gateway, "dispatch", "req-lock").acquire(blocking=False), \
        "its holder is alive: the lock holds"

    a_worker_that_was_killed(gateway, "worker-a")
    taker = request_lock(gateway, "dispatch", "req-lock")
    assert taker.acquire(blocking=False)
    assert gateway.redis.get(taker.name) != "worker-a|1"
    assert taker.owned()


def test_a_request_lock_of_a_holder_that_never_said_it_is_alive_is_waited_out(gateway):
    """A test's in-process drain, a thread of the API: nothing tells whether it is alive."""
    from gateway.queues import request_lock

    assert request_lock(gateway, "dispatch", "req-lock-2").acquire(blocking=False,
                                                                   token="-|1")
    assert not request_lock(gateway, "dispatch", "req-lock-2").acquire(blocking=False)
    assert request_lock(gateway, "dispatch", "req-lock-3").acquire(blocking=False,
                                                                   token="worker-b|1")
    assert not request_lock(gateway, "dispatch", "req-lock-3").acquire(blocking=False), \
        "a worker never seen saying it is alive is not judged dead"


def test_a_request_whose_dispatch_lock_a_killed_worker_held_is_booked(make_app,
                                                                      medicine_body):
    from gateway.models import ServiceRequest
    from gateway.queues import request_lock
    from gateway.testing import drain
    from tests.conftest import SERVICE_PLUGINS, bearer, new_key
    from tests.fixture_plugins.scripted_courier import scripted_courier

    plugin, _courier = scripted_courier("fleet")
    app = make_app(plugins=[*SERVICE_PLUGINS, plugin])
    gateway = app.extensions["gateway"]
    response = app.test_client().post("/api/v1/services/medicine_delivery/requests",
                                      json=medicine_body,
                                      headers=bearer(new_key(app, key_type="test")))
    request_id = response.get_json()["id"]
    # a worker took the request's dispatch and was killed holding its lock
    assert request_lock(gateway, "dispatch", request_id).acquire(blocking=False,
                                                                 token="worker-c|1")
    a_worker_that_was_killed(gateway, "worker-c")
    drain(app)
    with gateway.db.read() as session:
        assert session.get(ServiceRequest, request_id).status == "booked"
