"""One test per hook (``test_hook_<name>``), plus plugin loading and introspection.

``test_every_hookspec_has_a_test`` keeps this file complete: a hook added to
``gateway/hookspecs.py`` without a test here fails CI.
"""

from __future__ import annotations

import importlib.metadata
from datetime import timedelta
from pathlib import Path

import pytest
from marshmallow import Schema, fields
from sqlalchemy import select

from gateway import Service, hookimpl, hookspecs
from gateway.errors import StartupError
from gateway.events import Event
from gateway.models import AuditRecord, ServiceRequest, utcnow
from gateway.orders import Contact, DeliveryOrder, Package, Place
from gateway.plugins import DEFAULT_PLUGINS, describe_plugins
from gateway.queues import JobKind, enqueue_job
from gateway.sweep import sweep_once
from gateway.testing import drain
from tests.conftest import SERVICE_PLUGINS, bearer, new_key
from tests.fixture_plugins.scripted_courier import scripted_courier

HOOK_NAMES = sorted(name for name in dir(hookspecs)
                    if hasattr(getattr(hookspecs, name), "gateway_spec"))


def test_every_hookspec_has_a_test():
    source = Path(__file__).read_text()
    missing = [name for name in HOOK_NAMES if f"def test_hook_{name}" not in source]
    assert HOOK_NAMES, "no hookspecs found"
    assert missing == []


def test_every_hookspec_has_a_docstring_saying_what_it_returns():
    for name in HOOK_NAMES:
        doc = getattr(hookspecs, name).__doc__ or ""
        assert ":return:" in doc or "ignored" in doc, name


class EchoSchema(Schema):
    word = fields.String(required=True)


class EchoService(Service):
    name = "echo"
    title = "Echo"
    request_schema = EchoSchema

    def build_order(self, data, config, reference):
        place = Place(address="Jl. Test 1", lat=-8.2, lng=114.3, contact=Contact("A", "+628111"))
        return DeliveryOrder(reference=reference, pickup=place, dropoffs=(place,),
                             package=Package(description=data["word"]))


class EchoPlugin:
    @hookimpl
    def register_services(self):
        return [EchoService()]


def test_hook_register_services(make_app):
    app = make_app(plugins=[EchoPlugin()])
    assert list(app.extensions["gateway"].services) == ["echo"]
    key = new_key(app, services=["echo"])
    client = app.test_client()
    listed = client.get("/api/v1/services", headers=bearer(key))
    assert [s["name"] for s in listed.get_json()["services"]] == ["echo"]
    created = client.post("/api/v1/services/echo/requests", json={"word": "hi"},
                          headers=bearer(key))
    assert created.status_code == 202


def test_two_services_with_one_name_stop_startup(make_app):
    with pytest.raises(StartupError, match="echo"):
        make_app(plugins=[EchoPlugin(), EchoPlugin()])


def test_hook_register_couriers(make_app):
    plugin, courier = scripted_courier("speedy")
    gateway = make_app(plugins=[*SERVICE_PLUGINS, plugin]).extensions["gateway"]
    assert gateway.courier_classes["speedy"] is courier
    assert {"speedy", "gosend", "own_fleet", "shuttle_fleet"} <= set(gateway.courier_classes)
    assert isinstance(gateway.couriers["speedy"], courier)


def test_hook_register_notifiers(make_app):
    from gateway.notifiers import NotifierAdapter, SentMessage

    class Pigeon(NotifierAdapter):
        name = "pigeon"
        channel = "sms"
        sent: list = []

        def _send(self, message):
            self.sent.append(message.template)
            return SentMessage("pigeon-1")

    class PigeonPlugin:
        @hookimpl
        def register_notifiers(self):
            return [Pigeon]

    gateway = make_app(plugins=[*SERVICE_PLUGINS, PigeonPlugin()],
                       notifiers={"pigeon": {"sandbox": True}}).extensions["gateway"]
    assert gateway.notifier_classes["pigeon"] is Pigeon
    assert {"pigeon", "whatsapp", "sms"} <= set(gateway.notifier_classes)
    assert isinstance(gateway.notifiers["pigeon"], Pigeon)


def test_hook_choose_couriers(make_app, medicine_body):
    first, first_cls = scripted_courier("first")
    second, second_cls = scripted_courier("second")

    class PreferSecond:
        @hookimpl(tryfirst=True)
        def choose_couriers(self, candidates):
            return sorted(candidates, reverse=True)

    app = make_app(plugins=[*SERVICE_PLUGINS, first, second, PreferSecond()])
    key = new_key(app, key_type="test")
    app.test_client().post("/api/v1/services/medicine_delivery/requests", json=medicine_body,
                           headers=bearer(key))
    drain(app)
    assert len(second_cls.booked) == 1
    assert first_cls.booked == []


def test_default_routing_follows_the_configured_order(make_app, medicine_body):
    first, first_cls = scripted_courier("first")
    second, second_cls = scripted_courier("second")
    app = make_app(plugins=[*SERVICE_PLUGINS, first, second],
                   services={"medicine_delivery": {"couriers": ["second", "first"]}})
    key = new_key(app, key_type="test")
    app.test_client().post("/api/v1/services/medicine_delivery/requests", json=medicine_body,
                           headers=bearer(key))
    drain(app)
    assert len(second_cls.booked) == 1
    assert first_cls.booked == []


