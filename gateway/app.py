"""The application factory."""

from __future__ import annotations

from flask import Flask, current_app
from werkzeug.middleware.proxy_fix import ProxyFix

from . import api, console, gate, logs, metrics, public
from .core import Gateway
from .settings import load_settings
from .sharedcode import TEMPLATE_CODE, SharedRule


def _refresh_config() -> None:
    """Settings changed in the console reach this node before its next request (cheap: see
    ``Gateway.refresh_config``)."""
    current_app.extensions["gateway"].refresh_config()


def create_app(config: dict | None = None, plugins=None) -> Flask:
    """Build a gateway app.

    :param config: overrides of the core settings (``database_url``, ``redis_url``, ...),
        plus optionally ``config_dir`` and ``services``/``couriers`` sections; tests use it
    :param plugins: plugin objects or modules to register instead of the installed entry
        points (the core's defaults are always registered)
    :raises gateway.settings.ConfigError: the configuration is not valid
    :raises gateway.errors.StartupError: plugins disagree (a duplicate name, ...)
    """
    config = dict(config or {})
    settings = load_settings(config.pop("config_dir", None), overrides=config)
    app = Flask("gateway", static_folder=None)
    # Templates and URL builders compiled by an earlier app of this process are reused
    # (gateway.sharedcode: tests build an app per test).
    app.url_rule_class = SharedRule
    app.jinja_options = {**app.jinja_options, "bytecode_cache": TEMPLATE_CODE}
    app.config["MAX_CONTENT_LENGTH"] = settings["api"]["max_body_bytes"]
    app.json.sort_keys = False
    logs.init_app(app, settings)
    app.extensions["gateway"] = Gateway(settings, plugins)
    metrics.init_app(app)
    app.before_request(_refresh_config)
    gate.init_app(app)
    api.init_app(app)
    console.init_app(app)
    public.init_app(app)
    if settings["trusted_proxies"]:
        # The client address (sign-in and bad-key throttling, logs) and scheme come from the
        # last N hops of X-Forwarded-For/-Proto, which our own proxies wrote; with 0 those
        # headers are ignored, so a caller cannot choose the address it is counted under.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings["trusted_proxies"],
                                x_proto=settings["trusted_proxies"])
    return app
