"""Bahasa Indonesia and English for the console, and dates in the regency's time zone.

Texts are written in English in the templates and views, wrapped in ``_()``; the Indonesian
catalog is every ``translations/*.yaml`` file merged (one file per part of the console, so
parts can be translated on their own). A text missing from the catalog shows in English,
and a test lists any that are missing. The language is the user's choice, kept on their
account; before sign-in it follows the browser, then Indonesian.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path

import yaml
from flask import g, request

from ..region import TIME_ZONE, TIME_ZONE_LABEL

LANGUAGES = {"id": "Bahasa Indonesia", "en": "English"}
DEFAULT_LANGUAGE = "id"
TRANSLATIONS = Path(__file__).parent / "translations"


@cache
def catalog() -> dict[str, str]:
    merged: dict[str, str] = {}
    for path in sorted(TRANSLATIONS.glob("*.yaml")):
        merged.update(yaml.safe_load(path.read_text()) or {})
    return merged


def current_language() -> str:
    chosen = g.get("language")
    if chosen in LANGUAGES:
        return chosen
    best = request.accept_languages.best_match(list(LANGUAGES)) if request else None
    return best or DEFAULT_LANGUAGE


def gettext(text: str, **values) -> str:
    if current_language() == "id":
        text = catalog().get(text, text)
    return text % values if values else text


def local_time(value: datetime | None, with_seconds: bool = False) -> str:
    """``28-11-2026 10:15 WIB``: day first, as read in Indonesia, in the regency's zone."""
    if value is None:
        return "—"
    fmt = "%d-%m-%Y %H:%M:%S" if with_seconds else "%d-%m-%Y %H:%M"
    return f"{value.astimezone(TIME_ZONE).strftime(fmt)} {TIME_ZONE_LABEL}"
