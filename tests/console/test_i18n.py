"""Every text the console shows has its Bahasa Indonesia translation in the gettext catalogue
that Flask-Babel reads, and numbers, plurals and times are written as the reader reads them."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from gateway.console import NAV, i18n
from gateway.console.roles import ROLES
from gateway.statuses import Status
from tests.console.page import catalog

CONSOLE = i18n.TRANSLATIONS.parent
PO = i18n.TRANSLATIONS / "id" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
PLACEHOLDER = re.compile(r"%\(\w+\)s")


def console_texts() -> set[str]:
    """What ``pybabel extract`` finds in the console (as ``scripts/translations`` runs it),
    plus the texts that come from data: menu labels, roles, statuses."""
    with (CONSOLE / "babel.cfg").open() as handle:
        from babel.messages.frontend import parse_mapping_cfg

        method_map, options_map = parse_mapping_cfg(handle)
    texts = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(CONSOLE), method_map, options_map):
        texts.update(message if isinstance(message, tuple) else (message,))
    texts.update(label for _endpoint, label, _action in NAV)
    texts.update(ROLES)
    texts.update(status.value for status in Status)
    return texts


def test_every_console_text_has_an_indonesian_translation():
    texts = console_texts()
    assert len(texts) > 300
    missing = sorted(texts - set(catalog()))
    assert not missing, ("run scripts/translations and translate these in "
                         f"{PO.relative_to(CONSOLE.parents[1])}:\n" + "\n".join(missing))


def test_translations_keep_their_placeholders():
    with PO.open("rb") as handle:
        for entry in read_po(handle):
            if not entry.id:
                continue
            english = entry.id if isinstance(entry.id, tuple) else (entry.id,)
            indonesian = entry.string if isinstance(entry.string, tuple) else (entry.string,)
            wanted = set(PLACEHOLDER.findall(english[-1]))
            for text in indonesian:
                assert set(PLACEHOLDER.findall(text)) == wanted, entry.id


def test_the_compiled_catalogue_is_the_po_file_and_no_yaml_dictionary_is_left():
    """The console reads messages.mo: committed, so it must say what messages.po says."""
    def messages(entries) -> dict:
        flat = [(entry.id, entry.string) for entry in entries
                if entry.id and any(entry.string) and not entry.fuzzy]
        return {_tuple(english): _tuple(translated) for english, translated in flat}

    with PO.open("rb") as handle:
        source = messages(read_po(handle))
    with MO.open("rb") as handle:
        compiled = messages(read_mo(handle))
    assert compiled == source, "run scripts/translations to compile messages.mo"
    assert not list(i18n.TRANSLATIONS.rglob("*.yaml"))


def _tuple(value):
    return tuple(value) if isinstance(value, list | tuple) else value


@pytest.fixture
def reader(app):
    """``reader("id")``: from now on, a request of a reader of that language."""
    opened = []

    def read(language: str):
        if opened:
            opened.pop().pop()
        context = app.test_request_context("/console/", headers={"Accept-Language": language})
        context.push()
        opened.append(context)

    yield read
    if opened:
        opened.pop().pop()


def test_texts_numbers_and_plurals_follow_the_readers_language(reader):
    reader("en")
    assert i18n.gettext("Requests today") == "Requests today"
    assert i18n.number(1234567) == "1,234,567"
    assert i18n.ngettext("The chain is intact: %(num)s record checked.",
                         "The chain is intact: %(num)s records checked.", 1) \
        == "The chain is intact: 1 record checked."
    assert i18n.ngettext("The chain is intact: %(num)s record checked.",
                         "The chain is intact: %(num)s records checked.", 1500) \
        == "The chain is intact: 1,500 records checked."
    reader("id")
    assert i18n.gettext("Requests today") == "Permintaan hari ini"
    assert i18n.number(1234567) == "1.234.567"
    assert i18n.ngettext("The chain is intact: %(num)s record checked.",
                         "The chain is intact: %(num)s records checked.", 1500) \
        == "Rantai utuh: 1.500 catatan diperiksa."


def test_money_is_whole_rupiah_in_the_readers_writing(reader):
    reader("id")
    assert i18n.money(150000) == "Rp150.000"
    reader("en")
    assert i18n.money(150000) == "IDR150,000"


def test_times_are_shown_in_wib_day_first(reader):
    reader("id")
    instant = datetime(2026, 11, 28, 17, 30, tzinfo=UTC)   # 00:30 the next day in Jakarta
    assert i18n.local_time(instant) == "29-11-2026 00:30 WIB"
    assert i18n.local_time(instant, with_seconds=True) == "29-11-2026 00:30:00 WIB"
    assert i18n.local_time(None) == "—"
