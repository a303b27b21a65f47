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
            """Redis, a database, the simulator and a gateway setup, for the benchmarks
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
                database_url = postgres.start()
                stack.callback(postgres.stop)
                database = "PostgreSQL"
            else:
                database_url = f"sqlite:///{workdir / 'bench.db'}"
            sim = Simulator()
            stack.callback(sim.stop)
            shared.update(redis=redis, redis_url=redis_url, postgres=postgres, sim=sim, node=None,
                          setup=Gateway(workdir, database_url, redis_url, sim.url, stack))
            print(f"benchmarks on {os.cpu_count()} cores, {database}, Redis {redis_url}",
                  flush=True)
            return shared

        for name in chosen:
            print(f"==> {name}", flush=True)
            if name == "soak":
                soak_dir = Path(tempfile.mkdtemp(prefix="bench-soak-"))   # kept: its CSV
                with ExitStack() as soak_stack:
                    soak_rows += soak.run(soak_dir, soak_stack)
                print(table(soak_rows).split("\n\n")[0], flush=True)
                print(f"    kept: {soak_dir} (soak.csv, gateway-up.log, data/)", flush=True)
                continue
            s = setup_shared()
            setup, redis_url, postgres = s["setup"], s["redis_url"], s["postgres"]
            if name == "breakdown":
                rows += breakdown.run(setup, database)
                if postgres:
                    embedded = Gateway(workdir, f"sqlite:///{workdir / 'breakdown.db'}",
                                       redis_url, s["sim"].url, stack, name="sqlite")
                    rows += breakdown.run(embedded, "SQLite")
            elif name == "ingest":
                bare = ingest.baseline(setup, stack, seconds)
                if postgres:
                    rows.append(ingest.run_postgres(setup, stack, seconds, bare,
                                                    [postgres.pid(), s["redis"].process.pid]))
                with soak.Up(workdir / "ingest-up") as up:
                    rows.append(ingest.run_embedded(up, seconds, bare))
            elif name == "upload":
                rows += upload.run(setup)
            elif name == "day":
                day_database = postgres.create_database("gateway_day") if postgres \
                    else f"sqlite:///{workdir / 'day.db'}"
                # Its own Redis database too: its circuits and queues are its own.
                day_redis = redis_url[:-2] + "/3" if redis_url.endswith("/0") else redis_url
                rows += day.run(workdir, stack, day_database, day_redis)
            else:
                node = s["node"] = s["node"] or setup.serve(workers=2)
                if name == "dispatch":
                    rows += dispatch.run(setup, node, s["sim"], redis_url)
                elif name == "latency":
                    rows += latency.run(setup, node,
                                        int(os.environ.get("BENCH_LATENCY_SECONDS", "60")))
                elif database == "PostgreSQL":
                    rows += growth.run(setup, node, int(os.environ.get("BENCH_ROWS",
                                                                       "1000000")))
                else:
                    print("growth skipped: it needs PostgreSQL", flush=True)
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
