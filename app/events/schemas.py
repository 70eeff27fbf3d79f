"""Schemas of the event feed."""

from __future__ import annotations

from marshmallow import Schema, fields, validate
from webargs.fields import DelimitedList

from app.events import EVENT_TYPES
from app.pagination import PageArgs
from app.schemas import Uuid


class FeedArgs(PageArgs):
    types = DelimitedList(fields.String(validate=validate.OneOf(tuple(EVENT_TYPES))), validate=validate.Length(
        min=1, max=len(EVENT_TYPES)), metadata={"description": "Only these event types, comma separated."})


class EventSchema(Schema):
    id = Uuid(metadata={"description": "The event's id; a webhook delivery carries it as `X-Webhook-Id`."})
    type = fields.String(validate=validate.OneOf(tuple(EVENT_TYPES)))
    created_at = fields.DateTime()
    data = fields.Dict(metadata={"description": "The resource as the change left it: `ticket`, `message` or "
                                                "`attachment`, plus `changes` or `source` on some types."})


class EventPageSchema(Schema):
    items = fields.List(fields.Nested(EventSchema))
    next_cursor = fields.String(allow_none=True, metadata={
        "description": "The next page, or null when this page reached the newest event."})
    poll_cursor = fields.String(metadata={
        "description": "Where to continue from later, even when `next_cursor` is null: poll with it."})
