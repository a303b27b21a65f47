"""What the population office sends to dukcapil_delivery, and the settings the service takes.

The request carries the citizen's NIK: the office needs it on the request to match the
printed card to the person, and the gateway stores it encrypted like all personal data. It
goes no further: the courier order built in ``service.py`` has no place for it.

Unknown fields are refused (``unknown = RAISE``): a typo in a request is a 422 naming the
field, never data silently dropped. Phones are normalised to ``+62...``.
"""

from __future__ import annotations

import copy
import re

from gateway.fields import (
    IndonesianPhone,
    LocationSchema,
    PickupPlaceSchema,
    ServiceAreaSchema,
)
from marshmallow import RAISE, Schema, ValidationError, fields, validate

#: The documents the service knows; ``documents`` in the settings says which are offered.
DOCUMENT_TYPES = ("ktp_el", "kk")
#: Who else may receive a family card for the citizen (a KTP-el goes to its owner only).
RELATIONSHIPS = ("spouse", "parent", "child", "sibling")

#: SAMPLE data: set the real offices in the gateway's config/services.yaml (``offices``).
SAMPLE_OFFICES = [
    {"id": "disdukcapil-banyuwangi", "name": "Disdukcapil Kabupaten Banyuwangi",
     "address": "Jl. K.H. Agus Salim, Banyuwangi",
     "location": {"lat": -8.2150, "lng": 114.3580},
     "phone": "+6281100000010", "contact_name": "Loket pengiriman dokumen"},
    {"id": "mpp-banyuwangi", "name": "Mal Pelayanan Publik Banyuwangi",
     "address": "Jl. Jenderal Ahmad Yani, Banyuwangi",
     "location": {"lat": -8.2185, "lng": 114.3668},
     "phone": "+6281100000011", "contact_name": "Loket Dukcapil MPP"},
]

_NIK = re.compile(r"^\d{16}$")


class Nik(fields.String):
    """A NIK (Nomor Induk Kependudukan): 16 digits, the 7th to 12th the birth date DDMMYY,
    with 40 added to the day for women. Only its shape is checked; the office knows it."""

    def _deserialize(self, value, attr, data, **kwargs):
        nik = super()._deserialize(value, attr, data, **kwargs)
        if not _NIK.match(nik):
            raise ValidationError("Must be the 16-digit NIK.")
        day, month = int(nik[6:8]), int(nik[8:10])
        if not (1 <= day % 40 <= 31 and day <= 71 and 1 <= month <= 12):
            raise ValidationError("Not a NIK: its birth-date digits are impossible.")
        return nik


class CitizenSchema(Schema):
    """The person the document belongs to, at home."""

    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    nik = Nik(required=True, metadata={"description": "Stored encrypted; never sent to a "
                                                      "courier."})
    phone = IndonesianPhone(required=True, mobile=True)   # the courier calls the citizen
    address = fields.String(required=True, validate=validate.Length(min=5, max=300))
    location = fields.Nested(LocationSchema, required=True)


class RecipientSchema(Schema):
    """Someone of the family who may receive a family card in the citizen's place."""

    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Length(min=1, max=120))
    phone = IndonesianPhone(required=True, mobile=True)
    relationship = fields.String(required=True, validate=validate.OneOf(RELATIONSHIPS))


class DukcapilDeliveryRequestSchema(Schema):
    """A printed KTP-el or KK to carry from the office to the citizen's home."""

    class Meta:
        unknown = RAISE

    application_number = fields.String(required=True, validate=validate.Regexp(
        r"^[A-Z0-9][A-Z0-9-]{5,39}$"), metadata={
        "description": "The office's registration number of the application."})
    office_id = fields.String(required=True, metadata={
        "description": "The office holding the printed document (see the settings)."})
    document = fields.String(required=True, validate=validate.OneOf(DOCUMENT_TYPES))
    citizen = fields.Nested(CitizenSchema, required=True)
    recipient = fields.Nested(RecipientSchema, load_default=None, allow_none=True, metadata={
        "description": "A family member who may receive a KK instead; never for a KTP-el."})
    notes_for_courier = fields.String(load_default=None, allow_none=True,
                                      validate=validate.Length(max=120))


class DukcapilDeliveryConfigSchema(Schema):
    """The service's entry in the gateway's ``config/services.yaml``."""

    class Meta:
        unknown = RAISE

    offices = fields.List(fields.Nested(PickupPlaceSchema), validate=validate.Length(min=1),
                          load_default=lambda: copy.deepcopy(SAMPLE_OFFICES))
    regency_code = fields.String(load_default="3510", validate=validate.Regexp(r"^\d{4}$"),
                                 metadata={"description": "The first four digits of the NIK "
                                                          "of the regency's residents "
                                                          "(3510: Banyuwangi)."})
    documents = fields.List(fields.String(validate=validate.OneOf(DOCUMENT_TYPES)),
                            load_default=lambda: list(DOCUMENT_TYPES),
                            metadata={"description": "The documents delivered."})
    service_area = fields.Nested(ServiceAreaSchema, load_default=None, allow_none=True)
