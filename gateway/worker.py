"""Running rq workers inside the gateway app, with the sweep beside them.

The default is rq's ``SimpleWorker`` (jobs run in the worker process: about three times the
throughput of forking a child per job on this hardware); ``--fork`` gives rq's forking
``Worker`` for isolation. Scale by running more ``gateway worker`` processes, here or on other
machines: they share only Redis and the database.

A worker process sends its log lines, rq's included, through the gateway's format
(``gateway.logs``) and counts its jobs and provider calls in the machine's metrics directory,
where the ``/metrics`` of an API node on the same machine adds them up (``gateway.metrics``).
"""

from __future__ import annotations

import threading

from redis import Redis
from rq import Queue, SimpleWorker, Worker

from .logs import configure_logging
from .metrics import use_multiprocess_dir
from .queues import QueueNames
from .sweep import run_forever


def worker_connection(gateway) -> Redis:
    # No socket timeout: a worker blocks on Redis for minutes waiting for work, on purpose.
    return Redis.from_url(gateway.redis_url)


def run_worker(app, *, burst: bool = False, fork: bool = False, sweep: bool = True,
               queues: list[str] | None = None, with_scheduler: bool = True) -> bool:
    """Work the queues until stopped (or, with ``burst``, until they are empty)."""
    gateway = app.extensions["gateway"]
    configure_logging(gateway.settings, process=True)
    use_multiprocess_dir(gateway.settings["data_dir"])
    connection = worker_connection(gateway)
    names = queues or QueueNames.all()
    stop = threading.Event()
    if sweep and not burst:
        threading.Thread(target=run_forever, args=(app, stop), name="gateway-sweep",
                         daemon=True).start()
    worker_class = Worker if fork else SimpleWorker
    try:
        with app.app_context():
            worker = worker_class([Queue(n, connection=connection) for n in names],
                                  connection=connection,
                                  worker_ttl=gateway.settings["jobs"]["worker_ttl"])
            return worker.work(burst=burst, with_scheduler=with_scheduler,
                               logging_level=gateway.settings["log_level"])
    finally:
        stop.set()
