"""Prometheus metrics: what the gateway counts, and the text that ``GET /metrics`` answers.

Events are counted where they happen: HTTP requests here (by URL rule, never the raw path, so
no id becomes a label), jobs in ``gateway.jobs``, provider calls in
``Gateway._courier_called``. States (queue depths, circuits, today's SLA shares) are read
at scrape time by :class:`StateCollector` from Redis and the database, so they are right
whichever process answers. Label values are names (routes, couriers, services, job kinds,
outcomes), never ids or personal data.

Several processes count: gunicorn's workers, rq workers. prometheus_client's multiprocess
mode keeps each process's counts in files of one directory, ``PROMETHEUS_MULTIPROC_DIR``,
and the scrape adds them up. ``gateway serve`` (before forking) and ``gateway worker`` call
:func:`use_multiprocess_dir`, which defaults it to ``<data_dir>/metrics``: the API and the
workers of one machine share it, so the API's ``/metrics`` shows the workers' jobs and
provider calls too. Without it (tests, ``gunicorn gateway.wsgi:app`` unless the operator sets
the variable) each process counts in memory and reports only its own.

Who may scrape: with ``metrics.token`` set, callers that send ``Authorization: Bearer
<token>``; without one, only loopback callers (127.0.0.1, ::1) whose request no proxy
forwarded (no ``Forwarded``/``X-Forwarded-For``/``X-Real-IP``): behind a proxy, set a token.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

from flask import Flask, current_app, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from . import region, reports
from .models import utcnow

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: provider calls are slower, and time out after the courier's ``timeout_seconds``
PROVIDER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0)
CIRCUIT_VALUES = {"closed": 0, "half_open": 1, "open": 2}
HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


class GatewayMetrics:
    """One app's metric objects, in a registry of its own (tests build many apps).

    Every metric has labels, so no value exists before the first count: that is what lets
    :func:`use_multiprocess_dir` choose the storage after the app was built.
    """

    def __init__(self):
        self.registry = CollectorRegistry()
        self.http_duration = Histogram(
            "gateway_http_request_duration_seconds", "Time to answer an HTTP request.",
            ["method", "route", "status"], buckets=HTTP_BUCKETS, registry=self.registry)
        self.group_sizes = Histogram(
            "gateway_intake_group_size", "New requests and webhooks stored per transaction by "
            "a process's writer (gateway.group_commit), by how the group ended (together; "
            "alone: it was rolled back and each ran in its own transaction; failed: the "
            "database was away).", ["outcome"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1000), registry=self.registry)
        self.jobs = Counter(
            "gateway_jobs", "Jobs run, by kind and outcome (retry: failed, will run again; "
            "failed: failed for the last time).", ["kind", "outcome"], registry=self.registry)
        self.provider_duration = Histogram(
            "gateway_provider_call_duration_seconds", "Time of a call to a courier provider.",
            ["courier", "operation", "outcome"], buckets=PROVIDER_BUCKETS,
            registry=self.registry)
        self.provider_errors = Counter(
            "gateway_provider_call_errors", "Failed provider calls (timeouts, 5xx, 429, "
            "unknown outcomes, refused credentials: what the circuit breaker counts).",
            ["courier", "operation", "outcome"], registry=self.registry)
        self.webhooks_rejected = Counter(
            "gateway_webhooks_rejected", "Webhooks refused, by courier entry (unknown: no such "
            "entry) and reason (unverified, unreadable, too_large, too_deep, not_utf8, "
            "encoded, rate_limited, unknown_courier).", ["courier", "reason"],
            registry=self.registry)
        self.webhook_probes = Counter(
            "gateway_webhook_probes", "Registration probes answered 200 without a report "
            "(Lalamove's empty POST when a webhook URL is set), by courier entry.",
            ["courier"], registry=self.registry)

    def observe_request(self, method: str, rule: str | None, status: int,
                        seconds: float) -> None:
        self.http_duration.labels(method if method in HTTP_METHODS else "other",
                                  rule or "unmatched", f"{status // 100}xx").observe(seconds)

    def count_job(self, kind: str, outcome: str, n: int = 1) -> None:
        self.jobs.labels(kind, str(outcome).replace(" ", "_")).inc(n)

    def count_webhook_rejected(self, courier: str, reason: str) -> None:
        self.webhooks_rejected.labels(courier, reason).inc()

    def count_webhook_probe(self, courier: str) -> None:
        self.webhook_probes.labels(courier).inc()

    def observe_provider_call(self, outcome) -> None:
        """:param outcome: a ``gateway.couriers.CallOutcome``"""
        if outcome.outcome == "unsupported":  # not a call to the provider
            return
        labels = (outcome.courier, outcome.operation, outcome.outcome)
        self.provider_duration.labels(*labels).observe(outcome.seconds)
        if outcome.failed:
            self.provider_errors.labels(*labels).inc()


class StateCollector:
    """Gauges read at scrape time: the same in every process, so none is stored in files.

    Redis or the database being away leaves their gauges out of the scrape (logged), never
    fails it: the counters still tell what happened.
    """

    def __init__(self, gateway):
        self.gateway = gateway

    def collect(self):
        yield from self._queues()
        yield from self._circuits()
        yield from self._sla()
        yield from self._webhook_silence()

    def _webhook_silence(self):
        gateway = self.gateway
        couriers = [name for name, adapter in gateway.couriers.items()
                    if adapter.takes_webhooks()]
        threshold = timedelta(seconds=gateway.settings["webhooks"]["silence_alert_seconds"])
        try:
            with gateway.db.read() as session:
                figures = reports.webhook_silence(session, couriers, threshold)
        except SQLAlchemyError as exc:
            log.warning("metrics: webhook gauges left out, database unavailable (%s)",
                        type(exc).__name__)
            return
        age = GaugeMetricFamily(
            "gateway_webhook_last_accepted_age_seconds", "Seconds since the courier's last "
            "accepted (verified, stored) webhook; absent if none was ever accepted.",
            labels=["courier"])
        active = GaugeMetricFamily(
            "gateway_courier_active_bookings", "Requests the courier carries that are not "
            "finished (booked, driver assigned, picked up).", labels=["courier"])
        silent = GaugeMetricFamily(
            "gateway_webhook_silent", "1 when the courier carries bookings but no webhook "
            "was accepted from it for webhooks.silence_alert_seconds (its provider may have "
            "disabled our URL), else 0.", labels=["courier"])
        now = utcnow()
        for figure in figures:
            if figure.last_webhook_at is not None:
                age.add_metric([figure.courier],
                               (now - figure.last_webhook_at).total_seconds())
            active.add_metric([figure.courier], figure.active_bookings)
            silent.add_metric([figure.courier], int(figure.silent))
        yield from (age, active, silent)

    def _queues(self):
        try:
            try:
                with self.gateway.db.read() as session:
                    figures = reports.gateway_queue_figures(self.gateway, session)
            except SQLAlchemyError:     # the listed ids' ages left out, the rest still told
                figures = reports.gateway_queue_figures(self.gateway)
        except RedisError as exc:
            log.warning("metrics: queue gauges left out, Redis unavailable (%s)",
                        type(exc).__name__)
            return
        families = {
            "depth": GaugeMetricFamily("gateway_queue_depth",
                                       "Jobs waiting for a worker.", labels=["queue"]),
            "started": GaugeMetricFamily("gateway_queue_started_jobs",
                                         "Jobs a worker is running.", labels=["queue"]),
            "scheduled": GaugeMetricFamily("gateway_queue_scheduled_jobs",
                                           "Jobs waiting for their retry time.",
                                           labels=["queue"]),
            "failed": GaugeMetricFamily("gateway_queue_failed_jobs",
                                        "Jobs that failed for good (kept 30 days).",
                                        labels=["queue"]),
        }
        age = GaugeMetricFamily(
            "gateway_queue_oldest_job_age_seconds", "How long the queue's oldest waiting job "
            "(or id listed for a batch job) has waited; 0 when nothing waits.",
            labels=["queue"])
        lagging = GaugeMetricFamily(
            "gateway_queue_lagging", "1 when the queue's oldest waiting job is older than "
            "jobs.max_queue_age_seconds (work is falling behind), else 0.", labels=["queue"])
        for queue in figures:
            for field, family in families.items():
                family.add_metric([queue.name], getattr(queue, field))
            age.add_metric([queue.name], queue.oldest_age_seconds or 0.0)
            lagging.add_metric([queue.name], int(queue.lagging))
        yield from families.values()
        yield from (age, lagging)
        listed = {queue.name: queue.listed for queue in figures}
        yield GaugeMetricFamily("gateway_dispatch_listed_requests", "Accepted requests "
                                "waiting in the list that batch dispatch jobs take from.",
                                value=listed.get("dispatch", 0))
        yield GaugeMetricFamily("gateway_reports_listed", "Stored provider reports waiting "
                                "in the list that report jobs take from.",
                                value=listed.get("reports", 0))

    def _circuits(self):
        family = GaugeMetricFamily("gateway_circuit_state", "Circuit breaker per courier: "
                                   "0 closed, 1 half-open (on trial), 2 open (skipped).",
                                   labels=["courier"])
        for courier in sorted(self.gateway.couriers):
            family.add_metric([courier],
                              CIRCUIT_VALUES[self.gateway.circuits.state(courier)])
        yield family

    def _sla(self):
        gateway = self.gateway
        now = utcnow()
        start, end = region.today(gateway, now)
        services = sorted(gateway.enabled_services())
        targets = {name: gateway.service_settings(name).get("target_minutes")
                   for name in services}
        try:
            with gateway.db.read() as session:
                dispatch = {name: reports.dispatch_speed(session, start, end, now, service=name)
                            for name in services}
                on_time = reports.delivery_on_time(session, start, end, targets, now)
        except SQLAlchemyError as exc:
            log.warning("metrics: SLA gauges left out, database unavailable (%s)",
                        type(exc).__name__)
            return
        seconds = int(reports.DISPATCH_WITHIN.total_seconds())
        yield from _shares(
            f"gateway_sla_dispatched_within_{seconds}s", "Today's (in the region's zone) "
            f"requests booked by a courier within {seconds} s of acceptance", dispatch.items())
        yield from _shares(
            "gateway_sla_delivered_on_target", "Today's (in the region's zone) due requests "
            "delivered within their service's target_minutes",
            ((o.service, o.share) for o in on_time if o.target_minutes is not None))


def _shares(name: str, description: str, shares):
    """A share as two gauges: its ratio (absent while nothing is measured) and how many
    requests were measured, so a dashboard can tell 100 % of 1 from 100 % of 1000."""
    ratio = GaugeMetricFamily(f"{name}_ratio", f"{description}, as a share of 1.",
                              labels=["service"])
    measured = GaugeMetricFamily(f"{name}_measured_requests",
                                 f"{description}: how many requests were measured.",
                                 labels=["service"])
    for service, share in shares:
        measured.add_metric([service], share.whole)
        if share.whole:
            ratio.add_metric([service], share.part / share.whole)
    yield ratio
    yield measured


class _Scrape:
    """What one scrape reports: the counters (this process's, or every process's files)
    and the state gauges."""

    def __init__(self, *collectors):
        self.collectors = collectors

    def collect(self):
        for collector in self.collectors:
            yield from collector.collect()


def exposition(gateway, accept: str | None) -> tuple[bytes, str]:
    """The scrape's body and content type (Prometheus text, or OpenMetrics if asked for)."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        counted = CollectorRegistry()
        multiprocess.MultiProcessCollector(counted, path=path)
    else:
        counted = gateway.metrics.registry
    encoder, content_type = choose_encoder(accept or "")
    return encoder(_Scrape(counted, StateCollector(gateway))), content_type


