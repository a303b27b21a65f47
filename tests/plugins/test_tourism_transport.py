"""Tourism transport: groups on the regency's shuttle with seats per departure, rides for
small parties, and only a name and a phone collected."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest

from gateway.testing import drain, wait_for_status
from tests.conftest import bearer, new_key

CREATE = "/api/v1/services/tourism_transport/requests"
WIB = timezone(timedelta(hours=7))


def next_departure(hour: int, minute: int, days_ahead: int = 1) -> datetime:
    day = datetime.now(WIB).date() + timedelta(days=days_ahead)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=WIB)


def group(n: int, passengers: int, when: datetime, destination: str = "kawah-ijen") -> dict:
    return {"booking_id": f"GRP-{n}", "visitor": {"name": "Pak Guide", "phone": "08123456789"},
            "pickup_point_id": "taman-sritanjung", "destination_id": destination,
            "passengers": passengers, "group_name": f"Rombongan {n}",
            "departure_at": when.isoformat()}


@pytest.fixture
def shuttle_app(make_app):
    return make_app(couriers={"shuttle": {}},
                    services={"tourism_transport": {"couriers": ["shuttle"]}})


def test_a_group_rides_the_shuttle_and_takes_its_seats(shuttle_app):
    key = new_key(shuttle_app, services=["tourism_transport"], key_type="test")
    client = shuttle_app.test_client()
    when = next_departure(22, 0)
    response = client.post(CREATE, json=group(1, 10, when), headers=bearer(key))
    assert response.status_code == 202, response.get_json()
    wait_for_status(shuttle_app, response.get_json()["id"], "booked")
    body = client.get(f"/api/v1/requests/{response.get_json()['id']}", headers=bearer(key))
    assert body.get_json()["provider"] == "shuttle"


def test_a_full_departure_is_refused_with_the_next_departures_that_have_seats(shuttle_app):
    key = new_key(shuttle_app, services=["tourism_transport"], key_type="test")
    client = shuttle_app.test_client()
    when = next_departure(22, 0)
    assert client.post(CREATE, json=group(1, 10, when), headers=bearer(key)).status_code == 202
    full = client.post(CREATE, json=group(2, 5, when), headers=bearer(key))
    body = full.get_json()
    assert (full.status_code, body["code"]) == (409, "capacity_full")
    assert "departure_at" in body["fields"]
    alternatives = body["details"]["alternatives"]
    assert alternatives and alternatives[0]["departure_at"] != when.isoformat()
    assert all(a["seats_left"] >= 5 for a in alternatives)
    taken = client.post(CREATE, json=group(3, 4, when), headers=bearer(key))
    assert taken.status_code == 202  # four seats were left, and four fit


def test_cancelling_a_group_frees_its_seats(shuttle_app):
    key = new_key(shuttle_app, services=["tourism_transport"], key_type="test")
    client = shuttle_app.test_client()
    when = next_departure(22, 0, days_ahead=2)
    first = client.post(CREATE, json=group(1, 14, when), headers=bearer(key)).get_json()["id"]
    assert client.post(CREATE, json=group(2, 6, when), headers=bearer(key)).status_code == 409
    client.post(f"/api/v1/requests/{first}/cancel", headers=bearer(key))
    drain(shuttle_app)
    assert client.post(CREATE, json=group(2, 6, when), headers=bearer(key)).status_code == 202


def test_two_groups_racing_for_the_last_seats_do_not_both_get_them(shuttle_app):
    key = new_key(shuttle_app, services=["tourism_transport"], key_type="test")
    when = next_departure(22, 0, days_ahead=3)
    answers = []

    def book(n):
        client = shuttle_app.test_client()
        answers.append(client.post(CREATE, json=group(n, 8, when), headers=bearer(key))
                       .status_code)

    threads = [threading.Thread(target=book, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [202, 409, 409, 409]


@pytest.mark.parametrize("when, code", [
    (lambda: next_departure(9, 15), "no_such_departure"),
    (lambda: None, "no_such_departure")])
def test_groups_must_choose_a_scheduled_departure(shuttle_app, when, code):
    key = new_key(shuttle_app, services=["tourism_transport"], key_type="test")
    body = group(1, 6, next_departure(22, 0))
    body["departure_at"] = when().isoformat() if when() else None
    response = shuttle_app.test_client().post(CREATE, json=body, headers=bearer(key))
    assert (response.status_code, response.get_json()["code"]) == (422, code)
    assert "departure_at" in response.get_json()["fields"]


def test_a_group_where_no_shuttle_runs_is_told_so(make_app):
    app = make_app(services={"tourism_transport": {"couriers": [], "shuttle_departures": []}})
    key = new_key(app, services=["tourism_transport"], key_type="test")
    response = app.test_client().post(CREATE, json=group(1, 6, next_departure(22, 0)),
                                      headers=bearer(key))
    assert response.get_json()["code"] == "no_shuttle_route"


def test_a_small_party_is_a_ride_the_shuttle_does_not_take(shuttle_app):
    key = new_key(shuttle_app, services=["tourism_transport"], key_type="test")
    example = shuttle_app.extensions["gateway"].services["tourism_transport"].example_request
    response = shuttle_app.test_client().post(CREATE, json=example, headers=bearer(key))
    request_id = response.get_json()["id"]
    wait_for_status(shuttle_app, request_id, "failed")
    body = shuttle_app.test_client().get(f"/api/v1/requests/{request_id}",
                                         headers=bearer(key)).get_json()
    assert "skipped shuttle: runs only scheduled group departures" in [
        e["detail"] for e in body["timeline"]]


def test_departures_are_limited_to_thirty_days_ahead(shuttle_app):
    key = new_key(shuttle_app, services=["tourism_transport"], key_type="test")
    too_far = group(1, 2, datetime.now(UTC) + timedelta(days=31))
    response = shuttle_app.test_client().post(CREATE, json=too_far, headers=bearer(key))
    assert response.status_code == 422 and "departure_at" in response.get_json()["fields"]


def test_the_shuttle_timetable_is_read_on_the_regions_clock(make_app):
    """The same timetable in a regency in WIT: the 22:00 departure is 22:00 WIT (13:00 UTC),
    and 22:00 WIB is no departure there; an older utc_offset_hours still fixes the offset."""
    app = make_app(couriers={"shuttle": {}}, region={"time_zone": "Asia/Jayapura"},
                   services={"tourism_transport": {"couriers": ["shuttle"]}})
    key = new_key(app, services=["tourism_transport"], key_type="test")
    client = app.test_client()
    wit = timezone(timedelta(hours=9))
    day = datetime.now(wit).date() + timedelta(days=1)
    at_wit = datetime(day.year, day.month, day.day, 22, 0, tzinfo=wit)
    at_wib = datetime(day.year, day.month, day.day, 22, 0, tzinfo=WIB)

    refused = client.post(CREATE, json=group(1, 10, at_wib), headers=bearer(key))
    assert (refused.status_code, refused.get_json()["code"]) == (422, "no_such_departure")
    assert at_wit.isoformat() in refused.get_json()["message"]
    assert client.post(CREATE, json=group(2, 10, at_wit), headers=bearer(key)).status_code \
        == 202

    fixed = make_app(couriers={"shuttle": {}}, region={"time_zone": "Asia/Jayapura"},
                     services={"tourism_transport": {"couriers": ["shuttle"],
                                                     "utc_offset_hours": 7}})
    key = new_key(fixed, services=["tourism_transport"], key_type="test")
    kept = fixed.test_client().post(CREATE, json=group(3, 10, at_wib), headers=bearer(key))
    assert kept.status_code == 202, kept.get_json()
