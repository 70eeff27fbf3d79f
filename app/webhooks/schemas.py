"""Request and response schemas of webhooks and their delivery log."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate

from app.events import EVENT_TYPES
from app.pagination import PageArgs
from app.schemas import BoundedList, Flag, Uuid, Whole, WholeNumber
from app.webhooks.targets import MAX_URL

# http(s), a host with no user name or password, no #fragment, no spaces or control characters.
PORT = "(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"  # 1 to 65535
LABEL = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
TOP_LABEL = "[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"  # not all digits: that would read as an address
URL_PATTERN = (f"^[Hh][Tt][Tt][Pp][Ss]?://(({LABEL}\\.)*{TOP_LABEL}|([0-9]{{1,3}}\\.){{3}}[0-9]{{1,3}}"
               "|\\[[0-9A-Fa-f:.]{2,45}\\])"
               f"(:{PORT})?([/?][A-Za-z0-9._~%!$&'()*+,;=:@/?-]*)?$")
SECRET_PATTERN = r"^[\x21-\x7e]{16,256}$"
MAX_GRACE = 7 * 24 * 3600
ATTEMPT_STATES = ("sending", "succeeded", "failed")


def _distinct(values: list) -> None:
    if len(set(values)) != len(values):
        raise ValidationError("List each event type once.")


def event_types(**kwargs: object) -> fields.List:
    return BoundedList(fields.String(validate=validate.OneOf(tuple(EVENT_TYPES))),
                        validate=[validate.Length(min=1, max=len(EVENT_TYPES),
                                                  error="Choose at least one event type (at most {max})."), _distinct],
                        metadata={"description": "Event types to receive: " + ", ".join(EVENT_TYPES) + ".",
                                  "uniqueItems": True}, **kwargs)


def url_field(**kwargs: object) -> fields.String:
    return fields.String(validate=[validate.Length(min=1, max=MAX_URL), Whole(URL_PATTERN, error=(
        "An http(s) URL in ASCII: a host name or address, an optional port, path and query."))], metadata={
        "description": "An http(s) URL whose host resolves to public addresses only (checked now and before "
                       "every delivery; a self-hosted instance may allow private ones). ASCII only: write "
                       "an international domain name in its xn-- form.",
        "format": "webhook-url",
        "example": "https://example.com/hooks/tickets"}, **kwargs)


def secret_field(**kwargs: object) -> fields.String:
    return fields.String(validate=Whole(SECRET_PATTERN, error="16 to 256 printable ASCII characters."),
                         metadata={"description": "Signs deliveries; made for you when left out."}, **kwargs)


class WebhookSchema(Schema):
    id = Uuid(dump_only=True)
    url = url_field(required=True)
    events = event_types(required=True)
    include_internal = Flag(load_default=False, metadata={
        "description": "Also send `message.created` for internal notes (staff only)."})
    description = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))
    secret = secret_field(load_only=True)
    enabled = fields.Boolean(dump_only=True)
    disabled_reason = fields.String(dump_only=True, allow_none=True,
                                    metadata={"description": "Why deliveries stopped, if they did."})
    disabled_at = fields.DateTime(dump_only=True, allow_none=True)
    previous_secret_expires_at = fields.DateTime(dump_only=True, allow_none=True, metadata={
        "description": "Until then, an earlier secret signs deliveries too (each rotation's for its own "
                       "grace period; this is when the last of them ends)."})
    consecutive_failures = fields.Integer(dump_only=True)
    last_success_at = fields.DateTime(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class NewWebhookSchema(WebhookSchema):
    class Meta:
        exclude = ("secret",)

    signing_secret = fields.String(dump_only=True, data_key="secret",
                                   metadata={"description": "The signing secret; shown only now."})


class WebhookPatchSchema(Schema):
    url = url_field()
    events = event_types()
    include_internal = Flag()
    description = fields.String(allow_none=True, validate=validate.Length(max=500))
    enabled = Flag(metadata={"description": "`true` turns a disabled webhook back on and forgets its failures."})


class RotateSecretSchema(Schema):
    secret = secret_field(load_default=None)
    grace_period_seconds = WholeNumber(load_default=24 * 3600, validate=validate.Range(min=0, max=MAX_GRACE),
                                       metadata={"description": "How long the old secret keeps signing too."})


class AttemptListArgs(PageArgs):
    event_id = Uuid(metadata={"description": "Only the attempts at this event."})
    status = fields.String(validate=validate.OneOf(ATTEMPT_STATES))


class RequestSchema(Schema):
    url = fields.String()
    headers = fields.Dict(keys=fields.String(), values=fields.String())
    body = fields.String(metadata={"description": "The exact bytes that were signed, as text."})


class ResponseSchema(Schema):
    status_code = fields.Integer()
    headers = fields.Dict(keys=fields.String(), values=fields.String())
    body = fields.String(metadata={"description": "The start of the receiver's answer (at most 4 KiB)."})


class AttemptSchema(Schema):
    id = Uuid()
    delivery_id = Uuid(metadata={"description": "The event's delivery to this webhook, across attempts."})
    event_id = Uuid(attribute="event_uid")
    event_type = fields.String()
    attempt = fields.Integer(metadata={"description": "1 for the first try, counting retries and redeliveries."})
    redelivery = fields.Boolean(attribute="manual")
    status = fields.String(attribute="state", validate=validate.OneOf(ATTEMPT_STATES))
    request = fields.Method("dump_request", metadata={
        "type": "object", "description": "What was sent: `url`, `headers` and `body`."})
    response = fields.Method("dump_response", allow_none=True, metadata={
        "type": "object", "description": "What came back (`status_code`, its first `headers` up to 4 KiB in all, "
                                       "`body` up to 4 KiB); null if nothing did."})
    error = fields.String(allow_none=True)
    latency_ms = fields.Integer(allow_none=True)
    next_retry_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)

    def dump_request(self, attempt) -> dict:
        return {"url": attempt.url, "headers": attempt.request_headers, "body": attempt.request_body}

    def dump_response(self, attempt) -> dict | None:
        if attempt.response_status is None:
            return None
        return {"status_code": attempt.response_status, "headers": attempt.response_headers or {},
                "body": attempt.response_body or ""}


class DeliverySchema(Schema):
    id = Uuid()
    event_id = Uuid()
    event_type = fields.String()
    state = fields.String(validate=validate.OneOf(("pending", "delivered", "failed")))
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime()