def scrape_allowed(token: str | None) -> bool:
    """With a token: the caller must send it as a bearer token (compared in constant time).
    Without one: loopback callers only, and not through a proxy (a proxy on this machine
    makes every caller look local)."""
    if token:
        sent = request.headers.get("Authorization", "")
        return hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())
    return _loopback(request.remote_addr) and \
        not any(name in request.headers for name in FORWARDING_HEADERS)


def _loopback(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:  # no address (a Unix socket): not known to be local
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or bool(mapped and mapped.is_loopback)


# -- several processes --------------------------------------------------------------------------
def use_multiprocess_dir(data_dir: str | os.PathLike) -> Path:
    """Count in files shared by this machine's gateway processes, from now on.

    For a process with siblings: the gunicorn master before it forks, each rq worker. The
    directory is ``$PROMETHEUS_MULTIPROC_DIR``, default ``<data_dir>/metrics`` (exported, so
    children use it too). Files of earlier runs are removed first, as prometheus_client asks:
    only those of processes that no longer run, because the API and the workers of one
    machine share the directory and start at different times.
    """
    path = Path(os.environ.get(MULTIPROC_ENV) or Path(data_dir) / "metrics").resolve()
    path.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)
    remove_files_of_ended_processes(path)
    _choose_storage()
    return path


