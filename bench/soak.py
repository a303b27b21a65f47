"""Soak: a steady 20 medicine requests a second for 5 minutes against ``gateway up`` (the
embedded default a new user gets), then the wait until every accepted request is final, and
the memory of every process of ``gateway up`` sampled throughout.

The gateway is started as a new user starts it: ``python -m gateway up`` (two workers, two API
processes, SQLite in its data dir, its own Redis, the sandbox simulators it starts itself with
their own timing: ``gateway simulator run``'s ``--step-seconds`` default, 3 s between two
statuses of a booking) on a copy of the repository's ``config/``, and the demo agency's test
key. Three things differ from a new user's machine, all said in the notes: the ports (free
ones, through the documented ``GATEWAY_PORT`` and simulator URL variables, so a gateway
already running elsewhere on the machine is not disturbed), the demo test key's rate
limit, which is raised (``api.rate_limits.test``; by default a test key may send 10 a second,
and this benchmark measures finishing, not the limiter), and the citizens' quiet hours,
which are off (``notices.quiet_hours``: by default 21:00-07:00 in the region's zone holds
every notice but the PIN, so a run in the evening would send far fewer than one by day and
the figures would depend on the hour).

The load is open-loop: a scheduler hands each request to a pool of threads (a
``requests.Session`` each) at its due time, so a slow answer does not lower the offered rate;
every request is the plugin's example with its own ``prescription_id``. Every 10 s (from
the first request until the drain ends) one line is printed and one row written to
``soak.csv`` in the run's directory: requests by status (the gateway's SQLite file, opened
read-only), each queue's waiting work and oldest age (``/readyz``), and the RSS of every
process in ``gateway up``'s tree, summed by kind. The run's directory (config, data,
``gateway-up.log``, ``soak.csv``) is kept and printed.

Figures: accepted of offered with p50/p99 of the answers; the drain (from the last request's
answer to the moment the last request became final, the gateway's own status event time),
against the target of 120 s, with the ride time of the first requests (accepted to final,
unloaded) as the same-run baseline; finishing against accepting over the last minute of load;
each kind's RSS averaged over the last minute of load against the first minute after the
warm-up (30 s, and the time rq keeps finished jobs' results, ``queues.RESULT_TTL``: until
then Redis fills with them by design); the queues' peak waiting and oldest age.

Environment: ``BENCH_SOAK_SECONDS`` (default 300; 60 is the short mode for trying),
``BENCH_SOAK_RATE`` (default 20), ``BENCH_SOAK_DRAIN_CAP`` (seconds to wait for the drain,
default 600).
"""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil
import requests
import yaml

from gateway.queues import RESULT_TTL

from .servers import ROOT, free_port

SAMPLE_EVERY = 10.0
DRAIN_POLL = 2.0
TARGET_DRAIN = 120.0       # seconds from the last request to the last one final
TARGET_FLAT = 1.10         # RSS, last minute of load against the first after warm-up
TARGET_KEEPS_UP = 0.90     # requests final per s against accepted per s, last minute of load
SENDERS = 16
#: the simulators ``gateway up`` starts, by the base_url variable of their config entry
SIMULATOR_URLS = {
    "GATEWAY_GOSEND_SIMULATOR_URL": "{}",
    "GATEWAY_GORIDE_SIMULATOR_URL": "{}",
    "GATEWAY_GRAB_SIMULATOR_URL": "{}/grab-express-sandbox",
    "GATEWAY_LALAMOVE_SIMULATOR_URL": "{}",
    "GATEWAY_WHATSAPP_SIMULATOR_URL": "{}",
    "GATEWAY_SMS_SIMULATOR_URL": "{}",
}


