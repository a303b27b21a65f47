"""What a pharmacy sends, and how the service is configured.

Words of the field: a *puskesmas* is a community health centre with its own pharmacy; the
*NIK* is the 16-digit national identity number. The NIK and the item names are kept
(encrypted) for the health office, and never reach a courier.
"""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate, validates_schema

from gateway.fields import (
    IndonesianPhone,
    LocationSchema,
    PickupPlaceSchema,
    ServiceAreaSchema,
    WholeMatch,
    notice_language,
    place_registry,
)

from .satusehat import SatusehatSettingsSchema

REFERENCE = WholeMatch(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$",
                            error="Use 1 to 64 letters, digits, '.', '_', '/' or '-'.")

# SATUSEHAT references a puskesmas already holds (all optional; see ``fhir.py``). Their values
# go into FHIR references (``Patient/{id}``) and identifier systems, so each must be a FHIR
# ``id`` (R4 datatypes: ``[A-Za-z0-9\-\.]{1,64}``); the messages never echo the value.
FHIR_ID = WholeMatch(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$",
                          error="Must be a SATUSEHAT id: 1 to 64 letters, digits, '-' or '.'.")
#: IHS numbers of patients (``P02478375538``) and practitioners (``N10000001``): an optional
#: capital letter and digits (SATUSEHAT sandbox examples, [S])
IHS_NUMBER = WholeMatch(r"^[A-Z]?[0-9]{8,14}$",
                             error="Must be an IHS number: an optional capital letter and 8 to "
                                   "14 digits.")
#: a KFA (Kamus Farmasi dan Alat Kesehatan) product code: 8 digits, e.g. ``93001019`` ([S])
KFA_CODE = WholeMatch(r"^[0-9]{8}$", error="Must be a KFA code of 8 digits.")
#: a code of HL7 v3 orderableDrugForm (``TAB``, ``CAP``, ``SYR``): the unit of ``quantity``
DRUG_FORM = WholeMatch(r"^[A-Z]{2,12}$", error="Must be an HL7 v3 orderableDrugForm code "
                                                    "such as TAB, CAP or SYR.")


class PatientSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Length(min=1, max=120),
                         metadata={"label": {"id": "Nama pasien", "en": "Patient's name"}})
    # the courier calls the patient
    phone = IndonesianPhone(required=True, mobile=True, metadata={
        "label": {"id": "Nomor HP pasien", "en": "Patient's mobile number"},
        "help": {"id": "Nomor HP yang dihubungi kurir, mis. 0812-3456-7890.",
                 "en": "The mobile number the courier calls, e.g. 0812-3456-7890."}})
    nik = fields.String(required=True, validate=WholeMatch(
        r"^[0-9]{16}$", error="Must be exactly 16 digits."),
        metadata={"description": "16-digit national identity number; never sent to a courier.",
                  "label": {"id": "NIK", "en": "NIK (national identity number)"},
                  "help": {"id": "16 angka; tidak pernah dikirim ke kurir.",
                           "en": "16 digits; never sent to a courier."}})
    address = fields.String(required=True, validate=validate.Length(min=5, max=300),
                            metadata={"label": {"id": "Alamat", "en": "Address"}})
    location = fields.Nested(LocationSchema, required=True, metadata={
        "label": {"id": "Titik antar", "en": "Delivery point"},
        "help": {"id": "Lintang dan bujur rumah pasien.",
                 "en": "Latitude and longitude of the patient's home."}})
    ihs_number = fields.String(load_default=None, validate=IHS_NUMBER, metadata={
        "description": "The patient's SATUSEHAT IHS number (Patient id), if the puskesmas "
                       "has it; personal data, never sent to a courier.",
        "label": {"id": "Nomor IHS pasien", "en": "Patient's IHS number"},
        "help": {"id": "Nomor IHS SATUSEHAT pasien, bila ada; tidak pernah dikirim ke kurir.",
                 "en": "The patient's SATUSEHAT IHS number, if known; never sent to a "
                       "courier."}})


#: Categories BPOM 8/2020 (Pasal 27) forbids distributing online; refused unless allowed.
RESTRICTED_CATEGORIES = ("narcotic", "psychotropic", "precursor", "injectable")
CATEGORIES = ("regular", "insulin", *RESTRICTED_CATEGORIES)


class ItemSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Length(min=1, max=200),
                         metadata={"label": {"id": "Nama obat", "en": "Medicine"}})
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=10000),
                              metadata={"label": {"id": "Jumlah", "en": "Quantity"}})
    category = fields.String(load_default="regular", validate=validate.OneOf(CATEGORIES),
                             metadata={"label": {"id": "Golongan", "en": "Category"},
                                       "help": {"id": "Kosong: obat biasa.",
                                                "en": "Empty: a regular medicine."},
                                       "description": "regular, insulin (an injectable that "
                                                      "may be delivered), narcotic, psychotropic,"
                                                      " precursor or injectable."})
    kfa_code = fields.String(load_default=None, validate=KFA_CODE, metadata={
        "description": "The drug's KFA code (SATUSEHAT's drug dictionary).",
        "label": {"id": "Kode KFA", "en": "KFA code"},
        "help": {"id": "8 angka, dari Kamus Farmasi dan Alat Kesehatan (opsional).",
                 "en": "8 digits, from SATUSEHAT's drug dictionary (optional)."}})
    unit = fields.String(load_default=None, validate=DRUG_FORM, metadata={
        "description": "The unit of quantity, an HL7 v3 orderableDrugForm code (TAB, CAP).",
        "label": {"id": "Satuan", "en": "Unit"},
        "help": {"id": "Mis. TAB, CAP, SYR (opsional).", "en": "E.g. TAB, CAP, SYR "
                                                                "(optional)."}})
    medication_request_id = fields.String(load_default=None, validate=FHIR_ID, metadata={
        "description": "The SATUSEHAT MedicationRequest (prescription item) this dispenses.",
        "label": {"id": "Id MedicationRequest SATUSEHAT",
                  "en": "SATUSEHAT MedicationRequest id"}})


class SatusehatReferencesSchema(Schema):
    """Where the dispense belongs in SATUSEHAT: the ids the puskesmas's own system holds."""

    class Meta:
        unknown = RAISE

    organization_id = fields.String(required=True, validate=FHIR_ID, metadata={
        "description": "The puskesmas's SATUSEHAT Organization id (names the identifier "
                       "systems).",
        "label": {"id": "Id Organization puskesmas", "en": "Puskesmas Organization id"}})
    location_id = fields.String(load_default=None, validate=FHIR_ID, metadata={
        "description": "The pharmacy's SATUSEHAT Location id.",
        "label": {"id": "Id Location apotek", "en": "Pharmacy Location id"}})
    encounter_id = fields.String(load_default=None, validate=FHIR_ID, metadata={
        "description": "The visit's SATUSEHAT Encounter id.",
        "label": {"id": "Id Encounter kunjungan", "en": "Visit Encounter id"}})
    pharmacist_ihs_number = fields.String(load_default=None, validate=IHS_NUMBER, metadata={
        "description": "The dispensing pharmacist's IHS number (Practitioner id).",
        "label": {"id": "Nomor IHS apoteker", "en": "Pharmacist's IHS number"}})


