"""Prometheus metrics: what a delivery leaves on ``/metrics``, who may scrape it, and that the
gunicorn workers of ``gateway serve`` add up (prometheus_client's multiprocess mode)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from gateway.testing import drain, free_port, wait_for_status
from tests.conftest import CONFIG_DIR, bearer, new_key

CREATE_ROUTE = "/api/v1/services/<service_name>/requests"
TOKEN = "metrics-token-0123456789abcdef"


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """``(sample name, its labels) -> value`` of a scrape."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(scraped: dict, name: str, **labels) -> float | None:
    return scraped.get((name, frozenset(labels.items())))


def test_a_delivery_through_the_gosend_simulator_shows_on_metrics(gosend_app, medicine_body):
    app = gosend_app()
    client = app.test_client()
    created = client.post("/api/v1/services/medicine_delivery/requests", json=medicine_body,
                          headers=bearer(new_key(app, key_type="test")))
    assert created.status_code == 202, created.get_json()
    request_id = created.get_json()["id"]
    wait_for_status(app, request_id, "delivered")
    client.get(f"/api/v1/requests/{request_id}")  # a route with an id in its path

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    scraped = samples(text)

    # the route is the URL rule: no id, no service name from the path
    assert value(scraped, "gateway_http_request_duration_seconds_count", method="POST",
                 route=CREATE_ROUTE, status="2xx") == 1
    assert value(scraped, "gateway_http_request_duration_seconds_count", method="GET",
                 route="/api/v1/requests/<request_id>", status="4xx") == 1
    assert value(scraped, "gateway_http_request_duration_seconds_bucket", method="POST",
                 route=CREATE_ROUTE, status="2xx", le="+Inf") == 1
    assert value(scraped, "gateway_http_request_duration_seconds_count", method="POST",
                 route="/webhooks/<courier>", status="2xx") >= 1
    assert request_id not in text

    assert value(scraped, "gateway_jobs_total", kind="dispatch", outcome="booked") == 1
    assert value(scraped, "gateway_jobs_total", kind="event", outcome="applied") >= 3

    booked = {"courier": "gosend_sandbox", "operation": "book", "outcome": "ok"}
    assert value(scraped, "gateway_provider_call_duration_seconds_count", **booked) == 1
    assert value(scraped, "gateway_provider_call_duration_seconds_sum", **booked) > 0
    assert not [key for key in scraped if key[0] == "gateway_provider_call_errors_total"]

    assert value(scraped, "gateway_dispatch_listed_requests") == 0
    for queue in ("dispatch", "default"):
        assert value(scraped, "gateway_queue_depth", queue=queue) == 0
        assert value(scraped, "gateway_queue_failed_jobs", queue=queue) == 0
    assert value(scraped, "gateway_circuit_state", courier="gosend_sandbox") == 0
    assert value(scraped, "gateway_circuit_state", courier="own_fleet") == 0

    assert value(scraped, "gateway_sla_dispatched_within_10s_ratio",
                 service="medicine_delivery") == 1.0
    assert value(scraped, "gateway_sla_dispatched_within_10s_measured_requests",
                 service="medicine_delivery") == 1
    assert value(scraped, "gateway_sla_delivered_on_target_ratio",
                 service="medicine_delivery") == 1.0
    # nothing measured yet for a service without requests: a count of 0 and no ratio
    assert value(scraped, "gateway_sla_dispatched_within_10s_measured_requests",
                 service="umkm_pickup") == 0
    assert value(scraped, "gateway_sla_dispatched_within_10s_ratio",
                 service="umkm_pickup") is None


