"""The contract of a public service plugin.

A service says what an agency may ask (its marshmallow ``request_schema``), what settings it
takes (``config_schema``, validated at start-up and drawn as a form in the console), and how
a validated request becomes a provider-neutral order (:meth:`Service.build_order`, pure code
with no I/O). It never speaks HTTP to a courier: adapters do that, and they cannot tell
services apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from marshmallow import Schema

from .errors import Invalid
from .fields import shared_schema

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{1,62}$")


class RequestRefused(Invalid):
    """A valid-looking request that a service's rules refuse, with a code of its own
    (``restricted_medicine``, ``counselling_required``, ...): an :class:`Invalid` like a
    schema's refusal, so every caller of intake gets the code, the message and the offending
    field paths (the API answers 422)."""

    def __init__(self, code: str, message: str, fields: dict[str, list[str]] | None = None):
        super().__init__(code, message, fields or {})


@dataclass(frozen=True)
class View:
    """Another representation of a request, served at ``GET /api/v1/requests/<id>/<name>``.

    ``render(request, data, proof)`` gets the request's summary (as the API shows it, plus
    ``delivered_at``: the courier's delivery time, ``gateway.records.delivery_time``), the
    stored request body (None once purged) and the delivery proof (or None); it returns a
    JSON-able dict. :class:`gateway.services.ViewGone` from it answers 410.
    """

    summary: str
    render: Callable[[dict, dict | None, dict | None], dict]
    media_type: str = "application/json"


@dataclass(frozen=True)
class Capacity:
    """A request takes ``units`` of something limited to ``limit`` per ``key`` (seats on one
    shuttle departure). Active requests with the same key share the limit."""

    key: str
    units: int
    limit: int
    #: the request field to name when the resource is full
    field: str | None = None


@dataclass(frozen=True)
class NoticeContacts:
    """Who a request's notices (``gateway.notices``) go to and whom they name.

    ``name`` and ``phone`` are the citizen's (only the first word of the name is ever
    said); ``language`` is the notices' language (``id`` or ``en``; None: the region's);
    ``office`` and ``office_phone`` are the sending office a citizen calls when a delivery
    failed (None: the service's ``office_phone`` setting is used).
    """

    name: str
    phone: str
    language: str | None = None
    office: str | None = None
    office_phone: str | None = None


class ViewGone(Exception):
    """The view needs personal data that the retention purge has removed."""


class Service:
    """Base class for services; subclass it and return an instance from ``register_services``.

    Class attributes:

    * ``name`` -- slug used in URLs, config keys and the database (``civil_documents``);
    * ``title``, ``description``, ``version`` -- shown in ``GET /api/v1/services`` and docs;
    * ``titles`` -- the title in the console's other languages, by language code
      (``{"id": "Pengantaran dokumen"}``); the console shows ``title`` where none is given;
    * ``order_kind`` -- ``"delivery"`` or ``"ride"``: which couriers can take its orders;
    * ``request_schema`` -- a marshmallow ``Schema`` class for the agency's JSON body;
    * ``config_schema`` -- a marshmallow ``Schema`` class for its ``services.yaml`` entry;
    * ``example_request`` -- a valid body, shown in the OpenAPI document.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    titles: ClassVar[dict[str, str]] = {}
    description: ClassVar[str] = ""
    version: ClassVar[str] = "0.1.0"
    order_kind: ClassVar[str] = "delivery"
    request_schema: ClassVar[type[Schema]]
    config_schema: ClassVar[type[Schema] | None] = None
    example_request: ClassVar[dict | None] = None
    #: a field whose value (the :meth:`reference`) may have only one active request per agency
    unique_reference_field: ClassVar[str | None] = None
    #: give each request a delivery PIN that the recipient tells the courier
    delivery_pin: ClassVar[bool] = False

    def validate(self, payload: Any, config: dict) -> dict:
        """Validate an agency's body against the schema and this service's settings.

        :param config: this service's validated settings
        :return: the loaded data, which the gateway stores encrypted
        :raises marshmallow.ValidationError: with messages keyed by field
        """
        return self.load_request(payload)

    def load_request(self, payload: Any) -> dict:
        """``payload`` loaded by :attr:`request_schema` (one schema object shared by every
        request: :func:`gateway.fields.shared_schema`).

        :raises marshmallow.ValidationError: with messages keyed by field
        """
        return shared_schema(self.request_schema).load(payload)

    def admit(self, data: dict, config: dict, eligibility: dict | None) -> None:
        """Last word before a validated request is stored, given the eligibility decision.

        :raises RequestRefused: to refuse it with a code of the service's own
        """

    def capacity(self, data: dict, config: dict) -> Capacity | None:
        """What limited resource this request takes, if any (checked at intake, atomically
        with storing it: a full resource refuses the request with ``capacity_full``)."""
        return None

    def alternatives(self, data: dict, config: dict, taken) -> list[dict]:
        """When the capacity is full: other options to offer, e.g. the next departures with
        seats. ``taken(key)`` says how many units active requests hold for a key."""
        return []

    def views(self) -> dict[str, View]:
        """Extra representations of this service's requests, by name (e.g. ``fhir``)."""
        return {}

    def stored_form(self, data: dict) -> dict:
        """The JSON form in which a validated request is stored (encrypted) and later handed
        to :meth:`build_order`: the request schema's own dump, so dates become ISO strings."""
        return shared_schema(self.request_schema).dump(data)

    def reference(self, data: dict) -> str | None:
        """The agency's own reference for a request (e.g. a prescription id), stored in clear
        so that operators can search by it. It must not be personal data."""
        return None

    def notice_contacts(self, data: dict, config: dict) -> NoticeContacts | None:
        """Who gets this request's notices (``gateway.notices``), or None for no one.

        Pure: no I/O. ``data`` is the :meth:`stored_form` of the request. The default reads
        the neutral order: the person at the last drop-off of a delivery (the passenger,
        at the pickup, of a ride), in the request's optional ``language``
        (:func:`gateway.fields.notice_language`); it names no office, so a failed notice
        names the agency and the service's ``office_phone`` setting. A service whose
        requests leave from an office of its own (a puskesmas) says so by overriding this.
        """
        order = self.build_order(data, config, "notice")
        person = order.dropoffs[-1].contact if order.kind == "delivery" \
            else order.pickup.contact
        if not person.phone:
            return None
        return NoticeContacts(name=person.name, phone=person.phone,
                              language=data.get("language"))

    def build_order(self, data: dict, config: dict, reference: str):
        """Turn a stored request into a ``DeliveryOrder`` or ``RideOrder``.

        Pure: no I/O. ``data`` is the :meth:`stored_form` of the validated request;
        ``reference`` is the gateway's opaque reference to hand to couriers.
        """
        raise NotImplementedError
