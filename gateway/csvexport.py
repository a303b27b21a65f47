"""CSV files people open in a spreadsheet: one writer for every export of the gateway.

A cell a spreadsheet would read as a formula (it starts with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return) is written with a leading apostrophe, so a citizen's comment
such as ``=HYPERLINK(...)`` stays text when an officer opens the file (OWASP's "CSV
injection"). Numbers are written as numbers, never neutralised. UTF-8 with a byte order
mark, so spreadsheet programs read Indonesian text right; ``\\r\\n`` line ends (RFC 4180).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value) -> str | int | float | Decimal:
    """``value`` as a safe cell: numbers as they are, None empty, times in ISO 8601, text
    that starts like a formula behind an apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def write(header: Sequence[str], rows: Iterable[Sequence]) -> bytes:
    """A whole CSV file: ``header`` then ``rows``, every cell through :func:`cell`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([cell(h) for h in header])
    for row in rows:
        writer.writerow([cell(v) for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")