class MedicineDeliveryRequestSchema(Schema):
    """A prescription to deliver to a patient's home."""

    class Meta:
        unknown = RAISE

    prescription_id = fields.String(required=True, validate=REFERENCE, metadata={
        "description": "The pharmacy's prescription number.",
        "label": {"id": "Nomor resep", "en": "Prescription number"},
        "help": {"id": "Nomor resep dari apotek.", "en": "The pharmacy's prescription number."}})
    pickup_location_id = fields.String(required=True, validate=validate.Length(min=1, max=64),
                                       metadata={"description": "A puskesmas or pharmacy id "
                                                                "from the gateway's registry.",
                                                 "label": {"id": "Diambil dari",
                                                           "en": "Picked up at"},
                                                 "help": {"id": "Puskesmas atau apotek asal.",
                                                          "en": "The puskesmas or pharmacy "
                                                                "it leaves from."},
                                                 "choices_from": "pickup_locations"})
    patient = fields.Nested(PatientSchema, required=True,
                            metadata={"label": {"id": "Pasien", "en": "Patient"}})
    items = fields.List(fields.Nested(ItemSchema), required=True,
                        validate=validate.Length(min=1, max=50),
                        metadata={"label": {"id": "Obat", "en": "Medicines"}})
    cold_chain = fields.Boolean(load_default=False, metadata={
        "description": "The package must stay cool (insulin, some vaccines).",
        "label": {"id": "Rantai dingin (harus tetap dingin)",
                  "en": "Cold chain (must stay cool)"},
        "help": {"id": "Mis. insulin dan sebagian vaksin.",
                 "en": "E.g. insulin and some vaccines."}})
    pharmacist_counselled = fields.Boolean(required=True, metadata={
        "description": "A pharmacist explained the medicine to the patient before dispatch.",
        "label": {"id": "Apoteker sudah memberi konseling",
                  "en": "A pharmacist has counselled the patient"},
        "help": {"id": "Apoteker sudah menjelaskan obatnya kepada pasien sebelum dikirim.",
                 "en": "A pharmacist explained the medicine to the patient before "
                       "dispatch."}})
    notes_for_courier = fields.String(load_default=None, allow_none=True,
                                      validate=validate.Length(max=200),
                                      metadata={"label": {"id": "Catatan untuk kurir",
                                                          "en": "Notes for the courier"}})
    language = notice_language()
    satusehat = fields.Nested(SatusehatReferencesSchema, load_default=None, metadata={
        "description": "SATUSEHAT references, for the FHIR record of the dispense; "
                       "health data, sealed and purged with the request.",
        "label": {"id": "Rujukan SATUSEHAT (opsional)",
                  "en": "SATUSEHAT references (optional)"},
        "help": {"id": "Untuk catatan FHIR penyerahan obat; kosongkan bila tidak ada.",
                 "en": "For the FHIR record of the dispense; leave empty if none."}})


class EligibilitySchema(Schema):
    """The default eligibility rule; a connector plugin to DTSEN or BPJS PBI overrides it."""

    class Meta:
        unknown = RAISE

    rule = fields.String(load_default="always",
                         validate=validate.OneOf(["always", "allow_list", "never"]))
    #: keyed digests of eligible NIKs (never the NIKs themselves), for ``allow_list``
    allow_list_nik_hmac = fields.List(
        fields.String(validate=validate.Regexp(r"^[0-9a-f]{64}$")), load_default=list,
        metadata={"description": "One line of `gateway identifiers digest` per eligible NIK "
                                 "(HMAC-SHA256 keyed by this deployment's key material)."})
    #: the old bare SHA-256 list: reversible, so refused when it holds anything
    allow_list_nik_sha256 = fields.List(
        fields.String(), load_default=list, validate=validate.Length(max=0, error=(
            "Bare SHA-256 digests of NIKs can be reversed by brute force and are no longer "
            "accepted: put the NIKs' keyed digests under allow_list_nik_hmac instead "
            "(`gateway identifiers digest < niks.txt` prints them) and remove this key.")),
        metadata={"description": "Replaced by allow_list_nik_hmac; must be empty."})
    #: refuse ineligible patients (otherwise they are served, unsubsidised)
    required = fields.Boolean(load_default=False)


class MedicineDeliveryConfigSchema(Schema):
    class Meta:
        unknown = RAISE

    service_area = fields.Nested(ServiceAreaSchema, load_default=None, allow_none=True)
    pickup_locations = fields.List(fields.Nested(PickupPlaceSchema), load_default=list)
    allowed_restricted_categories = fields.List(
        fields.String(validate=validate.OneOf(RESTRICTED_CATEGORIES)), load_default=list,
        metadata={"description": "Restricted categories this regency allows anyway."})
    eligibility = fields.Nested(EligibilitySchema,
                                load_default=lambda: EligibilitySchema().load({}))
    satusehat = fields.Nested(SatusehatSettingsSchema,
                              load_default=lambda: SatusehatSettingsSchema().load({}),
                              metadata={"description": "Sending each delivered request's "
                                                       "record to SATUSEHAT (off by default)."})

    @validates_schema
    def _unique_ids(self, data, **kwargs):
        place_registry(data.get("pickup_locations", []), "pickup_locations")
