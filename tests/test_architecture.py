"""docs/ARCHITECTURE.md and the import-linter contracts tell the same story.

``scripts/test`` runs ``lint-imports`` (the contracts in pyproject.toml); these tests keep the
page that explains them in step: each contract is named on the page by its id, the page names
no contract that does not exist, and the wiring it lists is the wiring the contracts allow.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _contracts() -> list[dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return config["tool"]["importlinter"]["contracts"]


def _page() -> str:
    return (ROOT / "docs" / "ARCHITECTURE.md").read_text()


def test_the_page_names_every_contract_and_no_other():
    ids = {contract["id"] for contract in _contracts()}
    named = set(re.findall(r"\[([a-z-]+)\]", _page()))
    assert named == ids


def test_the_wiring_on_the_page_is_the_top_layer_of_the_contracts():
    layers = next(c for c in _contracts() if c["id"] == "layers")["layers"]
    wiring = {name.strip().removeprefix("gateway.") + ".py" for name in layers[0].split(":")}
    paragraph = next(p for p in _page().split("\n\n") if p.startswith("**The wiring**"))
    listed = set(re.findall(r"`(?:gateway/)?([a-z_]+\.py)`", paragraph.split("Owns")[0]))
    assert listed == wiring
