"""Serving the API with gunicorn: processes of threads (``gthread``), so that the requests a
process serves at once can be stored together (``gateway.group_commit``).

The app is built once in the master and inherited by the workers (``preload_app``), so a bad
configuration stops ``gateway serve`` before any worker starts; database connections are
re-opened in each worker after the fork (see ``gateway.db``).

Before forking, the master points metrics at the machine's shared directory (so ``/metrics``
adds up every worker: ``gateway.metrics``) and sends every log line, gunicorn's own
included, through the gateway's format (``gateway.logs``). gunicorn's access log is off: the
gateway logs each request itself, with its route and correlation id.
"""

from __future__ import annotations

from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger

from .logs import ContextFilter, configure_logging, make_formatter
from .metrics import process_ended, use_multiprocess_dir


class GatewayServer(BaseApplication):
    def __init__(self, app, options: dict):
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return self.application


def gunicorn_logger(log_format: str) -> type[Logger]:
    """gunicorn's logger, its lines (start, workers booting and exiting) in ``log_format``."""

    class GatewayGunicornLogger(Logger):
        def setup(self, cfg):
            super().setup(cfg)  # runs again on reload (HUP): the handlers are new each time
            for handler in self.error_log.handlers:
                handler.setFormatter(make_formatter(log_format))
                handler.addFilter(ContextFilter())

    return GatewayGunicornLogger


def _child_exit(_server, worker) -> None:
    process_ended(worker.pid)


def serve(app, *, workers: int = 2, threads: int = 1) -> None:
    settings = app.extensions["gateway"].settings
    configure_logging(settings, process=True)
    use_multiprocess_dir(settings["data_dir"])
    GatewayServer(app, {
        "bind": f"{settings['host']}:{settings['port']}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        # A threaded worker takes few more connections than it has threads (one more keeps
        # keep-alive on): with keep-alive, the first worker to wake took every connection of
        # a client pool and kept it, and the other processes sat idle (measured: 87 % and 3 %
        # CPU under 16 connections).
        "worker_connections": threads + 1,
        "preload_app": True,
        "timeout": 30,
        "graceful_timeout": 10,
        "accesslog": None,
        "loglevel": settings["log_level"].lower(),
        "logger_class": gunicorn_logger(settings["log_format"]),
        "child_exit": _child_exit,
        # gunicorn's control socket lives at one path per user; several gateways would share it.
        "control_socket_disable": True,
    }).run()
