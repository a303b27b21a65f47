"""Log lines: one JSON object per line for a log collector, or plain text for a terminal.

Every line says which unit of work wrote it: the correlation id the API took from
``X-Correlation-ID`` (or made up) follows a request into its jobs, their provider calls and
the agency's callbacks (``gateway.context``), so one search finds all of a request's lines
whichever process wrote them. Lines also carry the request id, the job kind and the courier
where they are known.

Lines carry ids, names, statuses and timings, never personal data or secrets: the gateway's
code logs no payloads, and this module adds only the fields named in :data:`EXTRA_FIELDS`
and the context variables. ``log_format`` (``GATEWAY_LOG_FORMAT``) chooses ``json``
(production) or ``text`` (the default, for people).
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from datetime import UTC, datetime

from flask import Flask, g, request

from . import context

#: fields that a log call may pass with ``extra=`` and that a JSON line then carries
EXTRA_FIELDS = ("courier", "operation", "outcome", "duration_ms", "method", "route", "path",
                "status")
#: the unit of work, from ``gateway.context``: on every line that has one
CONTEXT_FIELDS = {"correlation_id": context.correlation_id, "request_id": context.request_id,
                  "job_kind": context.job_kind}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s"
#: marks the handlers this module installed, so configuring again replaces them
_MARK = "gateway_log_handler"


class ContextFilter(logging.Filter):
    """Stamp each record with the current unit of work (unless the call passed its own)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, variable in CONTEXT_FIELDS.items():
            if getattr(record, name, None) is None:
                setattr(record, name, variable.get())
        known = [(name, getattr(record, name, None)) for name in (*CONTEXT_FIELDS, "courier")]
        record.context = "".join(f" {name}={value}" for name, value in known if value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp (UTC, ISO 8601), level, logger, message, the
    unit of work, the known extra fields, and the traceback of a logged exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in (*CONTEXT_FIELDS, *EXTRA_FIELDS):
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each line (as logging's own
    last-resort handler does), so a stream replaced later (pytest, click) is followed."""

    def __init__(self):
        logging.Handler.__init__(self)

    @property
    def stream(self):
        return sys.stderr


def make_formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def make_handler(log_format: str, stream=None) -> logging.Handler:
    """A handler in ``log_format`` that stamps the unit of work on each record.

    :param stream: where to write; default: the current ``sys.stderr``
    """
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(make_formatter(log_format))
    handler.addFilter(ContextFilter())
    setattr(handler, _MARK, True)
    return handler


def configure_logging(settings, *, process: bool = False, stream=None) -> logging.Handler:
    """Send the gateway's log lines through one handler in the configured format.

    Idempotent: a handler installed by an earlier call is replaced, so a process (or a test
    session) may build many apps. ``create_app`` configures the ``gateway`` logger only,
    leaving the rest of the process alone; a process that the gateway owns (``gateway
    serve``, ``gateway worker``) passes ``process=True`` to configure the root logger
    instead, so rq's and the libraries' lines come out in the same format (rq adds no handler
    of its own when one is there).

    :param settings: the core settings (``log_format``, ``log_level``)
    :param stream: where to write; default: the current ``sys.stderr``
    """
    handler = make_handler(settings["log_format"], stream)
    gateway_logger, root = logging.getLogger("gateway"), logging.getLogger()
    for logger in (gateway_logger, root):
        for old in [h for h in logger.handlers if getattr(h, _MARK, False)]:
            logger.removeHandler(old)
    (root if process else gateway_logger).addHandler(handler)
    gateway_logger.setLevel(settings["log_level"])
    return handler


class ThrottledLog:
    """At most one line per key every ``interval`` seconds, for what strangers can cause at
    will (refused webhooks): each line says how many it stands for, so a flood costs a few
    lines and nothing is hidden. Per process; the metrics count every occurrence.
    """

    def __init__(self, logger: logging.Logger, interval: float,
                 clock=time.monotonic):
        self.logger, self.interval, self.clock = logger, interval, clock
        self._lock = threading.Lock()
        #: key -> (when its last line was written, occurrences since then)
        self._state: dict[tuple, tuple[float, int]] = {}

    def warning(self, key: tuple, message: str, *args, **kwargs) -> bool:
        """Log ``message % args`` if this key had no line in the last ``interval`` seconds
        (saying how many occurrences the line stands for), else only count it.

        :param key: what is summed up together (keep its values few: courier and reason)
        :return: whether a line was written
        """
        now = self.clock()
        with self._lock:
            last, count = self._state.get(key, (None, 0))
            count += 1
            if last is not None and now - last < self.interval:
                self._state[key] = (last, count)
                return False
            self._state[key] = (now, 0)
        if last is None:
            self.logger.warning(f"{message} (more like it: one line every %d s)", *args,
                                self.interval, **kwargs)
        else:
            self.logger.warning(f"{message} (%d like it in the last %.0f s)", *args, count,
                                now - last, **kwargs)
        return True


# -- one line per HTTP request --------------------------------------------------------------
http_log = logging.getLogger("gateway.http")


def _mark_start():
    """When the request began (``gateway.metrics`` times requests by it too)."""
    g.request_started = time.perf_counter()


def _log_request(response):
    """The API's access line: method, path (no query string; the route for a public page,
    whose path holds its token), status, time, correlation id.

    Health checks and scrapes are logged at DEBUG: probes come every few seconds.
    """
    started = g.get("request_started")
    duration_ms = round((time.perf_counter() - started) * 1000, 1) if started else None
    rule = request.url_rule.rule if request.url_rule is not None else None
    level = logging.DEBUG if request.blueprint == "health" else logging.INFO
    view_args = request.view_args or {}
    # a public page's token is its credential: the line names the route, never the token
    path = rule if "token" in view_args else request.path
    http_log.log(level, "%s %s %s %s ms", request.method, path, response.status_code,
                 duration_ms, extra={"method": request.method, "path": path,
                                     "route": rule, "status": response.status_code,
                                     "duration_ms": duration_ms,
                                     "request_id": view_args.get("request_id")})
    return response


def _forget_correlation(_exc=None) -> None:
    """A server thread answers request after request: what it logs between two (a worker
    exiting, say) belongs to none of them."""
    context.correlation_id.set(None)


def init_app(app: Flask, settings) -> None:
    """Configure the gateway's logging and log every request the app answers."""
    configure_logging(settings)
    app.before_request(_mark_start)
    app.after_request(_log_request)
    app.teardown_request(_forget_correlation)