def remove_files_of_ended_processes(path: Path) -> None:
    """Remove ``<kind>_<pid>.db`` files whose process is gone (or is this one, which has
    counted nothing yet: a file with its pid is another run's)."""
    for file in path.glob("*.db"):
        pid = file.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not _another_live_process(int(pid)):
            file.unlink(missing_ok=True)


def _another_live_process(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _choose_storage() -> None:
    """prometheus_client picks memory or files when it is first imported, from the
    environment; the gateway imports it before the directory is known. Pick again: nothing
    has been counted yet (every metric has labels, see :class:`GatewayMetrics`)."""
    values = sys.modules["prometheus_client.values"]
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.get_value_class()


def process_ended(pid: int) -> None:
    """A gunicorn worker exited (the ``child_exit`` hook): what prometheus_client asks for.
    Its counters stay, so totals do not drop; files of ended processes go at the next start.
    """
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)


def init_app(app: Flask) -> None:
    """Time every request the app answers (``gateway.logs`` marks when each began)."""
    app.after_request(_observe_request)


def _observe_request(response):
    started = g.get("request_started")
    if started is not None:
        current_app.extensions["gateway"].metrics.observe_request(
            request.method, request.url_rule.rule if request.url_rule else None,
            response.status_code, time.perf_counter() - started)
    return response