def test_failed_provider_calls_are_counted_as_errors_and_open_the_circuit(
        gosend_app, gateway_gosend, medicine_body):
    app = gosend_app(services={"medicine_delivery": {"couriers": ["gosend_sandbox"]}},
                     couriers={"gosend_sandbox": {
                         "base_url": gateway_gosend.url, "timeout_seconds": 1,
                         "circuit": {"failure_threshold": 1, "cooldown_seconds": 60},
                         "client_id": "test-engine", "pass_key": "wrong-pass-key",
                         "webhook_token": "test-webhook-token-0123456789"},
                         "own_fleet": {"enabled": False}})
    created = app.test_client().post("/api/v1/services/medicine_delivery/requests",
                                     json=medicine_body,
                                     headers=bearer(new_key(app, key_type="test")))
    wait_for_status(app, created.get_json()["id"], {"failed", "no_driver"})

    scraped = samples(app.test_client().get("/metrics").get_data(as_text=True))
    errors = {dict(labels)["outcome"]: count for (name, labels), count in scraped.items()
              if name == "gateway_provider_call_errors_total"}
    assert errors.get("auth", 0) >= 1, scraped
    assert value(scraped, "gateway_circuit_state", courier="gosend_sandbox") == 2


def test_metrics_answer_only_loopback_callers_when_no_token_is_set(client):
    assert client.get("/metrics").status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    for refused in (client.get("/metrics", environ_base={"REMOTE_ADDR": "10.0.0.9"}),
                    # a proxy on this machine makes the world look local
                    client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"})):
        assert refused.status_code == 403
        body = refused.get_json()
        assert body["code"] == "forbidden" and body["status"] == 403
        assert body["correlation_id"]


def test_metrics_with_a_token_need_it_from_every_address(make_app):
    client = make_app(metrics={"token": TOKEN}).test_client()
    remote = {"REMOTE_ADDR": "10.0.0.9"}
    assert client.get("/metrics", environ_base=remote).status_code == 403
    assert client.get("/metrics").status_code == 403  # loopback is not enough then
    assert client.get("/metrics", environ_base=remote,
                      headers=bearer(TOKEN[:-1] + "X")).status_code == 403
    accepted = client.get("/metrics", environ_base=remote, headers=bearer(TOKEN))
    assert accepted.status_code == 200
    assert "gateway_circuit_state" in accepted.get_data(as_text=True)


def test_an_api_key_does_not_open_metrics(gateway_make_agency):
    agency = gateway_make_agency(key_type="live")
    response = agency.client.get("/metrics", headers=bearer(agency.key),
                                 environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert response.status_code == 403


def test_a_short_metrics_token_is_a_configuration_error(make_app):
    from gateway.settings import ConfigError

    with pytest.raises(ConfigError, match="metrics.token"):
        make_app(metrics={"token": "short"})


def test_the_openmetrics_format_is_answered_when_asked_for(client):
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.mimetype == "application/openmetrics-text"
    assert response.get_data(as_text=True).rstrip().endswith("# EOF")


# -- several processes ------------------------------------------------------------------------
def _wait_healthy(base: str, process: subprocess.Popen, log_path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log_path.read_text(errors="replace")[-3000:]
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{base}/healthz", timeout=1).ok:
                return
        time.sleep(0.2)
    raise AssertionError(f"gateway serve did not start:\n{log_path.read_text()[-3000:]}")


def _worker_pids(metrics_dir) -> set[int]:
    return {int(path.stem.rsplit("_", 1)[1]) for path in metrics_dir.glob("histogram_*.db")}


def test_gateway_serve_adds_up_the_requests_of_both_workers(
        tmp_path, make_app, gateway_database_url, gateway_redis_url):
    make_app()  # the schema, in the database the server will use
    config_dir, data_dir = tmp_path / "config", tmp_path / "served-data"
    shutil.copytree(CONFIG_DIR, config_dir)
    metrics_dir = data_dir / "metrics"
    metrics_dir.mkdir(parents=True)
    stale = metrics_dir / "counter_999999999.db"  # a file of a process of an earlier run
    stale.write_bytes(b"")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "GATEWAY_CONFIG": str(config_dir), "GATEWAY_DATA_DIR": str(data_dir),
           "GATEWAY_DATABASE_URL": gateway_database_url, "GATEWAY_REDIS_URL": gateway_redis_url,
           "GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(port),
           "GATEWAY_LOG_FORMAT": "json"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--workers", "2"],
                                   cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_healthy(base, process, log_path)
        assert not stale.exists(), "files of ended processes are removed at start"
        # Sync workers take one request at a time: concurrent callers reach both of them.
        sent = 0
        with ThreadPoolExecutor(8) as pool:
            while len(_worker_pids(metrics_dir)) < 2 or sent < 100:
                assert sent < 5000, "one worker answered everything"
                answers = list(pool.map(lambda _: requests.get(f"{base}/readyz", timeout=10),
                                        range(40)))
                assert all(a.status_code == 200 for a in answers)
                sent += len(answers)
        assert len(_worker_pids(metrics_dir)) == 2

        # Whichever worker answers a scrape, it reports what both served.
        for _ in range(6):
            scraped = samples(requests.get(f"{base}/metrics", timeout=10).text)
            assert value(scraped, "gateway_http_request_duration_seconds_count",
                         method="GET", route="/readyz", status="2xx") == sent
            assert value(scraped, "gateway_circuit_state", courier="gosend_sandbox") == 0

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        output = log_path.read_text(errors="replace")
        lines = [line for line in output.splitlines() if line.strip()]
        entries = [json.loads(line) for line in lines]  # every line is one JSON object
        assert {"gunicorn.error"} <= {entry["logger"] for entry in entries}
        assert all({"timestamp", "level", "logger", "message"} <= set(entry)
                   for entry in entries)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def test_requests_waiting_for_a_batch_dispatch_show_on_metrics(app, agency, client,
                                                               medicine_body):
    for n in range(2):
        response = agency.post("/api/v1/services/medicine_delivery/requests",
                               json={**medicine_body, "prescription_id": f"RX-M-{n}"})
        assert response.status_code == 202
    scraped = samples(client.get("/metrics").get_data(as_text=True))
    assert value(scraped, "gateway_dispatch_listed_requests") == 2
    drain(app)
    scraped = samples(client.get("/metrics").get_data(as_text=True))
    assert value(scraped, "gateway_dispatch_listed_requests") == 0


def test_work_waiting_too_long_shows_its_age_on_metrics_and_readyz(make_app, medicine_body):
    """A job no worker has taken yet (and a request listed for batch dispatch) ages; past
    ``jobs.max_queue_age_seconds`` the queue is lagging, and /readyz says so but stays 200."""
    from gateway.queues import enqueue_job

    app = make_app(jobs={"intervals": [0], "job_timeout": 30, "max_queue_age_seconds": 1})
    gateway = app.extensions["gateway"]
    client = app.test_client()
    ready = client.get("/readyz").get_json()
    assert ready["lagging"] is False
    assert ready["queues"]["default"] == {"waiting": 0, "oldest_age_seconds": None,
                                          "lagging": False}

    response = client.post("/api/v1/services/medicine_delivery/requests", json=medicine_body,
                           headers=bearer(new_key(app, key_type="test")))
    assert response.status_code == 202
    with app.app_context():
        assert enqueue_job(gateway, "poll", "a-request-nobody-polls-yet")
    time.sleep(1.5)

    scraped = samples(client.get("/metrics").get_data(as_text=True))
    for queue in ("dispatch", "polls"):
        assert value(scraped, "gateway_queue_oldest_job_age_seconds", queue=queue) >= 1.5
        assert value(scraped, "gateway_queue_lagging", queue=queue) == 1
    assert value(scraped, "gateway_queue_oldest_job_age_seconds", queue="callbacks") == 0
    assert value(scraped, "gateway_queue_lagging", queue="callbacks") == 0
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.get_json()
    assert body["status"] == "ready" and body["lagging"] is True
    assert body["queues"]["polls"]["waiting"] == 1
    assert body["queues"]["polls"]["oldest_age_seconds"] >= 1.5
    assert body["queues"]["dispatch"]["waiting"] == 2          # its batch job and the request
    assert body["queues"]["callbacks"] == {"waiting": 0, "oldest_age_seconds": None,
                                           "lagging": False}

    drain(app)
    scraped = samples(client.get("/metrics").get_data(as_text=True))
    assert value(scraped, "gateway_queue_oldest_job_age_seconds", queue="polls") == 0
    assert client.get("/readyz").get_json()["lagging"] is False