def test_hook_actor_from_request(make_app):
    class HeaderAuth:
        @hookimpl(tryfirst=True)
        def actor_from_request(self, request):
            if request.headers.get("X-Test-Agency") == "yes":
                return {"type": "agency", "id": "nobody", "services": [], "key_id": "k",
                        "key_prefix": "p", "key_type": "test"}
            return None

    client = make_app(plugins=[*SERVICE_PLUGINS, HeaderAuth()]).test_client()
    assert client.get("/api/v1/services", headers={"X-Test-Agency": "yes"}).status_code == 200
    assert client.get("/api/v1/services").status_code == 401


def test_hook_permission_allowed(make_app, medicine_body):
    class NoMedicineOnSundays:
        @hookimpl
        def permission_allowed(self, action, resource):
            if action == "requests:create" and resource == "medicine_delivery":
                return False
            return None

    app = make_app(plugins=[*SERVICE_PLUGINS, NoMedicineOnSundays()])
    key = new_key(app)
    response = app.test_client().post("/api/v1/services/medicine_delivery/requests",
                                      json=medicine_body, headers=bearer(key))
    assert response.status_code == 403
    assert response.get_json()["code"] == "service_not_allowed"


def test_hook_track_event(make_app):
    heard = []

    class Listener:
        @hookimpl
        def track_event(self, event, session):
            heard.append((event.action, session.is_active))

    app = make_app(plugins=[*SERVICE_PLUGINS, Listener()])
    gateway = app.extensions["gateway"]
    with gateway.db.write() as session:
        gateway.track(session, Event("test.ping", target="x"))
    assert heard == [("test.ping", True)]
    with gateway.db.read() as session:
        actions = [r.action for r in session.query(AuditRecord).all()]
    assert actions[-1] == "test.ping"


def test_hook_register_jobs(make_app, medicine_body):
    ran, fail = [], []

    def followup(gateway, request_id):
        ran.append(request_id)
        if fail:
            raise RuntimeError("the other system is down")
        with gateway.db.write() as session:
            session.get(ServiceRequest, request_id).pending_job = None
        return "done"

    class Followups:
        @hookimpl
        def register_jobs(self):
            return [JobKind("followup", run=followup, retry_intervals=[0])]

    app = make_app(plugins=[*SERVICE_PLUGINS, Followups()])
    gateway = app.extensions["gateway"]
    key = new_key(app)
    ids = [app.test_client().post("/api/v1/services/medicine_delivery/requests",
                                  json={**medicine_body, "prescription_id": f"RX-{n}"},
                                  headers=bearer(key)).get_json()["id"] for n in (1, 2)]
    drain(app)
    for request_id in ids:
        with gateway.db.write() as session:
            record = session.get(ServiceRequest, request_id)
            record.pending_job, record.pending_since = "followup", utcnow()
    assert enqueue_job(gateway, "followup", ids[0])
    drain(app)
    assert ran == [ids[0]]
    fail.append(True)
    with gateway.db.write() as session:       # owed for long: the sweep queues it
        session.get(ServiceRequest, ids[1]).pending_since = utcnow() - timedelta(days=1)
    assert sweep_once(gateway) >= 1
    drain(app)
    assert ran == [ids[0], ids[1], ids[1]]      # tried, retried once, then given up
    with gateway.db.read() as session:
        record = session.get(ServiceRequest, ids[1])
        assert record.pending_job is None       # owed no longer: the sweep leaves it
        assert "followup failed after retries" in [e.detail for e in record.events]
        actions = session.scalars(select(AuditRecord.outcome).where(
            AuditRecord.action == "job.followup").order_by(AuditRecord.seq)).all()
    assert actions == ["done", "retry", "failed"]

    class Clash:
        @hookimpl
        def register_jobs(self):
            return [JobKind("dispatch", run=followup)]

    with pytest.raises(StartupError, match="dispatch"):
        make_app(plugins=[*SERVICE_PLUGINS, Clash()])


def test_the_core_defaults_are_registered_as_plugins(gateway):
    described = {p["name"]: p for p in describe_plugins(gateway.pm)}
    for name in DEFAULT_PLUGINS:
        assert described[name]["default"] is True
    assert described["gateway.auth"]["hooks"] == ["actor_from_request"]
    assert described["gateway.audit"]["hooks"] == ["track_event"]
    assert described["gateway.routing"]["hooks"] == ["choose_couriers"]


def test_the_three_services_are_installed_as_entry_points():
    entry_points = {ep.name: ep.value
                    for ep in importlib.metadata.entry_points(group="gateway")}
    assert entry_points["medicine_delivery"] == "plugins.medicine_delivery"
    assert entry_points["umkm_pickup"] == "plugins.umkm_pickup"
    assert entry_points["tourism_transport"] == "plugins.tourism_transport"


def test_hook_eligibility_for(make_app, medicine_body):
    class Register:
        @hookimpl(tryfirst=True)
        def eligibility_for(self, service, data):
            if service.name != "medicine_delivery":
                return None
            return {"eligible": data["patient"]["nik"].endswith("2"), "source": "test-register"}

    app = make_app(plugins=[*SERVICE_PLUGINS, Register()])
    key = new_key(app)
    body = app.test_client().post("/api/v1/services/medicine_delivery/requests",
                                  json=medicine_body, headers=bearer(key)).get_json()
    assert body["eligibility"]["eligible"] is True
    assert body["eligibility"]["source"] == "test-register"
    assert set(body["eligibility"]) == {"eligible", "source", "decided_at"}
