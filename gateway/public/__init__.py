"""The citizens' public pages: the tracking page ``/t/<token>`` and the satisfaction survey
``/s/<token>``. A room of its own, apart from the console and the API: it may import the
core, never ``gateway.api`` nor ``gateway.console`` [layers].

Every page is public (no sign-in: the request's random token, ``gateway.links``, is the
credential), rate-limited per client address, kept out of search engines (``X-Robots-Tag``
and ``<meta name=robots>``) and out of Referer headers, without JavaScript, Indonesian by
default with an English switch (``?lang=en``), and never shows personal data. An unknown,
malformed or expired token gets the same 404 page.
"""

from __future__ import annotations

from flask import Flask

from . import survey, tracking  # noqa: F401 - they add their routes to the blueprint
from .common import bp


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
