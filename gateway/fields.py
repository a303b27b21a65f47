"""Marshmallow building blocks that every Indonesian public service needs.

Phone numbers normalised to E.164 (+62..., by ``gateway.phones``), coordinates, a service
area, registries of named places (puskesmas, pickup points) read from config, and
:class:`Secret`, the field a settings schema declares a credential with. They carry no
knowledge of any particular service.
"""

from __future__ import annotations

import functools

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from . import phones


@functools.cache
def shared_schema(schema_class: type[Schema]) -> Schema:
    """One instance of ``schema_class`` for the whole process.

    Making a schema deep-copies each of its declared fields, and each nested schema again
    (13 schema objects for one create: an eighth of its CPU); a marshmallow 4 schema keeps no
    state between ``load`` and ``dump`` calls, so one instance serves every request and
    thread."""
    return schema_class()


class IndonesianPhone(fields.String):
    """A phone number of the home region (``gateway.phones``), stored and sent on as E.164
    (``+62...``), whatever way it was typed (``0812-3456-7890``, ``62812...``).

    :param mobile: only a mobile number will do: for the person a courier calls or texts
        on the way (a patient, a recipient, a visitor), where a fixed line would leave the
        driver at the door with no one to reach. A place's or a shop's number may be fixed.
    """

    def __init__(self, *, mobile: bool = False, **kwargs):
        self.mobile = mobile
        kwargs.setdefault("metadata", {}).setdefault(
            "description", "Indonesian mobile number; normalised to +62..." if mobile
            else "Indonesian phone number; normalised to +62...")
        super().__init__(validate=validate.Length(min=8, max=20), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return phones.canonical(text, mobile=self.mobile)
        except phones.InvalidPhoneNumber as exc:
            raise ValidationError(str(exc)) from None


class WholeMatch(validate.Regexp):
    """A pattern the whole value must match. ``validate.Regexp`` uses ``re.match``, where
    ``$`` also matches before a final newline, so ``"P02478375538\\n"`` would pass
    ``^P[0-9]{11}$``; this one uses ``fullmatch``. (Write ``[0-9]``, not ``\\d``, which
    in Python takes any script's digits.) The pattern stays plain (``^...$``) for the
    OpenAPI document, whose regular expressions are ECMAScript's."""

    def __call__(self, value):
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


class Secret(fields.String):
    """A credential in a service's or courier's settings: write-only.

    Only a field declared secret (this class, or any field with ``metadata={"secret":
    True}``) may hold a reference (``{$env: NAME}``, ``{$file: PATH}``) set in the console;
    the console shows it as "set", never its value, variable or file, and diffs hide it.
    Never show or log its value yourself.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("metadata", {})["secret"] = True
        kwargs.setdefault("validate", validate.Length(min=1))
        super().__init__(**kwargs)


class LocationSchema(Schema):
    class Meta:
        unknown = RAISE

    lat = fields.Float(required=True, allow_nan=False, validate=validate.Range(min=-90, max=90),
                       metadata={"label": {"id": "Lintang", "en": "Latitude"}})
    lng = fields.Float(required=True, allow_nan=False,
                       validate=validate.Range(min=-180, max=180),
                       metadata={"label": {"id": "Bujur", "en": "Longitude"}})


class ServiceAreaSchema(Schema):
    """A bounding box: requests whose places fall outside are refused."""

    class Meta:
        unknown = RAISE

    min_lat = fields.Float(required=True)
    max_lat = fields.Float(required=True)
    min_lng = fields.Float(required=True)
    max_lng = fields.Float(required=True)

    @validates_schema
    def _ordered(self, data, **kwargs):
        if data["min_lat"] >= data["max_lat"] or data["min_lng"] >= data["max_lng"]:
            raise ValidationError("min_* must be smaller than max_*.")


def inside(area: dict | None, location: dict) -> bool:
    if not area:
        return True
    return (area["min_lat"] <= location["lat"] <= area["max_lat"]
            and area["min_lng"] <= location["lng"] <= area["max_lng"])


class PlaceSchema(Schema):
    """A named place from config: a puskesmas, a pharmacy, a pickup point, a destination."""

    class Meta:
        unknown = RAISE

    id = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9][a-z0-9-]{1,63}$"))
    name = fields.String(required=True)
    address = fields.String(required=True)
    location = fields.Nested(LocationSchema, required=True)
    phone = IndonesianPhone(load_default=None)
    contact_name = fields.String(load_default=None)


class PickupPlaceSchema(PlaceSchema):
    """A place a courier collects from (a puskesmas pharmacy): its ``phone`` is the pickup
    contact the driver calls or chats with in the courier's app, so it must be a mobile
    number; a fixed line (``0333-...``) cannot be reached from there."""

    phone = IndonesianPhone(mobile=True, load_default=None)


def place_registry(places: list[dict], field_name: str) -> dict[str, dict]:
    """Index places by id. :raises ValidationError: on a duplicate id."""
    registry: dict[str, dict] = {}
    for index, place in enumerate(places):
        if place["id"] in registry:
            raise ValidationError({field_name: {index: {"id": ["Duplicate id."]}}})
        registry[place["id"]] = place
    return registry


#: the languages citizens' notices are written in (``gateway.notices``' templates)
NOTICE_LANGUAGES = ("id", "en")


def notice_language() -> fields.String:
    """A request's optional ``language`` field: the language of the notices the citizen
    gets (``id`` or ``en``); empty: the region's language. A service declares it in its
    request schema as ``language = notice_language()``; :meth:`gateway.services.Service.
    notice_contacts` reads it."""
    return fields.String(load_default=None, allow_none=True,
                         validate=validate.OneOf(NOTICE_LANGUAGES), metadata={
        "description": "Language of the citizen's WhatsApp/SMS notices: id or en; empty: "
                       "the region's language.",
        "label": {"id": "Bahasa pemberitahuan", "en": "Language of notices"},
        "help": {"id": "id: Bahasa Indonesia, en: English. Kosong: bahasa bawaan wilayah.",
                 "en": "id: Indonesian, en: English. Empty: the region's language."}})
