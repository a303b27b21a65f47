"""The default routing: configured order, weighted groups, candidates only."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from gateway.routing import expand
from gateway.settings import ConfigError


def test_plain_entries_keep_their_order():
    assert expand(["gosend", "own_fleet"]) == ["gosend", "own_fleet"]


def test_a_weighted_group_shares_first_place_by_weight_and_keeps_every_member():
    rng = random.Random(7)
    firsts = Counter()
    for _ in range(4000):
        order = expand([{"gosend": 3, "grab": 1}, "own_fleet"], rng)
        assert sorted(order[:2]) == ["gosend", "grab"] and order[2] == "own_fleet"
        firsts[order[0]] += 1
    assert 0.70 < firsts["gosend"] / 4000 < 0.80


@pytest.mark.parametrize("entry", [{"gosend": 0}, {"gosend": "high"}, {}, 5, ""])
def test_bad_entries_are_refused_at_start_up(make_app, entry):
    with pytest.raises(ConfigError) as caught:
        make_app(services={"medicine_delivery": {"couriers": [entry]}})
    assert any(path == "medicine_delivery.couriers.0" for _f, path, _r in caught.value.problems)
