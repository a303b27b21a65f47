"""Run the benchmarks and print the ratio table:
``bench/run [ingest dispatch latency growth day upload soak]`` (all but ``soak`` by default).

Every figure is compared with a baseline measured in the same run on the same machine
(these machines are shared and noisy; absolute times mislead). The run starts its own
Redis, PostgreSQL cluster (when the server binaries are installed; otherwise SQLite, and the
growth benchmark is skipped), courier simulators, API nodes and workers on 127.0.0.1, and
stops them all. The table is printed and written at the top of ``bench/RESULTS.md`` (with
the notes under it, the previous run's gone); the ``## `` sections below it stay.

``day`` ("a day in Banyuwangi", ``bench/day.py``) replays a busy synthetic service day twice,
with providers failing at realistic rates and with ideal providers, on a gateway, database and
simulators of its own, and reports the SLA shares of the first as ratios to the second.

``upload`` (``bench/upload.py``) takes a 5,000-row spreadsheet from the upload to every request
made, against 5,000 API calls and against a 500-row file (time and peak memory);
``BENCH_UPLOAD_ROWS`` (default 5000) changes the size.

``soak`` (``bench/soak.py``) starts ``gateway up`` as a new user gets it (SQLite, its own
Redis, its own simulators, two workers), sends it a steady 20 medicine requests a second for
5 minutes and waits until every accepted one is final, sampling requests by status, queues
and every process's memory every 10 s (printed, and kept in a CSV). Its table goes to a
section of its own in ``bench/RESULTS.md``, and only from a full run (``BENCH_SOAK_SECONDS``
of 300 or more; ``BENCH_SOAK_SECONDS=60`` is the short mode for trying).

Environment: ``BENCH_SECONDS`` (wrk duration, default 10), ``BENCH_LATENCY_SECONDS``
(default 60), ``BENCH_ROWS`` (growth, default 1000000), ``BENCH_DAY_SECONDS`` (real seconds
one replayed day takes before its drain, default 300), ``BENCH_DAY_SCALE`` (the day's volume,
default 1: the full day's 1,300 requests; see ``bench/day.py``), ``BENCH_DAY_SEED``
(default 2026).
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from redis import Redis

from . import breakdown, day, dispatch, growth, ingest, latency, soak, upload
from .servers import Gateway, Postgres, Simulator, free_port

ALL = ("breakdown", "ingest", "dispatch", "latency", "growth", "day", "upload")
RESULTS = Path(__file__).parent / "RESULTS.md"


def table(rows: list[dict]) -> str:
    lines = ["| benchmark | measured | baseline (same run) | ratio | target | met |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        if row["ratio"] is None or row["ratio"] != row["ratio"]:   # no ratio, or NaN
            ratio = "—"
        elif row["name"].startswith("latency"):
            ratio = f"{row['ratio']:.1%}"
        else:
            ratio = f"{row['ratio']:.2f}×"
        lines.append(f"| {row['name']} | {row['value']} | {row['baseline']} | {ratio} | "
                     f"{row['target']} | {'yes' if row['met'] else '**no**'} |")
    notes = [f"* {row['name'].split(':')[0]}: {row['notes']}" for row in rows if row["notes"]]
    return "\n".join(lines + [""] + notes)


def main(chosen: list[str]) -> int:
    from gateway.redis_server import EmbeddedRedis, redis_binary

    chosen = chosen or list(ALL)
    unknown = [name for name in chosen if name not in (*ALL, "soak")]
    if unknown:
        raise SystemExit(f"unknown benchmark {unknown[0]!r}; choose from "
                         f"{', '.join((*ALL, 'soak'))}")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)   # the simulator's access log
    seconds = int(os.environ.get("BENCH_SECONDS", "10"))
    rows: list[dict] = []
    soak_rows: list[dict] = []
    started = time.monotonic()
    database = "SQLite"
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        shared: dict = {}

        def setup_shared() -> dict:
            """Redis, a PostgreSQL cluster (or SQLite) and the simulator, for the benchmarks
            that share them (``soak`` starts a whole ``gateway up`` of its own)."""
            nonlocal database
            if shared:
                return shared
            redis = EmbeddedRedis(workdir / "redis", port=free_port(), binary=redis_binary())
            redis_url = redis.start()
            stack.callback(redis.stop)
            postgres = None
            if Postgres._bin_dir() is not None:
                postgres = Postgres(workdir)
                postgres.start()
                stack.callback(postgres.stop)
                database = "PostgreSQL"
            sim = Simulator()
            stack.callback(sim.stop)
            shared.update(redis=redis, redis_url=redis_url, postgres=postgres, sim=sim)
            print(f"benchmarks on {os.cpu_count()} cores, {database}, Redis {redis_url}",
                  flush=True)
            return shared

        def own_database(name: str) -> str:
            """A database of its own for benchmark ``name``, and Redis emptied: what one
            benchmark leaves (requests never dispatched, queued jobs) is never the next
            one's load."""
            s = setup_shared()
            Redis.from_url(s["redis_url"]).flushdb()
            if s["postgres"]:
                return s["postgres"].create_database(f"gateway_{name}")
            return f"sqlite:///{workdir / f'{name}.db'}"

        for name in chosen:
            print(f"==> {name}", flush=True)
            if name == "soak":
                soak_dir = Path(tempfile.mkdtemp(prefix="bench-soak-"))   # kept: its CSV
                with ExitStack() as soak_stack:
                    soak_rows += soak.run(soak_dir, soak_stack)
                print(table(soak_rows).split("\n\n")[0], flush=True)
                print(f"    kept: {soak_dir} (soak.csv, gateway-up.log, data/)", flush=True)
                continue
            with ExitStack() as bench_stack:
                rows += run_one(name, setup_shared(), own_database(name), workdir, seconds,
                                bench_stack)
            print(table(rows[-1:]).splitlines()[2] if rows else "", flush=True)
    machine = (f"on {os.cpu_count()} cores ({platform.machine()}, Python "
               f"{platform.python_version()})")
    if rows:
        report = table(rows)
        header = (f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC {machine}, {database}, "
                  f"in {time.monotonic() - started:.0f} s: "
                  f"`bench/run {' '.join(n for n in chosen if n != 'soak')}`.")
        print("\n" + header + "\n\n" + report)
        kept = _sections(RESULTS.read_text())   # the soak's and the hand-written ones stay
        RESULTS.write_text(RESULTS_INTRO + header + "\n\n" + report + "\n"
                           + ("\n" + kept.rstrip("\n") + "\n" if kept else ""))
    if soak_rows:
        soak_seconds = float(os.environ.get("BENCH_SOAK_SECONDS", "300"))
        header = (f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC {machine}, `gateway up` "
                  f"(SQLite, its own Redis, two workers), {soak_seconds:g} s of load: "
                  f"`bench/run soak`.")
        report = table(soak_rows)
        print("\n" + header + "\n\n" + report)
        if soak_seconds >= SOAK_FULL_SECONDS:
            RESULTS.write_text(with_soak(RESULTS.read_text(),
                                         f"{SOAK_HEADING}\n\n{header}\n\n{report}\n"))
        else:
            print(f"\n(a short soak, {soak_seconds:g} s: bench/RESULTS.md left as it is)")
    return 0


