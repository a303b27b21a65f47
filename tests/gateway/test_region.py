"""The region is configuration: its zone decides local times, abbreviations and "today";
a bad zone or currency stops start-up naming the key."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import yaml

from gateway.region import DEFAULTS, Region
from gateway.settings import ConfigError, load_settings
from tests.conftest import CONFIG_DIR


def region(time_zone: str) -> Region:
    return Region.from_settings({"time_zone": time_zone})


@pytest.mark.parametrize(("time_zone", "label", "offset_hours"), [
    ("Asia/Jakarta", "WIB", 7), ("Asia/Makassar", "WITA", 8), ("Asia/Jayapura", "WIT", 9)])
def test_each_indonesian_zone_reads_its_own_clock(time_zone, label, offset_hours):
    here = region(time_zone)
    midnight_utc = datetime(2026, 3, 1, tzinfo=UTC)
    assert here.local(midnight_utc).hour == offset_hours
    assert here.local(midnight_utc.replace(tzinfo=None)).hour == offset_hours  # stored naive
    assert here.zone_label(midnight_utc) == label
    start, end = here.day(date(2026, 3, 1))
    assert start == datetime(2026, 2, 28, 24 - offset_hours, tzinfo=UTC)
    assert (end - start).total_seconds() == 86400


def test_a_request_at_1530_utc_belongs_to_the_next_day_in_wit_but_not_in_wib():
    moment = datetime(2026, 3, 1, 15, 30, tzinfo=UTC)
    assert region("Asia/Jayapura").today(moment) == (datetime(2026, 3, 1, 15, tzinfo=UTC),
                                                     datetime(2026, 3, 2, 15, tzinfo=UTC))
    assert region("Asia/Jakarta").today(moment) == (datetime(2026, 2, 28, 17, tzinfo=UTC),
                                                    datetime(2026, 3, 1, 17, tzinfo=UTC))


def test_banyuwangi_is_the_default_and_the_shipped_configuration(tmp_path):
    (tmp_path / "gateway.yaml").write_text("")
    assert load_settings(tmp_path)["region"] == DEFAULTS
    shipped = yaml.safe_load((CONFIG_DIR / "gateway.yaml").read_text())["region"]
    assert shipped == DEFAULTS == {"name": "Kabupaten Banyuwangi", "time_zone": "Asia/Jakarta",
                                   "locale": "id", "currency": "IDR"}


def test_a_bad_zone_locale_or_currency_is_named(tmp_path):
    (tmp_path / "gateway.yaml").write_text(yaml.safe_dump({"region": {
        "time_zone": "Asia/Banyuwangi", "locale": "jv", "currency": "RUPIAH"}}))
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path)
    reasons = {path: reason for _file, path, reason in caught.value.problems}
    assert set(reasons) == {"region.time_zone", "region.locale", "region.currency"}
    assert "Asia/Banyuwangi" in reasons["region.time_zone"]
