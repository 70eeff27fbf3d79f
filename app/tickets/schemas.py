"""Request and response schemas for tickets."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.schemas import tag_list
from app.tickets.models import PRIORITIES, STATUSES

MAX_DESCRIPTION = 64 * 1024


class TicketSchema(Schema):
    id = fields.UUID(dump_only=True)
    number = fields.Integer(dump_only=True)
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(load_default="", validate=validate.Length(max=MAX_DESCRIPTION))
    priority = fields.String(load_default="normal", validate=validate.OneOf(PRIORITIES))
    status = fields.String(dump_only=True, validate=validate.OneOf(STATUSES))
    category = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=100))
    tags = tag_list(load_default=list)
    requester_id = fields.UUID(load_default=None, allow_none=True)
    assignee_id = fields.UUID(dump_only=True, allow_none=True)
    team_id = fields.UUID(dump_only=True, allow_none=True)
    resolution = fields.String(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)
    closed_at = fields.DateTime(dump_only=True, allow_none=True)
    resolved_at = fields.DateTime(dump_only=True, allow_none=True)
    first_response_at = fields.DateTime(dump_only=True, allow_none=True)
    version = fields.Integer(dump_only=True)
