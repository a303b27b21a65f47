"""Every text of the public pages has its Indonesian translation (the pages' own catalogue)."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.public import texts

PUBLIC = Path(texts.__file__).parent
CALLS = re.compile(r"""(?:\b_|gettext)\(\s*(["'])(.+?)\1""", re.S)


def test_every_text_of_the_public_pages_is_in_the_catalogue():
    found = set()
    for path in [*PUBLIC.glob("*.py"), *PUBLIC.glob("templates/public/*.html")]:
        if path.name == "texts.py":
            continue
        found |= {match.group(2) for match in CALLS.finditer(path.read_text())}
    found |= set(texts.STATUS_LABELS.values())
    assert found, "no texts found: the pattern is wrong"
    missing = sorted(text for text in found if text not in texts.CATALOGUE)
    assert missing == []
