"""Read a console page the way a person does: find an element by its id, read its text.

A small tree built with the standard library's HTML parser, enough for the console's own
server-rendered markup; tests assert on what is shown, not on the template's spacing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list = field(default_factory=list)

    @property
    def text(self) -> str:
        parts = []
        for child in self.children:
            parts.append(child.text if isinstance(child, Element) else child)
        return re.sub(r"\s+", " ", " ".join(parts)).strip()

    def walk(self):
        for child in self.children:
            if isinstance(child, Element):
                yield child
                yield from child.walk()

    def find(self, element_id: str) -> Element | None:
        return next((e for e in self.walk() if e.attrs.get("id") == element_id), None)

    def all(self, tag: str) -> list[Element]:
        return [e for e in self.walk() if e.tag == tag]

    def rows(self) -> list[list[str]]:
        """A table's body rows, each as the texts of its cells (``th`` and ``td``)."""
        return [[cell.text for cell in row.children
                 if isinstance(cell, Element) and cell.tag in ("th", "td")]
                for body in self.all("tbody") for row in body.all("tr")]


class _Builder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Element("document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag, attrs):
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag, attrs):
        self.stack[-1].children.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag):
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data):
        self.stack[-1].children.append(data)


def parse(response_or_html) -> Element:
    text = response_or_html if isinstance(response_or_html, str) else \
        response_or_html.get_data(as_text=True)
    builder = _Builder()
    builder.feed(text)
    builder.close()
    return builder.root


def by_id(response_or_html, element_id: str) -> Element:
    found = parse(response_or_html).find(element_id)
    assert found is not None, f"no element with id {element_id!r} on the page"
    return found


def catalog() -> dict[str, str]:
    """The console's Indonesian gettext catalogue as ``{English: Indonesian}`` (both forms
    of a plural text map to its one Indonesian form); untranslated entries left out."""
    from babel.messages.pofile import read_po

    from gateway.console.i18n import TRANSLATIONS

    with (TRANSLATIONS / "id" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        entries = [entry for entry in read_po(handle) if entry.id and not entry.fuzzy]
    found = {}
    for entry in entries:
        if isinstance(entry.id, tuple):
            found.update(dict.fromkeys(entry.id, entry.string[0]))
        else:
            found[entry.id] = entry.string
    return {english: indonesian for english, indonesian in found.items() if indonesian}


def untranslated(response_or_html) -> list[str]:
    """Headings, captions, labels and buttons still in English on a page meant to be in
    Indonesian (texts the same in both languages, like "Status", do not count)."""
    english = {text for text, translated in catalog().items() if text != translated}
    root = parse(response_or_html)
    main = next(e for e in root.walk() if e.tag == "main")
    return [e.text for e in main.walk()
            if e.tag in ("h1", "h2", "th", "caption", "label", "button", "a") and
            e.text in english]