def _quantile(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 \
        else values[0]


def _epoch(text: str) -> float:
    """A timestamp as the gateway stores it in SQLite (naive UTC) as seconds since the epoch."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


class Up:
    """``gateway up`` in ``workdir`` on a copy of the repository's config, on free ports."""

    def __init__(self, workdir: Path):
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.config, self.data = workdir / "config", workdir / "data"
        shutil.copytree(ROOT / "config", self.config)
        core_path = self.config / "gateway.yaml"
        core = yaml.safe_load(core_path.read_text())
        self.key = core["demo"]["api_key"]
        # Only the demo key's limiter (10 a second by default) is raised: see the docstring.
        api = core.setdefault("api", {})
        api["rate_limits"] = {"live": {"rate": 50.0, "burst": 200},
                              "test": {"rate": 1000.0, "burst": 1000}}
        # Quiet hours off: see the docstring (the load is the same at any hour of the day).
        core.setdefault("notices", {})["quiet_hours"] = None
        core_path.write_text(yaml.safe_dump(core, sort_keys=False))
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("GATEWAY_DATABASE_URL", "GATEWAY_REDIS_URL")}
        self.env.update({"GATEWAY_CONFIG": str(self.config), "GATEWAY_DATA_DIR": str(self.data),
                         "GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(port),
                         "GATEWAY_SMS_CALLBACK_URL":
                             f"{self.url}/webhooks/notifiers/sms_sandbox"})
        for variable, shape in SIMULATOR_URLS.items():
            self.env[variable] = shape.format(f"http://127.0.0.1:{free_port()}")
        grab = self.env["GATEWAY_GRAB_SIMULATOR_URL"].removesuffix("/grab-express-sandbox")
        self.env["GATEWAY_GRAB_TOKEN_URL"] = f"{grab}/grabid/v1/oauth2/token"
        self.log = open(workdir / "gateway-up.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process: subprocess.Popen | None = None
        self.seen: dict[int, psutil.Process] = {}
        self._redis = None

    @property
    def database(self) -> Path:
        return self.data / "gateway.db"

    def __enter__(self) -> Up:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def pids(self, *kinds: str) -> list[int]:
        """The processes of these kinds (``api``: its master and workers; ``worker``,
        ``redis``, ``simulators``), as they run now."""
        wanted = {"api master", "api workers"} if "api" in kinds else set()
        wanted |= set(kinds)
        return [process.pid for kind, process in self.tree() if kind in wanted]

    def start(self, within: float = 120.0) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "gateway", "up"], env=self.env,
                                        stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True, cwd=self.data.parent)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway up exited with {self.process.returncode}; see "
                                   f"{self.log.name}")
            kinds = {kind for kind, _p in self.tree()}
            if "worker" in kinds and self._answers("/healthz"):
                time.sleep(3)       # the worker connects to Redis and registers its queues
                return
            time.sleep(0.5)
        raise RuntimeError(f"gateway up did not come up within {within:.0f} s")

    def _answers(self, path: str) -> bool:
        try:
            return requests.get(self.url + path, timeout=2).ok
        except requests.RequestException:
            return False

    def tree(self) -> list[tuple[str, psutil.Process]]:
        """(kind, process) for ``gateway up`` and every process under it."""
        try:
            root = psutil.Process(self.process.pid)
            found = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        result = []
        for process in found:
            try:
                result.append((self._kind(process, root.pid), process))
                self.seen.setdefault(process.pid, process)
            except psutil.Error:
                continue
        return result

    @staticmethod
    def _kind(process: psutil.Process, root: int) -> str:
        if process.pid == root:
            return "gateway up"
        command = process.cmdline()
        if "redis-server" in process.name() or any("redis-server" in c for c in command[:1]):
            return "redis"
        if "simulator" in command and "run" in command:
            return "simulators"
        if "serve" in command:
            return "api master" if process.ppid() == root else "api workers"
        if "worker" in command:
            return "worker"
        return process.name()

    def rss(self) -> dict[str, float]:
        """RSS in MB by kind (summed over the processes of a kind)."""
        totals: dict[str, float] = defaultdict(float)
        for kind, process in self.tree():
            try:
                totals[kind] += process.memory_info().rss / 2**20
            except psutil.Error:
                continue
        return dict(totals)

    def queues(self) -> dict:
        try:
            return requests.get(self.url + "/readyz", timeout=5).json().get("queues", {})
        except (requests.RequestException, ValueError):
            return {}

    def lists(self) -> dict[str, int]:
        """Per queue, rq's jobs and the ids listed for its batch job, read from ``gateway
        up``'s Redis (``LLEN`` only): what ``/readyz`` adds up as "waiting"."""
        from redis import Redis
        from redis.exceptions import RedisError
        from rq import Queue

        from gateway.queues import QueueNames
        from gateway.redis_server import EMBEDDED_REDIS_DIR, EmbeddedRedis
        from gateway.reports import LISTS

        if self._redis is None:
            url = next((p.environ().get("GATEWAY_REDIS_URL") for kind, p in self.tree()
                        if kind == "worker"), None) \
                or EmbeddedRedis(self.data / EMBEDDED_REDIS_DIR, binary="redis-server").url
            self._redis = Redis.from_url(url, socket_timeout=5)
        try:
            found = {}
            for name in QueueNames.all():
                found[f"{name}_jobs"] = self._redis.llen(Queue(name, connection=self._redis).key)
                if name in LISTS:
                    found[f"{name}_listed"] = self._redis.llen(LISTS[name].key)
            return found
        except RedisError:
            return {}

    def waiting_jobs(self) -> Counter:
        """The rq jobs waiting in every queue, by function (their descriptions, read-only)."""
        from redis.exceptions import RedisError
        from rq import Queue

        from gateway.queues import QueueNames

        if not self.lists():            # connects, or finds Redis away
            return Counter()
        found: Counter = Counter()
        try:
            for name in QueueNames.all():
                queue = Queue(name, connection=self._redis)
                pipe = self._redis.pipeline()
                for job_id in queue.get_job_ids():
                    pipe.hget(f"rq:job:{job_id}", "description")
                for description in pipe.execute():
                    text = (description or b"?").decode(errors="replace")
                    found[text.split("(")[0].removeprefix("gateway.jobs.")] += 1
        except RedisError:
            pass
        return found

    def stop(self) -> None:
        """SIGTERM to ``gateway up`` (it stops its children in order), then, after a minute,
        SIGKILL to whatever of its tree is left (its Redis runs in a session of its own)."""
        if self.process is None:
            return
        self.tree()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for process in self.seen.values():
            with contextlib.suppress(psutil.Error):
                process.kill()      # psutil refuses a pid reused by another process
        self.log.close()