def run_one(name: str, shared: dict, database_url: str, workdir: Path, seconds: int,
            bench_stack: ExitStack) -> list[dict]:
    """The rows of benchmark ``name`` on ``database_url``, a database of its own; ``shared``:
    the run's Redis, PostgreSQL (or None) and simulator. Its processes stop with
    ``bench_stack``."""
    redis_url, postgres = shared["redis_url"], shared["postgres"]
    database = "PostgreSQL" if postgres else "SQLite"
    if name == "day":   # a gateway of its own, and a Redis database of its own too
        day_redis = redis_url[:-2] + "/3" if redis_url.endswith("/0") else redis_url
        return day.run(workdir, bench_stack, database_url, day_redis)
    setup = Gateway(workdir, database_url, redis_url, shared["sim"].url, bench_stack, name=name)
    bench_stack.callback(setup.gateway.db.dispose)
    if name == "breakdown":
        rows = breakdown.run(setup, database)
        if postgres:
            embedded = Gateway(workdir, f"sqlite:///{workdir / 'breakdown.db'}", redis_url,
                               shared["sim"].url, bench_stack, name="sqlite")
            rows += breakdown.run(embedded, "SQLite")
        return rows
    if name == "ingest":
        bare = ingest.baseline(setup, bench_stack, seconds)
        rows = []
        if postgres:
            rows.append(ingest.run_postgres(setup, bench_stack, seconds, bare,
                                            [postgres.pid(), shared["redis"].process.pid]))
        with soak.Up(workdir / "ingest-up") as up:
            rows.append(ingest.run_embedded(up, seconds, bare))
        return rows
    if name == "upload":
        return upload.run(setup)
    if name == "growth" and not postgres:
        print("growth skipped: it needs PostgreSQL", flush=True)
        return []
    node = setup.serve(workers=2)
    if name == "dispatch":
        return dispatch.run(setup, node, shared["sim"], redis_url)
    if name == "latency":
        return latency.run(setup, node, int(os.environ.get("BENCH_LATENCY_SECONDS", "60")))
    return growth.run(setup, node, int(os.environ.get("BENCH_ROWS", "1000000")))


SOAK_FULL_SECONDS = 300
SOAK_HEADING = "## Soak: a steady load on the embedded default (`bench/run soak`)"


def with_soak(text: str, section: str) -> str:
    """``text`` with its soak section replaced by ``section`` (added at the end if none)."""
    old = _soak_section(text)
    if not old:
        return text.rstrip("\n") + "\n\n" + section
    return text.replace(old, section + ("\n" if old.endswith("\n\n") else ""))


def _sections(text: str) -> str:
    """Everything of ``RESULTS.md`` from its first ``## `` heading on: the soak's section and
    the runs written up by hand (kept when a run rewrites the table at the top; the notes
    under that table are about the run it replaces, and go with it)."""
    begin = text.find("\n## ")
    return "" if begin < 0 else text[begin + 1:]


def _soak_section(text: str) -> str:
    """The soak's section of ``RESULTS.md`` (from its heading to the next one or the end),
    kept when the other benchmarks rewrite the file and replaced by a full soak run."""
    begin = text.find(SOAK_HEADING)
    if begin < 0:
        return ""
    following = text.find("\n## ", begin + len(SOAK_HEADING))
    return text[begin:] if following < 0 else text[begin:following + 1]


RESULTS_INTRO = """# Benchmark results

The last run of `bench/run` (written by it). Every figure is set against a baseline measured
in the same run on the same machine; the ratio is what to compare between runs and machines.

"""

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
