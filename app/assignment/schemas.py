"""Request and response schemas for assignment rules and decisions."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate

from app.assignment.models import STRATEGIES
from app.openapi import NOT_BLANK
from app.schemas import BoundedList, Flag, Uuid, WholeNumber, display_name, shows_something, tag_list
from app.tickets.models import PRIORITIES
from app.tickets.schemas import category_text


def _not_blank(keyword: str) -> None:
    """A keyword of white space alone is found in no text: matching skipped it, and the rule took every ticket."""
    if not shows_something(keyword):
        raise ValidationError("A keyword must not be blank.")


class ConditionsSchema(Schema):
    """Every stated condition must hold; an empty list matches anything."""

    priority = BoundedList(fields.String(validate=validate.OneOf(PRIORITIES)), validate=validate.Length(max=4))
    category = BoundedList(category_text(), validate=validate.Length(max=50))
    tags_any = tag_list()
    keywords_any = BoundedList(fields.String(validate=[validate.Length(min=1, max=100), _not_blank],
                                              metadata={"pattern": NOT_BLANK}), validate=validate.Length(max=50))


class RuleSchema(Schema):
    id = Uuid(dump_only=True)
    name = display_name(required=True)
    position = WholeNumber(load_default=0, validate=validate.Range(min=-1_000_000, max=1_000_000))
    conditions = fields.Nested(ConditionsSchema, load_default=dict)
    team_id = Uuid(required=True)
    strategy = fields.String(required=True, validate=validate.OneOf(STRATEGIES))
    required_skills = tag_list(load_default=list)
    enabled = Flag(load_default=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class RulePatchSchema(Schema):
    name = display_name()
    position = WholeNumber(validate=validate.Range(min=-1_000_000, max=1_000_000))
    conditions = fields.Nested(ConditionsSchema)
    team_id = Uuid()
    strategy = fields.String(validate=validate.OneOf(STRATEGIES))
    required_skills = tag_list()
    enabled = Flag()


class CandidateSchema(Schema):
    user_id = Uuid()
    name = fields.String()
    open_tickets = fields.Integer()
    capacity = fields.Integer(allow_none=True)
    available = fields.Boolean()
    eligible = fields.Boolean()
    chosen = fields.Boolean()
    note = fields.String(allow_none=True, metadata={"description": "Why the candidate was passed over."})


class DecisionSchema(Schema):
    id = Uuid()
    source = fields.String(metadata={"description": "`auto` or `manual`."})
    rule_id = Uuid(allow_none=True)
    rule_name = fields.String(allow_none=True)
    strategy = fields.String(allow_none=True)
    team_id = Uuid(allow_none=True)
    candidates = fields.List(fields.Nested(CandidateSchema))
    chosen_user_id = Uuid(allow_none=True)
    reason = fields.String()
    actor_id = Uuid(allow_none=True)
    created_at = fields.DateTime()


class SampleTicketSchema(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(load_default="", validate=validate.Length(max=64 * 1024))
    priority = fields.String(load_default="normal", validate=validate.OneOf(PRIORITIES))
    category = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=100))
    tags = tag_list(load_default=list)


class DryRunSchema(Schema):
    ticket = fields.Nested(SampleTicketSchema, required=True, metadata={"description": "A ticket to route."})
    rule_id = Uuid(load_default=None, allow_none=True,
                   metadata={"description": "Also say whether this rule matches and decides."})


class TriedRuleSchema(Schema):
    id = Uuid()
    name = fields.String()
    position = fields.Integer()
    enabled = fields.Boolean()
    matches = fields.Boolean()


class TestedRuleSchema(TriedRuleSchema):
    decides = fields.Boolean(metadata={"description": "It is the first enabled rule that matches."})


class DryRouteSchema(Schema):
    rule_id = Uuid(allow_none=True)
    rule_name = fields.String(allow_none=True)
    team_id = Uuid()
    team_name = fields.String(allow_none=True)
    strategy = fields.String()
    required_skills = fields.List(fields.String())


class DryRunResultSchema(Schema):
    rules = fields.List(fields.Nested(TriedRuleSchema), metadata={"description": "Every rule, in the order tried."})
    tested_rule = fields.Nested(TestedRuleSchema)
    route = fields.Nested(DryRouteSchema, allow_none=True)
    candidates = fields.List(fields.Nested(CandidateSchema))
    chosen_user_id = Uuid(allow_none=True, metadata={"description": "Who would get it now."})
    reason = fields.String()
    queued_ahead = fields.Integer(metadata={"description": "Tickets waiting in the team's queue ahead of it."})


class TicketAssignmentSchema(Schema):
    """The latest decision first (`decision`), then the history, newest first."""

    ticket_id = Uuid()
    assignee_id = Uuid(allow_none=True)
    team_id = Uuid(allow_none=True)
    status = fields.String()
    queued = fields.Boolean(metadata={"description": "Waiting in the unassigned queue."})
    decision = fields.Nested(DecisionSchema, allow_none=True)
    history = fields.List(fields.Nested(DecisionSchema))
