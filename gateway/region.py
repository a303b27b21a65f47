"""The region the gateway serves: its name, time zone, language and currency.

Banyuwangi is the first user, not a constant: ``gateway.yaml``'s ``region`` section says
which regency this is, so another one in WITA (``Asia/Makassar``) or WIT
(``Asia/Jayapura``) runs the same gateway by configuration alone.

Time is stored in UTC and sent in UTC (ISO 8601 with ``Z``): agencies, couriers, logs and
``/metrics`` never see local time. Local time is for people: the console shows every time in
the region's zone with its abbreviation (WIB, WITA, WIT, from the tz database), and "today"
(the dashboard's figures, the SLA gauges) is the region's calendar day, midnight to midnight
local time, whatever the server's own zone. Everything that needs one of these asks the
gateway's :class:`Region` (``gateway.region``), never a zone of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: Banyuwangi's, the first user's: what a ``gateway.yaml`` without ``region`` means
DEFAULTS = {"name": "Kabupaten Banyuwangi", "time_zone": "Asia/Jakarta", "locale": "id",
            "currency": "IDR"}


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (``Asia/Jayapura``).

    :raises ValueError: when the tz database has no such zone
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"not an IANA time zone: {name!r}") from exc


@dataclass(frozen=True)
class Region:
    name: str
    time_zone: ZoneInfo
    #: the console's language before anyone chooses one (``id`` or ``en``)
    locale: str
    #: ISO 4217, for amounts shown to people (``IDR``: whole rupiah)
    currency: str

    @classmethod
    def from_settings(cls, section: dict | None) -> Region:
        """From ``gateway.yaml``'s validated ``region`` section (missing keys: Banyuwangi)."""
        values = {**DEFAULTS, **(section or {})}
        return cls(name=values["name"], time_zone=zone(values["time_zone"]),
                   locale=values["locale"], currency=values["currency"])

    @property
    def zone_name(self) -> str:
        """``Asia/Jakarta``."""
        return self.time_zone.key

    def local(self, moment: datetime) -> datetime:
        """``moment`` on the region's clock (a naive ``moment`` is read as UTC, as stored)."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(self.time_zone)

    def zone_label(self, moment: datetime | None = None) -> str:
        """The zone's abbreviation at ``moment`` (now if None): ``WIB``, ``WITA``, ``WIT``."""
        return self.local(moment or datetime.now(UTC)).tzname() or self.zone_name

    def day(self, day: date) -> tuple[datetime, datetime]:
        """Start and end (exclusive) of the region's calendar ``day``, in UTC."""
        start = datetime(day.year, day.month, day.day, tzinfo=self.time_zone)
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(),
                               tzinfo=self.time_zone)
        return start.astimezone(UTC), end.astimezone(UTC)

    def today(self, now: datetime | None = None) -> tuple[datetime, datetime]:
        """Start and end (exclusive) of the region's current day, in UTC."""
        return self.day(self.local(now or datetime.now(UTC)).date())


def today(gateway, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The region's current day of ``gateway``, in UTC: what "today" means in its figures."""
    return gateway.region.today(now)
