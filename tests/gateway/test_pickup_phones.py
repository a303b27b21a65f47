"""A pickup contact is the number a courier's driver calls or chats with from the courier's
app: it must be a mobile number. A fixed line (``0333-000-0001``) is refused wherever a
pickup contact comes in: the configuration files at start-up, a settings version stored from
the console, and a request's own pickup contact at the API."""

from __future__ import annotations

import copy

import pytest
import yaml
from sqlalchemy import func, select

from gateway import create_app, phones
from gateway.liveconfig import load_owned_config, validate_change
from gateway.models import ConfigVersion, ServiceRequest
from gateway.settings import ConfigError
from tests.conftest import CONFIG_DIR, SERVICE_PLUGINS, bearer, new_key

MOBILE_EXPECTED = "Must be a mobile number of region ID (+62..., 62... or 08...)."
UMKM = "/api/v1/services/umkm_pickup/requests"


def shipped_pickup_locations() -> list[dict]:
    services = yaml.safe_load((CONFIG_DIR / "services.yaml").read_text())
    return services["medicine_delivery"]["pickup_locations"]


def with_landline(locations: list[dict], index: int = 0) -> list[dict]:
    changed = copy.deepcopy(locations)
    changed[index]["phone"] = "0333-000-0001"
    return changed


def test_the_shipped_pickup_contacts_are_mobile_numbers():
    for place in shipped_pickup_locations():
        assert phones.canonical(place["phone"], mobile=True).startswith("+628"), place["id"]


def test_a_landline_pickup_contact_in_services_yaml_stops_start_up_naming_the_field(
        tmp_path, gateway_database_url, gateway_redis_url):
    landline = with_landline(shipped_pickup_locations(), index=2)
    with pytest.raises(ConfigError) as caught:
        create_app({"config_dir": str(CONFIG_DIR), "data_dir": str(tmp_path / "data"),
                    "database_url": gateway_database_url, "redis_url": gateway_redis_url,
                    "services": {"medicine_delivery": {"pickup_locations": landline}}},
                   plugins=SERVICE_PLUGINS)
    problems = [(path, reason) for _file, path, reason in caught.value.problems]
    assert problems == [("medicine_delivery.pickup_locations.2.phone", MOBILE_EXPECTED)]


def test_a_landline_pickup_contact_is_refused_as_a_settings_change(gateway):
    section = {"couriers": [], "pickup_locations": with_landline(shipped_pickup_locations())}
    assert validate_change(gateway, "service:medicine_delivery", section) == [
        ("pickup_locations.0.phone", MOBILE_EXPECTED)]


def test_a_stored_version_with_a_landline_pickup_contact_is_refused_when_loaded(gateway):
    """A version saved before this rule (or written around the console) is checked again
    when the settings are loaded, and named."""
    with gateway.db.write() as session:
        session.add(ConfigVersion(target="service:medicine_delivery", author="admin:old",
                                  data={"couriers": [], "pickup_locations": with_landline(
                                      shipped_pickup_locations())}))
    with pytest.raises(ConfigError) as caught:
        load_owned_config(gateway)
    assert [(path, reason) for _file, path, reason in caught.value.problems] == [
        ("medicine_delivery.pickup_locations.0.phone", MOBILE_EXPECTED)]


def test_a_landline_pickup_contact_at_the_api_is_a_422_at_its_field(app, gateway):
    key = new_key(app, services=["umkm_pickup"])
    body = copy.deepcopy(gateway.services["umkm_pickup"].example_request)
    body["business"]["phone"] = "0333-000-0001"
    response = app.test_client().post(UMKM, json=body, headers=bearer(key))
    assert response.status_code == 422
    answer = response.get_json()
    assert answer["code"] == "validation_failed"
    assert answer["fields"] == {"business.phone": [MOBILE_EXPECTED]}
    with gateway.db.read() as session:
        assert session.scalar(select(func.count()).select_from(ServiceRequest)) == 0

    body["business"]["phone"] = "0812-3456-7891"
    accepted = app.test_client().post(UMKM, json=body, headers=bearer(key))
    assert accepted.status_code == 202, accepted.get_json()
