"""Serving the API with gunicorn (sync workers: the steadiest p99 measured on this hardware).

The app is built once in the master and inherited by the workers (``preload_app``), so a bad
configuration stops ``gateway serve`` before any worker starts; database connections are
re-opened in each worker after the fork (see ``gateway.db``).
"""

from __future__ import annotations

from gunicorn.app.base import BaseApplication


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


def serve(app, *, workers: int = 2, threads: int = 1) -> None:
    settings = app.extensions["gateway"].settings
    GatewayServer(app, {
        "bind": f"{settings['host']}:{settings['port']}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "preload_app": True,
        "timeout": 30,
        "graceful_timeout": 10,
        "accesslog": "-",
        "loglevel": settings["log_level"].lower(),
        # gunicorn's control socket lives at one path per user; several gateways would share it.
        "control_socket_disable": True,
    }).run()