class Statuses:
    """Requests by status, from the gateway's SQLite file opened read-only."""

    def __init__(self, path: Path):
        self.path = path
        self.connection: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self.connection is None:
            self.connection = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True,
                                              timeout=10, check_same_thread=False)
        return self.connection

    def counts(self) -> Counter:
        return Counter(dict(self._db().execute(
            "SELECT status, COUNT(*) FROM service_requests GROUP BY status").fetchall()))

    def unapplied_reports(self) -> tuple[int, float | None]:
        """Provider reports stored and not applied yet, and the oldest one's age (s): the
        report backlog as the database has it (``/readyz`` counts ids listed for a job)."""
        count, oldest = self._db().execute(
            "SELECT COUNT(*), MIN(received_at) FROM provider_events "
            "WHERE processed_at IS NULL").fetchone()
        return count, (time.time() - _epoch(oldest) if oldest else None)

    def report_times(self) -> list[tuple[float, float | None]]:
        """(received, applied) of every stored provider report, in seconds since the epoch."""
        return [(_epoch(received), _epoch(processed) if processed else None)
                for received, processed in self._db().execute(
                    "SELECT received_at, processed_at FROM provider_events").fetchall()]

    def created(self) -> dict[str, float]:
        return {request_id: _epoch(created) for request_id, created in self._db().execute(
            "SELECT id, created_at FROM service_requests").fetchall()}

    def finals(self, terminal: set[str]) -> dict[str, float]:
        """When each request became final: its first applied terminal status event."""
        found: dict[str, float] = {}
        for request_id, status, at in self._db().execute(
                "SELECT request_id, status, created_at FROM status_events WHERE applied"):
            if status in terminal:
                found[request_id] = min(found.get(request_id, float("inf")), _epoch(at))
        return found

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()


