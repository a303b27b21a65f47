"""Schemas of what the API answers and of its query arguments.

Responses are dumped through these schemas, and the OpenAPI document is generated from the
same classes, so the document cannot drift from what the API returns.
"""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from ..couriers.own_fleet.mapping import STATUS_MAP
from ..records import CURSOR_PATTERN
from ..statuses import Status


class TimelineEntrySchema(Schema):
    status = fields.String(required=True, metadata={"description": "Normalised status."})
    raw_status = fields.String(allow_none=True,
                               metadata={"description": "The provider's own status name."})
    source = fields.String(required=True, metadata={"description": "Who reported it."})
    detail = fields.String(allow_none=True)
    applied = fields.Boolean(required=True, metadata={
        "description": "False when the event arrived late or twice and changed nothing."})
    at = fields.String(required=True, metadata={"description": "ISO 8601 time, UTC."})


class RequestSummarySchema(Schema):
    id = fields.String(required=True)
    service = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf([s.value for s in Status]))
    reference = fields.String(allow_none=True,
                              metadata={"description": "The agency's own reference."})
    key_type = fields.String(required=True, validate=validate.OneOf(["live", "test"]))
    provider = fields.String(allow_none=True, metadata={"description": "Courier that holds it."})
    provider_reference = fields.String(allow_none=True)
    failure_code = fields.String(allow_none=True)
    created_at = fields.String(required=True)
    updated_at = fields.String(required=True)


class CostSchema(Schema):
    quoted = fields.Integer(allow_none=True, metadata={
        "description": "What the booked courier quoted before booking, in whole units of "
                       "`currency`; null when it gave no quote."})
    final = fields.Integer(allow_none=True, metadata={
        "description": "What the courier reported charging; null until it reports a price."})
    currency = fields.String(allow_none=True, metadata={
        "description": "ISO 4217 code (the region's, e.g. IDR)."})
    provider = fields.String(allow_none=True, metadata={"description": "Courier that holds it."})


class RequestDetailSchema(RequestSummarySchema):
    eligibility = fields.Dict(allow_none=True, metadata={
        "description": "The eligibility decision only: eligible, source, decided_at."})
    delivery_pin = fields.String(allow_none=True, metadata={
        "description": "For services that use one: the PIN the recipient tells the courier."})
    proof = fields.Dict(allow_none=True, metadata={"description": "Proof of delivery."})
    delivered_at = fields.String(allow_none=True, metadata={
        "description": "When the courier handed the delivery over, by the courier's own "
                       "report (its proof's time when it gives one); images at `/proof`."})
    purged_at = fields.String(allow_none=True, metadata={
        "description": "When personal data was removed after the retention period."})
    tracking_url = fields.String(allow_none=True, metadata={
        "description": "The public tracking page to give the citizen (no sign-in; shows the "
                       "status, the courier's first name and plate, never personal data). "
                       "Null for requests made before tracking pages existed."})
    cost = fields.Nested(CostSchema, required=True, metadata={
        "description": "What the delivery costs (quoted before booking, final as reported)."})
    timeline = fields.List(fields.Nested(TimelineEntrySchema), required=True)


class ProofImageSchema(Schema):
    index = fields.Integer(required=True, metadata={
        "description": "The image's number, for `/proof/images/{index}`."})
    status = fields.String(required=True, validate=validate.OneOf(
        ["pending", "stored", "failed"]), metadata={
        "description": "`stored` (fetched and kept), `pending` (being fetched) or `failed`."})
    error = fields.String(allow_none=True, metadata={
        "description": "Why a failed image was not kept: `expired` (the courier's link no "
                       "longer worked), `refused` (not a host this courier's proofs may come "
                       "from), `not_an_image`, `too_large`, `unreachable`, `purged`."})
    content_type = fields.String(allow_none=True, metadata={
        "description": "image/jpeg, image/png or image/webp."})
    size = fields.Integer(allow_none=True, metadata={"description": "Bytes."})
    fetched_at = fields.String(allow_none=True)
    courier = fields.String(required=True, metadata={
        "description": "The courier that reported it."})


