"""Every text the console shows has its Bahasa Indonesia translation, and times are WIB."""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime
from pathlib import Path

from gateway.console import NAV, i18n
from gateway.console.roles import ROLES
from gateway.statuses import Status

CONSOLE = Path(i18n.__file__).parent
# _( followed by one or more adjacent string literals (Python joins "a " "b")
LITERAL = re.compile(r"""\b_\(\s*((?:(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*)+)(?=[),])""")


def console_texts() -> set[str]:
    texts = set()
    for path in [*CONSOLE.rglob("*.html"), *CONSOLE.rglob("*.py")]:
        for literals in LITERAL.findall(path.read_text()):
            texts.add(ast.literal_eval(f"({literals})"))
    texts.update(label for _endpoint, label, _action in NAV)
    texts.update(ROLES)
    texts.update(status.value for status in Status)
    return texts


def test_every_console_text_has_an_indonesian_translation():
    missing = sorted(console_texts() - set(i18n.catalog()))
    assert not missing, "add these to gateway/console/translations/*.yaml:\n" + "\n".join(
        missing)


def test_translations_keep_their_placeholders():
    for english, indonesian in i18n.catalog().items():
        assert sorted(re.findall(r"%\(\w+\)s", english)) == sorted(
            re.findall(r"%\(\w+\)s", str(indonesian))), english


def test_times_are_shown_in_wib_day_first():
    instant = datetime(2026, 11, 28, 17, 30, tzinfo=UTC)   # 00:30 the next day in Jakarta
    assert i18n.local_time(instant) == "29-11-2026 00:30 WIB"
    assert i18n.local_time(None) == "—"