def ride_alone(up: Up, statuses: Statuses, within: float = 180.0) -> float | None:
    """One request on the idle gateway, from accepted to final (s): the same-run baseline of
    the drain. None when it is not final ``within`` seconds."""
    from gateway.statuses import TERMINAL
    from plugins.medicine_delivery.service import EXAMPLE

    response = requests.post(f"{up.url}/api/v1/services/medicine_delivery/requests",
                             json={**EXAMPLE, "prescription_id": f"RX-P{time.time_ns()}"},
                             headers={"Authorization": f"Bearer {up.key}"}, timeout=30)
    response.raise_for_status()
    request_id = response.json()["id"]
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        final = statuses.finals({str(s) for s in TERMINAL}).get(request_id)
        if final is not None:
            return final - statuses.created()[request_id]
        time.sleep(0.5)
    return None


@dataclass
class Answer:
    due: float          # monotonic
    sent: float         # wall clock
    seconds: float
    late: float         # how long after its due time it was sent
    status: int | str   # the HTTP status, or the exception's name
    request_id: str | None = None


@dataclass
class Load:
    """An open-loop steady rate of medicine requests."""

    url: str
    key: str
    rate: float
    seconds: float
    answers: list[Answer] = field(default_factory=list)
    finished: float = 0.0    # wall clock of the last answer
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        from plugins.medicine_delivery.service import EXAMPLE

        local = threading.local()
        stamp = time.time_ns()
        headers = {"Authorization": f"Bearer {self.key}"}
        target = f"{self.url}/api/v1/services/medicine_delivery/requests"

        def send(n: int, due: float) -> None:
            if not hasattr(local, "session"):
                local.session = requests.Session()
            sent, began = time.time(), time.monotonic()
            try:
                response = local.session.post(
                    target, json={**EXAMPLE, "prescription_id": f"RX-S{stamp}-{n}"},
                    headers=headers, timeout=30)
                status = response.status_code
                request_id = response.json().get("id") if status == 202 else None
            except (requests.RequestException, ValueError) as exc:
                status, request_id = type(exc).__name__, None
            answer = Answer(due, sent, time.monotonic() - began, began - due, status,
                            request_id)
            with self.lock:
                self.answers.append(answer)

        total = int(self.rate * self.seconds)
        start = time.monotonic() + 0.2
        with ThreadPoolExecutor(SENDERS, thread_name_prefix="soak-sender") as pool:
            for n in range(total):
                due = start + n / self.rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(send, n, due)
        self.finished = time.time()

    def tally(self) -> Counter:
        with self.lock:
            return Counter(a.status for a in self.answers)


def _line(t: float, phase: str, sent: int, tally: Counter, counts: Counter,
          terminal: set[str], queues: dict, rss: dict[str, float],
          reports: tuple[int, float | None], lists: dict[str, int]) -> str:
    open_ = {s: n for s, n in counts.items() if s not in terminal}
    answered = " ".join(f"{code}:{n}" for code, n in sorted(tally.items(), key=str))
    waiting = ", ".join(f"{name} {q.get('waiting', 0)}/{q.get('oldest_age_seconds') or 0:.0f}s"
                        for name, q in sorted(queues.items()) if q.get("waiting"))
    memory = " ".join(f"{kind} {mb:.0f}" for kind, mb in sorted(rss.items()))
    return (f"  t={t:5.0f}s {phase:5} sent {sent} ({answered or '-'}) final "
            f"{sum(counts.values()) - sum(open_.values())} open {sum(open_.values())} "
            f"[{' '.join(f'{s} {n}' for s, n in sorted(open_.items())) or '-'}] "
            f"queues [{waiting or 'empty'}] redis ["
            f"{' '.join(f'{k} {n}' for k, n in sorted(lists.items()) if n) or 'empty'}] "
            f"reports unapplied {reports[0]}"
            f"/{reports[1] or 0:.0f}s rss MB [{memory}] = {sum(rss.values()):.0f}")


