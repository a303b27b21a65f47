"""Fitting a provider's report into the inbox's columns, losing nothing.

A report's values come from the provider's JSON, and JSON can say things a column cannot
hold: PostgreSQL text holds no NUL character, a lone surrogate (``"\\ud800"``) is not UTF-8,
and ``provider_reference`` is at most 128 characters. Stored as they are, such values made
PostgreSQL fail the insert and the webhook answer 500 (the provider retries the same report
for ever, and it never lands). Refusing them would lose a genuine signed report just the same.

So each such value is fitted (NUL and unencodable characters replaced by U+FFFD, then cut to
the column's length) and the value as the provider sent it is kept beside the report, sealed
with its other details, under ``details["unfitted"]``. An event key that had to be fitted is
replaced by a digest of the original instead, so the provider's retry of the same report is
still recognised as a duplicate.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from .couriers import ProviderEvent
from .models import CourierAttempt, ProviderEventRecord

#: the report's values that have columns of their own
COLUMNS = ("event_key", "provider_reference", "our_reference", "raw_status")
#: a replacement booking id becomes an attempt's ``provider_reference``
REPLACEMENT = "new_provider_reference"


def column_length(model, name: str) -> int | None:
    return model.__table__.c[name].type.length


def fit_text(value: str, length: int | None) -> str:
    """``value`` as a column can hold it: no NUL, valid UTF-8, at most ``length`` characters."""
    text = value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    return text[:length] if length else text


def fit_event(event: ProviderEvent) -> ProviderEvent:
    """``event`` with values its inbox row can hold (see the module docstring); ``event``
    itself when it fits already."""
    unfitted: dict[str, Any] = {}
    changes: dict[str, Any] = {}
    for name in COLUMNS:
        value = getattr(event, name)
        if value is None:
            continue
        fitted = fit_text(str(value), column_length(ProviderEventRecord, name))
        if fitted != value:
            unfitted[name] = value
            changes[name] = fitted
    if "event_key" in changes:
        changes["event_key"] = "sha256:" + hashlib.sha256(
            str(event.event_key).encode("utf-8", "surrogatepass")).hexdigest()
    details = dict(event.details)
    replacement = details.get(REPLACEMENT)
    if replacement is not None and (
            not isinstance(replacement, str) or
            fit_text(replacement, column_length(CourierAttempt, "provider_reference"))
            != replacement):
        # A booking id we could not store could never be matched again: not followed.
        unfitted[REPLACEMENT] = details.pop(REPLACEMENT)
    if not unfitted:
        return event
    return dataclasses.replace(event, **changes, details={**details, "unfitted": unfitted})
