"""Ingest: the whole create path (auth, validation, store, audit, notice, enqueue) against a
bare Flask JSON endpoint, at 16 connections, with the CPU each durable create costs.

Two setups, each against the same baseline measured in the same run:

* **PostgreSQL**: ``gateway serve`` as deployed (2 processes of 8 threads: each process's
  writer stores the requests that arrive together in one transaction, ``gateway.group_commit``)
  on the run's PostgreSQL and Redis, no worker;
* **the embedded default** (``embedded``): ``gateway up`` as ``scripts/run`` starts it (SQLite,
  its own Redis, the sandbox simulators and a worker dispatching while the load runs), with
  the demo agency's key (its rate limit raised: a test key may send 10 a second by default).

The baseline is ``bench/bare.py`` under gunicorn's sync workers, 2 processes: the fastest way
this machine serves a Flask JSON view (threads cost the bare view more than they give it).
CPU per create is the CPU time the serving processes (and, on PostgreSQL, the database's and
Redis's) spent during the measured seconds, over the creates answered 202.
"""

from __future__ import annotations

import psutil

from .load import wrk_post
from .servers import gunicorn

CONNECTIONS = 16
PATH = "/api/v1/services/medicine_delivery/requests"


def cpu_seconds(pids) -> float:
    """CPU time used so far by the processes ``pids`` and all their descendants (each
    counted once)."""
    processes: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            root = psutil.Process(pid)
            for process in [root, *root.children(recursive=True)]:
                processes.setdefault(process.pid, process)
        except psutil.NoSuchProcess:
            continue
    total = 0.0
    for process in processes.values():
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def measured_load(url: str, path: str, body: dict, headers: dict, seconds: int, workdir,
                  unique: str | None, pids) -> dict:
    """wrk at 16 connections (after a 2 s warm-up), with the CPU ``pids`` spent per 2xx."""
    wrk_post(url, path, body, headers, 2, CONNECTIONS, workdir, unique)
    before = {name: cpu_seconds(group) for name, group in pids.items()}
    result = wrk_post(url, path, body, headers, seconds, CONNECTIONS, workdir, unique)
    answered = max(1, round(result["rps"] * seconds) - result["non_2xx"])
    result["cpu_ms"] = {name: (cpu_seconds(group) - before[name]) * 1000 / answered
                        for name, group in pids.items()}
    return result


def baseline(setup, stack, seconds: int) -> dict:
    from plugins.medicine_delivery.service import EXAMPLE

    url, process = gunicorn("bench.bare:app", 2, stack, setup.log)
    return measured_load(url, "/ping", EXAMPLE, {}, seconds, setup.workdir, None,
                         {"server": [process.pid]})


def _described(result: dict) -> str:
    cpu = result["cpu_ms"]
    parts = ", ".join(f"{name} {ms:.2f}" for name, ms in cpu.items())
    return (f"{result['rps']:.0f} req/s, p50 {result['p50']:.1f} ms, p99 {result['p99']:.1f} ms; "
            f"CPU {sum(cpu.values()):.2f} ms per create ({parts})")


def _row(setup_name: str, measured: dict, bare: dict, target: str, met: bool) -> dict:
    """A table row: the create path of ``setup_name`` against the bare endpoint."""
    return {
        "name": f"ingest ({setup_name}): create path vs bare Flask endpoint",
        "value": _described(measured),
        "baseline": _described(bare).replace("per create", "per call"),
        "ratio": measured["rps"] / bare["rps"],
        "target": target,
        "met": met,
        "notes": f"{setup_name}: non-2xx answers: {measured['non_2xx']}",
    }


def run_postgres(setup, stack, seconds: int, bare: dict, server_pids: list[int]) -> dict:
    from plugins.medicine_delivery.service import EXAMPLE

    url, process = setup.serve_process(workers=2)
    measured = measured_load(url, PATH, EXAMPLE, {"Authorization": f"Bearer {setup.key}"},
                             seconds, setup.workdir, "prescription_id",
                             {"API": [process.pid], "PostgreSQL and Redis": server_pids})
    ratio = measured["rps"] / bare["rps"]
    return _row("PostgreSQL: gateway serve 2×8 threads; bare: gunicorn 2 sync; 16 conns",
                measured, bare, "≥ 0.21× (goal 0.5×)", ratio >= 0.21)


def run_embedded(up, seconds: int, bare: dict) -> dict:
    """``up``: a started ``gateway up`` (``bench.soak.Up``)."""
    from plugins.medicine_delivery.service import EXAMPLE

    measured = measured_load(up.url, PATH, EXAMPLE, {"Authorization": f"Bearer {up.key}"},
                             seconds, up.workdir, "prescription_id",
                             {"API": up.pids("api"), "worker, Redis, simulators":
                              up.pids("worker", "redis", "simulators")})
    ratio = measured["rps"] / bare["rps"]
    return _row("embedded default: gateway up, SQLite, a worker dispatching; 16 conns",
                measured, bare, "≥ 0.2× and p99 ≤ 50 ms",
                ratio >= 0.2 and measured["p99"] <= 50)