class ProofListSchema(Schema):
    delivered_at = fields.String(allow_none=True, metadata={
        "description": "When the courier handed the delivery over, by its own report."})
    images = fields.List(fields.Nested(ProofImageSchema), required=True)


class RequestListSchema(Schema):
    requests = fields.List(fields.Nested(RequestSummarySchema), required=True)
    next_cursor = fields.String(allow_none=True, metadata={
        "description": "Pass as `cursor` for the next page; null on the last page."})


class RequestListArgsSchema(Schema):
    class Meta:
        unknown = RAISE

    service = fields.String(validate=validate.Length(min=1, max=64))
    status = fields.String(validate=validate.OneOf([s.value for s in Status]))
    created_after = fields.AwareDateTime(metadata={"description": "ISO 8601 with a zone."})
    created_before = fields.AwareDateTime(metadata={"description": "ISO 8601 with a zone."})
    limit = fields.Integer(validate=validate.Range(min=1, max=200))
    cursor = fields.String(validate=validate.Regexp(CURSOR_PATTERN), metadata={
        "description": "The `next_cursor` of the previous page."})


class ServiceInfoSchema(Schema):
    name = fields.String(required=True)
    title = fields.String(required=True)
    description = fields.String(required=True)
    version = fields.String(required=True)
    order_kind = fields.String(required=True)
    request_schema = fields.Dict(required=True,
                                 metadata={"description": "JSON schema of the request body."})


class ServiceListSchema(Schema):
    services = fields.List(fields.Nested(ServiceInfoSchema), required=True)


class HealthSchema(Schema):
    status = fields.String(required=True)
    checks = fields.Dict(keys=fields.String(), values=fields.String())


class QueueAgeSchema(Schema):
    waiting = fields.Integer(required=True, metadata={
        "description": "Jobs waiting, and ids listed for batch jobs."})
    oldest_age_seconds = fields.Float(allow_none=True, metadata={
        "description": "How long the oldest has waited; null when nothing waits."})
    lagging = fields.Boolean(required=True, metadata={
        "description": "Older than jobs.max_queue_age_seconds."})


class ReadinessSchema(HealthSchema):
    queues = fields.Dict(keys=fields.String(), values=fields.Nested(QueueAgeSchema))
    lagging = fields.Boolean(metadata={
        "description": "Some queue is falling behind; the gateway still accepts work."})


class WebhookReceiptSchema(Schema):
    received = fields.Integer(required=True, metadata={"description": "New reports stored."})
    duplicates = fields.Integer(required=True, metadata={"description": "Already seen."})


class NotifierWebhookReceiptSchema(Schema):
    applied = fields.Integer(required=True, metadata={"description": "Receipts applied."})
    ignored = fields.Integer(required=True, metadata={
        "description": "Receipts that changed nothing (a replay, an older status, a message "
                       "that is not this notifier's)."})
    late = fields.Integer(required=True, metadata={
        "description": "Receipts for a message whose notice went by the next channel: "
                       "recorded, nothing sent."})
    replies = fields.Integer(required=True, metadata={
        "description": "Replies that changed an opt-out (STOP, START)."})


class FleetStepSchema(Schema):
    class Meta:
        unknown = RAISE

    staff_name = fields.String(validate=validate.Length(min=1, max=120))
    pin = fields.String(validate=validate.Regexp(r"^\d{4,8}$"), metadata={
        "description": "deliver: the PIN the recipient tells the courier."})


class FleetJobSchema(Schema):
    id = fields.String(required=True)
    courier = fields.String(required=True)
    state = fields.String(required=True, validate=validate.OneOf(list(STATUS_MAP)))
    key_type = fields.String(required=True, validate=validate.OneOf(["live", "test"]),
                             metadata={"description": "The type of key the request was made "
                                                      "with (always the caller's own)."})
    staff_name = fields.String(allow_none=True)
    order = fields.Dict(required=True, metadata={"description": "What to carry, and where."})
    created_at = fields.String(required=True)
    updated_at = fields.String(required=True)


class FleetJobListSchema(Schema):
    jobs = fields.List(fields.Nested(FleetJobSchema), required=True)


class FleetListArgsSchema(Schema):
    class Meta:
        unknown = RAISE

    state = fields.String(validate=validate.OneOf(list(STATUS_MAP)))
