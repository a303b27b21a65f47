"""Distances on the earth's surface, for prices and estimates.

Pure arithmetic (no I/O, nothing of the gateway): the simulators price their quotes from it
as their providers price from road distance, and the own fleet's tariff uses it. It is the
great-circle distance (haversine), shorter than any road: good for a deterministic price, not
for navigation.
"""

from __future__ import annotations

import math

EARTH_RADIUS_M = 6_371_000


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> int:
    """Great-circle metres between two points given in degrees, rounded to the metre."""
    p1, l1, p2, l2 = map(math.radians, (float(lat1), float(lng1), float(lat2), float(lng2)))
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin((l2 - l1) / 2) ** 2
    return round(2 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, h))))


def distance_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """:func:`distance_m` in kilometres, to three decimals."""
    return round(distance_m(lat1, lng1, lat2, lng2) / 1000, 3)


def parse_latlong(text: str) -> tuple[float, float]:
    """``"-8.2192,114.3691"`` (GO-SEND's form) as ``(lat, lng)``.

    :raises ValueError: not two numbers, or out of range
    """
    lat, lng = (float(part) for part in str(text).split(","))
    if not (-90 <= lat <= 90 and -180 <= lng <= 180) or math.isnan(lat) or math.isnan(lng):
        raise ValueError("coordinates out of range")
    return lat, lng
