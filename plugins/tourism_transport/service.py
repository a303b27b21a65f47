"""The tourism transport service: rides for visitors, the regency's shuttle for groups.

Departure times in the settings are local times: the region's (``gateway.yaml``'s
``region.time_zone``: WIB in Banyuwangi, WITA or WIT elsewhere), or a fixed
``utc_offset_hours`` where a deployment still sets that older key. The API takes and answers
ISO 8601 times with their offset, so agencies never have to guess the zone.

A small party becomes a ``RideOrder`` for a ride provider. A group (from
``group_min_passengers``) travels on the regency's shuttle, whose departures and seats per
departure are configured; its order carries the ``shuttle`` requirement so only the shuttle
fleet takes it, and its seats are taken at intake: a full departure is refused with
``capacity_full`` and the next departures that still have seats.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo

from marshmallow import ValidationError

from gateway import Service, region
from gateway.fields import place_registry
from gateway.orders import Contact, Place, RideOrder
from gateway.services import Capacity, RequestRefused

from .schemas import TourismTransportConfigSchema, TourismTransportRequestSchema

BOOKING_HORIZON = timedelta(days=30)
MAX_ALTERNATIVES = 3




def route_departures(config, pickup: str, destination: str) -> dict | None:
    for departure in config.get("shuttle_departures", []):
        if (departure["pickup_point_id"], departure["destination_id"]) == (pickup, destination):
            return departure
    return None


def departure_key(pickup: str, destination: str, when: datetime) -> str:
    return f"{pickup}>{destination}@{when.astimezone(UTC).strftime('%Y-%m-%dT%H:%MZ')}"


def upcoming(zone: tzinfo, departure: dict, after: datetime, until: datetime):
    """Every departure time of a route between ``after`` and ``until``, in order, reading
    its daily ``times`` on the clock of ``zone``."""
    day = after.astimezone(zone).date()
    while True:
        for clock in sorted(departure["times"]):
            hour, minute = map(int, clock.split(":"))
            when = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
            if when > until:
                return
            if when > after:
                yield when
        day += timedelta(days=1)


class TourismTransportService(Service):
    name = "tourism_transport"
    title = "Tourist transport"
    titles = {"id": "Transportasi wisata"}
    description = ("A visitor or tour group books transport between a pickup point (terminal, "
                   "airport, hotel, Taman Sritanjung) and a destination (Ijen, Pulau Merah...), "
                   "now or up to 30 days ahead. Groups ride the regency's shuttle; a full "
                   "departure answers with the next ones that have seats.")
    version = "0.2.0"
    order_kind = "ride"
    request_schema = TourismTransportRequestSchema
    config_schema = TourismTransportConfigSchema
    unique_reference_field = "booking_id"
    example_request = {
        "booking_id": "TRIP-2026-0007",
        "visitor": {"name": "Anna Schmidt", "phone": "+6281398765432"},
        "pickup_point_id": "taman-sritanjung",
        "destination_id": "pulau-merah",
        "passengers": 2,
    }

    def __init__(self, time_zone: tzinfo | None = None):
        #: the region's zone, which the shuttle's daily times are read in
        self.time_zone = time_zone or region.zone(region.DEFAULTS["time_zone"])

    def local_zone(self, config) -> tzinfo:
        """The zone of the timetable: the region's, unless ``utc_offset_hours`` (the older
        setting) fixes an offset."""
        offset = config.get("utc_offset_hours")
        return self.time_zone if offset is None else timezone(timedelta(hours=offset))

    def is_group(self, data, config) -> bool:
        return data["passengers"] >= config.get("group_min_passengers", 5)

    def validate(self, payload, config):
        data = self.load_request(payload)
        errors: dict = {}
        if data["pickup_point_id"] not in place_registry(config.get("pickup_points", []), "-"):
            errors["pickup_point_id"] = ["Unknown pickup point."]
        if data["destination_id"] not in place_registry(config.get("destinations", []), "-"):
            errors["destination_id"] = ["Unknown destination."]
        departure = data.get("departure_at")
        now = datetime.now(UTC)
        if departure is not None and not now - timedelta(minutes=5) <= departure \
                <= now + BOOKING_HORIZON:
            errors["departure_at"] = ["Must be between now and 30 days ahead."]
        if errors:
            raise ValidationError(errors)
        if self.is_group(data, config):
            self._check_shuttle_departure(data, config, now)
        return data

    def _check_shuttle_departure(self, data, config, now):
        route = route_departures(config, data["pickup_point_id"], data["destination_id"])
        if route is None:
            raise RequestRefused("no_shuttle_route", "The regency's shuttle does not run "
                                 "between these places; book smaller parties as rides.",
                                 {"destination_id": ["No shuttle on this route."]})
        when = data.get("departure_at")
        times = list(upcoming(self.local_zone(config), route, now, now + BOOKING_HORIZON))
        if when is None or when not in times:
            soon = [w.isoformat() for w in times[:MAX_ALTERNATIVES]]
            raise RequestRefused("no_such_departure", "Groups travel on a scheduled shuttle "
                                 f"departure; the next are {', '.join(soon)}.",
                                 {"departure_at": ["Choose one of the shuttle's departures."]})

    def capacity(self, data, config):
        if not self.is_group(data, config):
            return None
        route = route_departures(config, data["pickup_point_id"], data["destination_id"])
        return Capacity(key=departure_key(data["pickup_point_id"], data["destination_id"],
                                          data["departure_at"]),
                        units=data["passengers"], limit=route["capacity"], field="departure_at")

    def alternatives(self, data, config, taken):
        route = route_departures(config, data["pickup_point_id"], data["destination_id"])
        now = datetime.now(UTC)
        found = []
        for when in upcoming(self.local_zone(config), route, now, now + BOOKING_HORIZON):
            key = departure_key(data["pickup_point_id"], data["destination_id"], when)
            left = route["capacity"] - taken(key)
            if left >= data["passengers"]:
                found.append({"departure_at": when.isoformat(), "seats_left": left})
                if len(found) == MAX_ALTERNATIVES:
                    break
        return found

    def reference(self, data):
        return data["booking_id"]

    def build_order(self, data, config, reference):
        points = place_registry(config.get("pickup_points", []), "pickup_points")
        destinations = place_registry(config.get("destinations", []), "destinations")
        origin, target = points[data["pickup_point_id"]], destinations[data["destination_id"]]
        visitor = Contact(name=data["visitor"]["name"], phone=data["visitor"]["phone"])
        group = self.is_group(data, config)
        return RideOrder(
            reference=reference,
            pickup=Place(address=origin["address"], lat=origin["location"]["lat"],
                         lng=origin["location"]["lng"], contact=visitor,
                         note=data.get("group_name")),
            dropoff=Place(address=target["address"], lat=target["location"]["lat"],
                          lng=target["location"]["lng"], contact=visitor),
            passengers=data["passengers"],
            scheduled_at=(datetime.fromisoformat(data["departure_at"])
                          if data.get("departure_at") else None),
            requirements=frozenset({"shuttle"}) if group else frozenset(),
        )
