"""A courier error's class is all an adapter has to get right.

A new adapter (here, one written in this file and registered like any plugin's) raises the
contract's classes, or subclasses of its own; the attempt state, the request's failure code,
the timeline, the failover and the circuit breaker follow from the class alone, through
dispatch run by a real rq worker, without any table to extend.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gateway import CourierAdapter, hookimpl
from gateway.couriers import (
    CourierAuthError,
    CourierError,
    CourierNotFound,
    CourierOutcomeUnknown,
    CourierRejected,
    CourierTemporaryError,
    NoDriverAvailable,
    failed_outcomes,
)
from gateway.models import CourierAttempt, ServiceRequest
from gateway.statuses import AttemptState
from gateway.testing import drain
from tests.conftest import SERVICE_PLUGINS, bearer, new_key

CREATE = "/api/v1/services/medicine_delivery/requests"


class QuotaExhausted(CourierTemporaryError):
    """The new provider's own error: its daily quota is used up, so try again later."""


class PartnerSuspended(CourierAuthError):
    """The new provider's own error: our partner account is suspended."""


class OutOfArea(CourierRejected):
    """The new provider's own error: the drop-off is outside its area."""


def newcomer(errors: list[Exception]):
    """A courier adapter nobody has taught the gateway about: it raises ``errors`` in turn,
    then books."""

    class Newcomer(CourierAdapter):
        name = "newcomer"
        default_instance = True
        default_config = {"sandbox": True}
        to_raise = list(errors)
        booked: list = []

        def _book(self, order, reference):
            if self.to_raise:
                raise self.to_raise.pop(0)
            from gateway.couriers import Booking

            self.booked.append(reference)
            return Booking(provider=self.instance, provider_reference=f"NEW-{reference}")

        def _find_by_reference(self, reference):
            return None   # whatever was asked before, nothing was booked

    class Plugin:
        @hookimpl
        def register_couriers(self):
            return [Newcomer]

    return Plugin(), Newcomer


def run(make_app, medicine_body, errors, **settings):
    plugin, adapter = newcomer(errors)
    app = make_app(plugins=[*SERVICE_PLUGINS, plugin], **settings)
    response = app.test_client().post(CREATE, json=medicine_body,
                                      headers=bearer(new_key(app, key_type="test")))
    assert response.status_code == 202, response.get_json()
    request_id = response.get_json()["id"]
    drain(app)
    gateway = app.extensions["gateway"]
    with gateway.db.read() as session:
        record = session.get(ServiceRequest, request_id)
        record.events  # noqa: B018 - load the timeline before the session closes
        attempts = session.scalars(select(CourierAttempt).where(
            CourierAttempt.request_id == request_id).order_by(CourierAttempt.attempt_no)).all()
    return app, record, attempts


ONE_TRY = {"dispatch": {"temporary_tries_per_courier": 1}}


@pytest.mark.parametrize(("error", "state", "status", "failure_code"), [
    (NoDriverAvailable("no driver near"), "no_driver", "no_driver", "no_driver"),
    (CourierRejected("too far"), "rejected", "failed", "rejected"),
    (OutOfArea("outside Banyuwangi"), "rejected", "failed", "rejected"),
    (CourierNotFound("unknown route"), "rejected", "failed", "rejected"),
    (CourierAuthError("key refused"), "auth", "failed", "courier_unavailable"),
    (PartnerSuspended("partner 42 suspended"), "auth", "failed", "courier_unavailable"),
    (CourierTemporaryError("502"), "temporary", "failed", "courier_unavailable"),
    (QuotaExhausted("quota used up"), "temporary", "failed", "courier_unavailable"),
], ids=lambda value: type(value).__name__ if isinstance(value, Exception) else None)
def test_each_error_class_leaves_its_attempt_state_and_failure_code(
        make_app, medicine_body, error, state, status, failure_code):
    _app, record, attempts = run(make_app, medicine_body, [error], **ONE_TRY)
    assert [a.state for a in attempts] == [state]
    assert (record.status, record.failure_code) == (status, failure_code)
    assert any(f"newcomer: {state.replace('_', ' ')}" in (e.detail or "")
               for e in record.events)


def test_a_refused_credential_is_never_written_on_the_timeline(make_app, medicine_body):
    _app, record, attempts = run(make_app, medicine_body,
                                 [PartnerSuspended("partner key pk_live_SECRET refused")],
                                 **ONE_TRY)
    assert attempts[0].detail == "credentials refused"
    assert not any("SECRET" in (e.detail or "") for e in record.events)


def test_a_temporary_error_of_its_own_is_tried_again_then_books(make_app, medicine_body):
    _app, record, attempts = run(make_app, medicine_body, [QuotaExhausted("quota used up")])
    assert [a.state for a in attempts] == ["temporary", "booked"]
    assert record.status == "booked"


def test_an_unknown_outcome_is_looked_up_before_booking_again(make_app, medicine_body):
    _app, record, attempts = run(make_app, medicine_body,
                                 [CourierOutcomeUnknown("timeout on create")])
    # the lost answer was looked up (nothing booked under it) before the second try
    assert [a.state for a in attempts] == ["not_found", "booked"]
    assert record.status == "booked"


def test_a_bare_courier_error_is_treated_as_an_answer_that_never_came(make_app, medicine_body):
    _app, record, attempts = run(make_app, medicine_body, [CourierError("something odd")])
    assert [a.state for a in attempts] == ["not_found", "booked"]


@pytest.mark.parametrize(("error", "opens"), [
    (PartnerSuspended("suspended"), True),        # credentials: out of rotation at once
    (NoDriverAvailable("none"), False),           # an answer, not a failure
    (OutOfArea("far"), False),
])
def test_the_circuit_follows_the_class(make_app, medicine_body, error, opens):
    app, _record, _attempts = run(make_app, medicine_body, [error], **ONE_TRY)
    assert app.extensions["gateway"].circuits.is_open("newcomer") is opens


def test_what_counts_against_a_provider_is_said_by_the_classes():
    assert failed_outcomes() == {"temporary", "unknown", "auth", "error"}
    for cls, state in [(NoDriverAvailable, AttemptState.NO_DRIVER),
                       (QuotaExhausted, AttemptState.TEMPORARY),
                       (OutOfArea, AttemptState.REJECTED),
                       (PartnerSuspended, AttemptState.AUTH),
                       (CourierOutcomeUnknown, AttemptState.UNKNOWN)]:
        assert cls.attempt_state is state
