"""The mutation runner (``python -m tests.reliability.mutations``) is not part of CI: it runs
the suite once per mutation. What CI can check in milliseconds is that every mutation still
applies: its code is found exactly once where it says, and the tests it names exist. A
refactor that moves a protection must move its mutation too, or this fails (three had gone
stale unnoticed before this test)."""

from __future__ import annotations

import pytest

from tests.reliability.mutations import MUTATIONS, ROOT


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m.name for m in MUTATIONS])
def test_every_mutation_still_applies_to_the_code_it_names(mutation):
    source = (ROOT / mutation.file).read_text()
    assert source.count(mutation.old) == 1, (
        f"{mutation.name}: the code to mutate is found {source.count(mutation.old)} times in "
        f"{mutation.file}; update the mutation with the protection")
    for test in mutation.tests:
        assert (ROOT / test.split("::")[0]).exists(), f"{mutation.name}: no {test}"


def test_mutation_names_are_unique():
    names = [m.name for m in MUTATIONS]
    assert len(names) == len(set(names))
