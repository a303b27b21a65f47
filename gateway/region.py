"""Where the gateway serves: the regency's time zone.

Times are stored in UTC; "today" in the figures (``gateway.reports``) and every time the
console shows are read in this zone, midnight to midnight, whatever the server's own zone.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

TIME_ZONE = ZoneInfo("Asia/Jakarta")
TIME_ZONE_LABEL = "WIB"