def run(workdir: Path, stack) -> list[dict]:
    from gateway.statuses import TERMINAL, Status

    seconds = float(os.environ.get("BENCH_SOAK_SECONDS", "300"))
    rate = float(os.environ.get("BENCH_SOAK_RATE", "20"))
    cap = float(os.environ.get("BENCH_SOAK_DRAIN_CAP", "600"))
    terminal = {str(s) for s in TERMINAL}
    up = Up(workdir)
    stack.callback(up.stop)
    print(f"    gateway up in {workdir} (log gateway-up.log, samples soak.csv)", flush=True)
    up.start()
    statuses = Statuses(up.database)
    stack.callback(statuses.close)
    alone = ride_alone(up, statuses)
    print(f"    one request alone: accepted to final in "
          f"{'more than 180' if alone is None else f'{alone:.1f}'} s", flush=True)
    kinds = sorted({kind for kind, _p in up.tree()})
    queue_names = sorted(up.queues())
    print(f"    up at {up.url}: {', '.join(kinds)}; queues {', '.join(queue_names)}; "
          f"{rate:g} req/s for {seconds:g} s", flush=True)
    columns = (["t_s", "phase", "sent", "accepted", "other_answers"]
               + [str(s) for s in Status] + ["open", "final", "reports_unapplied",
                                              "reports_oldest_age_s"]
               + [f"{q}_{m}" for q in queue_names for m in ("waiting", "oldest_age_s")]
               + sorted(up.lists())
               + [f"rss_mb_{k.replace(' ', '_')}" for k in kinds] + ["rss_mb_total"])
    csv_file = open(workdir / "soak.csv", "w", newline="")  # noqa: SIM115
    stack.callback(csv_file.close)
    writer = csv.DictWriter(csv_file, columns, extrasaction="ignore", restval="")
    writer.writeheader()
    samples: list[dict] = []

    load = Load(up.url, up.key, rate, seconds)
    sender = threading.Thread(target=load.run, name="soak-load", daemon=True)
    began = time.monotonic()
    sender.start()

    def sample(phase: str) -> dict:
        t = time.monotonic() - began
        tally, counts = load.tally(), statuses.counts()
        queues, rss = up.queues(), up.rss()
        unapplied, oldest = statuses.unapplied_reports()
        lists = up.lists()
        row = {"t_s": round(t, 1), "phase": phase, "sent": sum(tally.values()),
               "accepted": tally.get(202, 0),
               "other_answers": sum(n for code, n in tally.items() if code != 202),
               **{str(s): counts.get(str(s), 0) for s in Status},
               "open": sum(n for s, n in counts.items() if s not in terminal),
               "reports_unapplied": unapplied, "reports_oldest_age_s":
                   None if oldest is None else round(oldest, 1),
               "final": sum(n for s, n in counts.items() if s in terminal),
               **{f"{q}_waiting": f.get("waiting") for q, f in queues.items()},
               **{f"{q}_oldest_age_s": f.get("oldest_age_seconds") for q, f in queues.items()},
               **{f"rss_mb_{k.replace(' ', '_')}": round(mb, 1) for k, mb in rss.items()},
               "rss_mb_total": round(sum(rss.values()), 1), **lists}
        writer.writerow(row)
        csv_file.flush()
        samples.append({"t": t, "phase": phase, "rss": rss, "queues": queues, "row": row})
        print(_line(t, phase, row["sent"], tally, counts, terminal, queues, rss,
                    (unapplied, oldest), lists), flush=True)
        return row

    next_sample = began
    while sender.is_alive():
        if time.monotonic() >= next_sample:
            sample("load")
            next_sample += SAMPLE_EVERY
        sender.join(timeout=max(0.0, min(DRAIN_POLL, next_sample - time.monotonic())))
    load_seconds = time.monotonic() - began
    sample("load")
    jobs_at_load_end = up.waiting_jobs()
    accepted = [a.request_id for a in load.answers if a.status == 202]
    drain_began = time.monotonic()
    next_sample = drain_began + SAMPLE_EVERY
    drained = False
    while time.monotonic() - drain_began < cap:
        counts = statuses.counts()
        if sum(counts.values()) >= len(accepted) and \
                not any(n for s, n in counts.items() if s not in terminal):
            drained = True
            break
        if time.monotonic() >= next_sample:
            sample("drain")
            next_sample += SAMPLE_EVERY
        time.sleep(DRAIN_POLL)
    sample("end")
    jobs_at_end = up.waiting_jobs()
    for when, jobs in (("load ended", jobs_at_load_end), ("drain ended", jobs_at_end)):
        print(f"    rq jobs waiting when the {when}: "
              + (", ".join(f"{f} {n}" for f, n in jobs.most_common()) or "none"), flush=True)
    reports = statuses.report_times()
    created, finals = statuses.created(), statuses.finals(terminal)
    counts = statuses.counts()
    return _rows(load, samples, accepted, created, finals, counts, terminal, drained,
                 seconds, rate, load_seconds, cap, time.monotonic() - drain_began, alone,
                 (jobs_at_load_end, jobs_at_end), reports)


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def _rows(load, samples, accepted, created, finals, counts, terminal, drained, seconds,
          rate, load_seconds, cap, waited, alone, jobs, reports) -> list[dict]:
    rows: list[dict] = []
    offered = int(rate * seconds)
    latencies = sorted(a.seconds * 1000 for a in load.answers)
    tally = load.tally()
    late = max((a.late for a in load.answers), default=0.0)
    others = ", ".join(f"{code} {n}" for code, n in sorted(tally.items(), key=str)
                       if code != 202) or "none"
    rows.append({
        "name": f"soak: {rate:g} medicine req/s for {seconds:g} s on `gateway up`, accepted",
        "value": f"{len(accepted)} of {offered} accepted; p50 {_quantile(latencies, 50):.0f} "
                 f"ms, p99 {_quantile(latencies, 99):.0f} ms",
        "baseline": f"{len(load.answers) / load_seconds:.1f} req/s offered of {rate:g} "
                    f"(sent over {load_seconds:.0f} s)",
        "ratio": len(accepted) / offered if offered else None, "target": "all accepted",
        "met": len(accepted) == offered,
        "notes": f"other answers: {others}; the latest send {late:.2f} s after its due time; "
                 "ports are free ones, the demo test key's rate limit is raised (by "
                 "default 10 a second) and quiet hours are off (so every hour of the day "
                 "sends the same notices), otherwise the repository's config as `gateway "
                 "up` uses it"})

    ids = set(accepted)
    missing = len(ids - set(created))
    open_ = {s: n for s, n in counts.items() if s not in terminal}
    final_at = [finals[i] for i in ids if i in finals]
    last_answer = max((a.sent + a.seconds for a in load.answers), default=load.finished)
    drain = max(0.0, max(final_at) - last_answer) if final_at and drained else None
    rides = sorted(finals[i] - created[i] for i in ids if i in finals and i in created)
    value = (f"{drain:.0f} s; {len(final_at)} of {len(accepted)} final" if drain is not None
             else f"not drained after {waited:.0f} s (cap {cap:.0f} s): "
                  f"{len(final_at)} of {len(accepted)} final, open "
                  + ", ".join(f"{s} {n}" for s, n in sorted(open_.items())))
    rows.append({
        "name": "soak: drain, from the last request to the last one final",
        "value": value,
        "baseline": "one request alone before the load: accepted to final in "
                    + ("more than 180 s" if alone is None else f"{alone:.0f} s"),
        "ratio": drain / alone if drain is not None and alone else None,
        "target": f"≤ {TARGET_DRAIN:.0f} s, all final",
        "met": drain is not None and drain <= TARGET_DRAIN and not missing,
        "notes": f"accepted to final for every request: p50 {_quantile(rides, 50):.0f} s, p99 "
                 f"{_quantile(rides, 99):.0f} s, max {max(rides, default=float('nan')):.0f} s; "
                 f"final statuses "
                 + ", ".join(f"{s} {n}" for s, n in sorted(counts.items()) if s in terminal)
                 + f"; answered 202 but not stored: {missing}; simulators step 3 s (the "
                   "`gateway simulator run` default `gateway up` uses: a GO-SEND booking "
                   "goes from confirmed to delivered in 5 steps)"})

    end = load.finished
    load_began = min((a.sent for a in load.answers), default=end - seconds)
    received_during = sum(1 for r, _a in reports if load_began <= r <= end)
    applied_during = sum(1 for _r, a in reports if a and load_began <= a <= end)
    window = min(60.0, seconds / 3)
    accepted_last = sum(1 for i in ids if i in created and end - window <= created[i] <= end)
    final_last = sum(1 for t in final_at if end - window <= t <= end)
    keeps_up = final_last / accepted_last if accepted_last else float("nan")
    rows.append({
        "name": f"soak: finishing vs accepting, last {window:.0f} s of load",
        "value": f"{final_last / window:.1f} final/s", "baseline":
            f"{accepted_last / window:.1f} accepted/s", "ratio": keeps_up,
        "target": f"≥ {TARGET_KEEPS_UP:.2f}×", "met": keeps_up >= TARGET_KEEPS_UP,
        "notes": f"provider reports over the load ({end - load_began:.0f} s): "
                 f"{received_during / (end - load_began):.0f} received/s, "
                 f"{applied_during / (end - load_began):.0f} applied/s; "
                 f"{len(reports)} stored in all, the last applied "
                 f"{max((a for _r, a in reports if a), default=end) - end:.0f} s after the "
                 "load"})

    # Memory is compared once the finished jobs' results kept in Redis (RESULT_TTL) have
    # reached their steady state: before that Redis grows by design, not by a leak.
    warm = max(min(30.0, seconds / 6), min(RESULT_TTL + 30.0, seconds - 2 * window))
    during = [s for s in samples if s["phase"] == "load"]
    first_window = [s for s in during if warm <= s["t"] <= warm + window]
    last_window = [s for s in during if load_seconds - window <= s["t"]]
    for kind in sorted({k for s in samples for k in s["rss"]}):
        before = _mean([s["rss"][kind] for s in first_window if kind in s["rss"]])
        after = _mean([s["rss"][kind] for s in last_window if kind in s["rss"]])
        peak_rss = max(s["rss"].get(kind, 0.0) for s in samples)
        ratio = after / before if before else float("nan")
        rows.append({
            "name": f"soak: RSS of {kind}, last {window:.0f} s of load vs first after warm-up",
            "value": f"{after:.0f} MB (peak {peak_rss:.0f}, "
                     f"{samples[-1]['rss'].get(kind, 0.0):.0f} at the end)",
            "baseline": f"{before:.0f} MB ({warm:.0f}-{warm + window:.0f} s)",
            "ratio": ratio, "target": f"≤ {TARGET_FLAT:.2f}×", "met": ratio <= TARGET_FLAT,
            "notes": ""})
    rows[-1]["notes"] = (f"RSS summed over the processes of a kind, sampled every "
                         f"{SAMPLE_EVERY:.0f} s ({len(first_window)} samples in the first "
                         f"window, {len(last_window)} in the last)")

    def peak(selected, figure):
        return max((q.get(figure) or 0 for s in selected for q in s["queues"].values()),
                   default=0)

    age_limit = TARGET_DRAIN
    end_queues = samples[-1]["queues"]
    rows.append({
        "name": "soak: queued work, peak waiting and oldest age, last minute of load",
        "value": f"{peak(last_window, 'waiting')} waiting, oldest "
                 f"{peak(last_window, 'oldest_age_seconds'):.0f} s",
        "baseline": f"{peak(first_window, 'waiting')} waiting, oldest "
                    f"{peak(first_window, 'oldest_age_seconds'):.0f} s after warm-up",
        "ratio": None, "target": f"oldest ≤ {age_limit:.0f} s (jobs.max_queue_age_seconds)",
        "met": peak(samples, "oldest_age_seconds") <= age_limit,
        "notes": f"`/readyz` over the whole run: peak {peak(samples, 'waiting')} waiting, "
                 f"oldest {peak(samples, 'oldest_age_seconds'):.0f} s; when the drain ended: "
                 + (", ".join(f"{name} {q.get('waiting')} waiting, oldest "
                              f"{q.get('oldest_age_seconds') or 0:.0f} s"
                              for name, q in sorted(end_queues.items()) if q.get("waiting"))
                    or "nothing waiting")
                 + f"; reports stored and not applied (the database): peak "
                   f"{max(s['row']['reports_unapplied'] for s in samples)}, oldest "
                   f"{max(s['row']['reports_oldest_age_s'] or 0 for s in samples):.0f} s, "
                   f"{samples[-1]['row']['reports_unapplied']} at the end; rq jobs waiting "
                   + "; ".join(f"when the {when}: "
                               + (", ".join(f"{f} {n}" for f, n in found.most_common())
                                  or "none")
                               for when, found in zip(("load ended", "drain ended"), jobs,
                                                      strict=True))})
    return rows
