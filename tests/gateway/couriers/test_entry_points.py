"""A courier is one folder plus an entry point of the ``gateway.couriers`` group: the built-in
ones are registered exactly as a third party's, and an installed courier is there whatever
``plugins=[...]`` an app is built with (it is transport the operator names in
``couriers.yaml``, not a choice of services).

Installed couriers are real distributions here: a package folder and a ``*.dist-info``
directory with an ``entry_points.txt`` beside it, put on ``sys.path``, which is what pip
leaves behind. The gateway finds them through ``importlib.metadata`` as in production.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import textwrap

import pytest

from gateway.plugins import COURIERS_GROUP, DEFAULT_PLUGINS, describe_plugins
from gateway.runner import local_simulators
from gateway.simulators.engine import SimulatorEngine
from tests.conftest import SERVICE_PLUGINS

BUILT_IN = {"gosend": "gateway.couriers.gosend.adapter",
            "goride": "gateway.couriers.goride.adapter",
            "grabexpress": "gateway.couriers.grabexpress.adapter",
            "lalamove": "gateway.couriers.lalamove.adapter",
            "own_fleet": "gateway.couriers.own_fleet.adapter"}

KURIR_OSING = {
    "__init__.py": '"""Kurir Osing, a regional courier: adapter, mapping, simulator."""\n',
    "mapping.py": '''
        from gateway.statuses import Status

        STATUS_MAP = {"accepted": Status.BOOKED, "delivered": Status.DELIVERED}
        ''',
    "adapter.py": '''
        from marshmallow import RAISE, Schema, fields

        from gateway import CourierAdapter, hookimpl

        from . import mapping


        class KurirOsingConfig(Schema):
            class Meta:
                unknown = RAISE

            base_url = fields.Url(required=True, require_tld=False)


        class KurirOsingCourier(CourierAdapter):
            name = "kurir_osing"
            config_schema = KurirOsingConfig
            status_map = mapping.STATUS_MAP
            simulator = "kurir_osing.simulator:KurirOsingSimulator"


        @hookimpl
        def register_couriers():
            return [KurirOsingCourier]
        ''',
    "simulator.py": '''
        from gateway.simulators.engine import SimulatorEngine


        class KurirOsingSimulator(SimulatorEngine):
            lifecycle = ["accepted", "delivered"]
        ''',
}


@pytest.fixture
def install_courier(tmp_path, monkeypatch):
    """``install_courier()``: Kurir Osing installed as a distribution whose
    ``gateway.couriers`` entry point ``kurir_osing`` is its folder's adapter."""
    site = tmp_path / "site"
    package = site / "kurir_osing"
    package.mkdir(parents=True)
    monkeypatch.syspath_prepend(str(site))

    def install() -> None:
        for name, source in KURIR_OSING.items():
            (package / name).write_text(textwrap.dedent(source))
        info = site / "kurir_osing-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kurir-osing\n"
                                       "Version: 1.0\n")
        (info / "entry_points.txt").write_text(
            f"[{COURIERS_GROUP}]\nkurir_osing = kurir_osing.adapter\n")

    yield install
    for module in [m for m in sys.modules if m == "kurir_osing" or
                   m.startswith("kurir_osing.")]:
        sys.modules.pop(module)


@pytest.fixture
def bare_app(make_app, tmp_path):
    """Apps on an empty configuration directory: only the couriers a test names."""
    config_dir = tmp_path / "bare-config"
    config_dir.mkdir()

    def make(plugins=SERVICE_PLUGINS, couriers=None):
        return make_app(plugins=plugins, config_dir=str(config_dir), couriers=couriers or {})

    return make


def test_the_built_in_couriers_are_entry_points_not_core_defaults():
    installed = {ep.name: ep.value
                 for ep in importlib.metadata.entry_points(group=COURIERS_GROUP)}
    assert BUILT_IN.items() <= installed.items()
    assert not [name for name in DEFAULT_PLUGINS if name.startswith("gateway.couriers")]


def test_an_app_with_chosen_plugins_still_has_the_installed_couriers(bare_app):
    gateway = bare_app().extensions["gateway"]
    assert {"gosend", "goride", "grabexpress", "lalamove", "own_fleet",
            "shuttle_fleet"} <= set(gateway.courier_classes)
    described = {p["name"]: p for p in describe_plugins(gateway.pm)}
    for name in BUILT_IN:                      # `gateway plugins` shows where each came from
        assert described[name]["distribution"] == "banyuwangi-gateway"
        assert described[name]["default"] is False
        assert described[name]["hooks"] == ["register_couriers"]


def test_an_installed_courier_is_one_folder_and_an_entry_point(install_courier, bare_app):
    install_courier()
    gateway = bare_app(couriers={"kurir_osing_sandbox": {
        "adapter": "kurir_osing", "sandbox": True,
        "base_url": "http://127.0.0.1:8191"}}).extensions["gateway"]
    courier = gateway.couriers["kurir_osing_sandbox"]
    assert type(courier).__module__ == "kurir_osing.adapter"
    described = {p["name"]: p for p in describe_plugins(gateway.pm)}
    assert described["kurir_osing"]["distribution"] == "kurir-osing"
    # `gateway up` serves its simulator from the folder, as it does GO-SEND's.
    assert "kurir_osing_sandbox" in local_simulators(gateway)
    module, _, name = courier.simulator.partition(":")
    assert issubclass(getattr(importlib.import_module(module), name), SimulatorEngine)


def test_a_courier_both_installed_and_passed_in_plugins_is_registered_once(
        install_courier, bare_app):
    install_courier()
    adapter = importlib.import_module("kurir_osing.adapter")
    gateway = bare_app(plugins=[*SERVICE_PLUGINS, adapter]).extensions["gateway"]
    assert gateway.courier_classes["kurir_osing"] is adapter.KurirOsingCourier
    assert [plugin for plugin in gateway.pm.get_plugins() if plugin is adapter] == [adapter]


def test_a_disabled_courier_is_not_loaded(bare_app, monkeypatch):
    monkeypatch.setenv("GATEWAY_DISABLED_PLUGINS", "lalamove")
    gateway = bare_app().extensions["gateway"]
    assert "lalamove" not in gateway.courier_classes
    assert {"gosend", "grabexpress"} <= set(gateway.courier_classes)
