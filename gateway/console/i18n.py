"""Bahasa Indonesia and English for the console, through Flask-Babel; times, numbers and money
as read in the region (``gateway.region``).

Texts are written in English in the templates and views, wrapped in ``_()`` (``ngettext()``
when a count decides the form); texts that come from data (statuses, roles, settings' labels)
are listed in ``texts.py``. The Indonesian catalogue is gettext's:
``translations/id/LC_MESSAGES/messages.po``, compiled to the ``messages.mo`` beside it, which
is committed so that a fresh clone or an installed package needs no build step
(``scripts/translations`` extracts, updates and compiles; a test fails when the ``.mo`` lags
the ``.po``). A text missing from the catalogue shows in English, and a test lists any that
are missing. English needs no catalogue: it is the texts themselves.

The language is the user's choice, kept on their account; before sign-in it is the
session's choice, then the browser's, then the region's ``locale``. Times are shown in the
region's zone, day first, with the zone's abbreviation (``29-11-2026 00:30 WIB``; WITA in
Makassar, WIT in Jayapura); the API never uses any of this and stays in UTC.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import flask_babel
from flask import Flask, current_app, g, has_request_context, request

LANGUAGES = {"id": "Bahasa Indonesia", "en": "English"}
TRANSLATIONS = Path(__file__).parent / "translations"


def N_(text: str) -> str:      # noqa: N802 - gettext's own name for "mark, do not translate"
    """Mark a text of data (a status, a role) for the catalogue; translated where shown."""
    return text


def region():
    return current_app.extensions["gateway"].region


def current_language() -> str:
    """The reader's language (Flask-Babel's locale selector)."""
    chosen = g.get("language")
    if chosen in LANGUAGES:
        return chosen
    best = request.accept_languages.best_match(list(LANGUAGES)) \
        if has_request_context() else None
    return best or region().locale


def _time_zone() -> str:
    return region().zone_name


def gettext(text: str, **values) -> str:
    """``text`` in the reader's language, with ``%(name)s`` filled from ``values``.

    Plain text, never markup: templates escape it like any other value, so a translated
    message that carries a user's input cannot inject HTML.
    """
    return flask_babel.gettext(text, **values)


def ngettext(singular: str, plural: str, count: int, **values) -> str:
    """The form of ``count`` in the reader's language; ``%(num)s`` is the count, written
    as the reader writes numbers (1.234 in Indonesian, 1,234 in English)."""
    text = flask_babel.get_translations().ungettext(singular, plural, count)
    return text % {**values, "num": number(count)}


def service_title(service) -> str:
    """A service's title in the reader's language: services give their own translations
    (``Service.titles``, data of the plugin, not the console's catalogue)."""
    title = getattr(service, "title", "") or ""
    return (getattr(service, "titles", None) or {}).get(current_language(), title)


def number(value: int | float | Decimal | None, pattern: str | None = None) -> str:
    """``value`` as the reader writes numbers; ``pattern`` (CLDR's, ``#,##0.00``) fixes
    the decimals."""
    return "—" if value is None else flask_babel.format_decimal(value, format=pattern)


def money(amount: int | Decimal | None) -> str:
    """An amount in the region's currency, in whole units (``Rp 150.000``)."""
    if amount is None:
        return "—"
    return flask_babel.format_currency(amount, region().currency, "¤#,##0",
                                       currency_digits=False)


def local_time(value: datetime | None, with_seconds: bool = False) -> str:
    """``28-11-2026 10:15 WIB``: day first, as read in Indonesia, in the region's zone."""
    if value is None:
        return "—"
    pattern = "dd-MM-yyyy HH:mm:ss" if with_seconds else "dd-MM-yyyy HH:mm"
    return f"{flask_babel.format_datetime(value, pattern)} {region().zone_label(value)}"


def init_app(app: Flask) -> None:
    """Flask-Babel on ``app``: the console's catalogue, the reader's language, the region's
    zone. Jinja's own i18n extension is not installed: it would mark every translation as
    safe markup; templates get :func:`gettext` from the console instead."""
    here = app.extensions["gateway"].region
    app.config.update(BABEL_TRANSLATION_DIRECTORIES=str(TRANSLATIONS),
                      BABEL_DEFAULT_LOCALE=here.locale, BABEL_DEFAULT_TIMEZONE=here.zone_name)
    flask_babel.Babel(app, locale_selector=current_language, timezone_selector=_time_zone,
                      configure_jinja=False)
