"""Run the benchmarks and print the ratio table:
``bench/run [ingest dispatch latency growth day upload]``.

Every figure is compared with a baseline measured in the same run on the same machine
(these machines are shared and noisy; absolute times mislead). The run starts its own
Redis, PostgreSQL cluster (when the server binaries are installed; otherwise SQLite, and the
growth benchmark is skipped), courier simulators, API nodes and workers on 127.0.0.1, and
stops them all. The table is printed and written to ``bench/RESULTS.md``.

``day`` ("a day in Banyuwangi", ``bench/day.py``) replays a busy synthetic service day twice,
with providers failing at realistic rates and with ideal providers, on a gateway, database and
simulators of its own, and reports the SLA shares of the first as ratios to the second.

``upload`` (``bench/upload.py``) takes a 5,000-row spreadsheet from the upload to every request
made, against 5,000 API calls and against a 500-row file (time and peak memory);
``BENCH_UPLOAD_ROWS`` (default 5000) changes the size.

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

from . import breakdown, day, dispatch, growth, ingest, latency, upload
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
    logging.getLogger("werkzeug").setLevel(logging.WARNING)   # the simulator's access log
    seconds = int(os.environ.get("BENCH_SECONDS", "10"))
    rows: list[dict] = []
    started = time.monotonic()
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        redis = EmbeddedRedis(workdir / "redis", port=free_port(), binary=redis_binary())
        redis_url = redis.start()
        stack.callback(redis.stop)
        database, postgres = "SQLite", None
        if Postgres._bin_dir() is not None:
            postgres = Postgres(workdir)
            database_url = postgres.start()
            stack.callback(postgres.stop)
            database = "PostgreSQL"
        else:
            database_url = f"sqlite:///{workdir / 'bench.db'}"
        sim = Simulator()
        stack.callback(sim.stop)
        setup = Gateway(workdir, database_url, redis_url, sim.url, stack)
        print(f"benchmarks on {os.cpu_count()} cores, {database}, Redis {redis_url}",
              flush=True)
        node = None
        for name in chosen:
            print(f"==> {name}", flush=True)
            if name == "breakdown":
                rows += breakdown.run(setup, database)
                if postgres:
                    embedded = Gateway(workdir, f"sqlite:///{workdir / 'breakdown.db'}",
                                       redis_url, sim.url, stack, name="sqlite")
                    rows += breakdown.run(embedded, "SQLite")
            elif name == "ingest":
                bare = ingest.baseline(setup, stack, seconds)
                if postgres:
                    rows.append(ingest.run_postgres(setup, stack, seconds, bare,
                                                    [postgres.pid(), redis.process.pid]))
                from . import soak
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
            elif name in ("dispatch", "latency", "growth"):
                node = node or setup.serve(workers=2)
                if name == "dispatch":
                    rows += dispatch.run(setup, node, sim, redis_url)
                elif name == "latency":
                    rows += latency.run(setup, node,
                                        int(os.environ.get("BENCH_LATENCY_SECONDS", "60")))
                elif database == "PostgreSQL":
                    rows += growth.run(setup, node, int(os.environ.get("BENCH_ROWS",
                                                                       "1000000")))
                else:
                    print("growth skipped: it needs PostgreSQL", flush=True)
            else:
                raise SystemExit(f"unknown benchmark {name!r}; choose from {', '.join(ALL)}")
            print(table(rows[-1:]).splitlines()[2] if rows else "", flush=True)
    report = table(rows)
    header = (f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores "
              f"({platform.machine()}, Python {platform.python_version()}), {database}, "
              f"in {time.monotonic() - started:.0f} s: `bench/run {' '.join(chosen)}`.")
    print("\n" + header + "\n\n" + report)
    RESULTS.write_text(RESULTS_INTRO + header + "\n\n" + report + "\n")
    return 0


RESULTS_INTRO = """# Benchmark results

The last run of `bench/run` (written by it). Every figure is set against a baseline measured
in the same run on the same machine; the ratio is what to compare between runs and machines.

"""

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
