"""`GET /api/v1/reports/overview`: the dashboard's figures for a period, for admins and their tools."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import current_app
from flask.views import MethodView
from flask_smorest import Api
from marshmallow import RAISE, Schema, fields, validate

from app.api_common import api_blueprint
from app.auth.actor import admin_only
from app.dashboard import services
from app.schemas import Uuid

blp = api_blueprint("reports", "Reports: the figures of the admin dashboard.", tag="Reports")


def register(api: Api) -> None:
    api.register_blueprint(blp)


class OverviewArgs(Schema):
    from_ = fields.Date(data_key="from", load_default=None, metadata={
        "description": "First day (UTC). Default: 29 days before `to`. After `to`, the period is empty; "
                       f"more than {services.MAX_YEARS} years before it (in calendar years): 422."})
    to = fields.Date(load_default=None, metadata={"description": "Last day (UTC), inclusive. Default: today."})


class BacklogSchema(Schema):
    total = fields.Integer()
    by_status = fields.Dict(keys=fields.String(), values=fields.Integer())
    by_priority = fields.Dict(keys=fields.String(), values=fields.Integer())


# Figures come back as JSON (they are cached so), hence dates and times as formatted strings.
def _date(**kwargs: object) -> fields.String:
    return fields.String(metadata={"format": "date", **kwargs.pop("metadata", {})}, **kwargs)


def _datetime(**kwargs: object) -> fields.String:
    return fields.String(metadata={"format": "date-time", **kwargs.pop("metadata", {})}, **kwargs)


class DaySchema(Schema):
    day = _date(metadata={"description": "The bucket's first day in the period: the day itself, the Monday of "
                                         "the week or the 1st of the month (the first bucket starts at `from`)."})
    created = fields.Integer(metadata={"description": "Tickets created in the bucket."})
    closed = fields.Integer(metadata={"description": "Tickets closed in the bucket."})


class PercentilesSchema(Schema):
    count = fields.Integer()
    median_seconds = fields.Integer(allow_none=True)
    p90_seconds = fields.Integer(allow_none=True)


class AgentLoadSchema(Schema):
    user_id = Uuid()
    name = fields.String()
    role = fields.String()
    capacity = fields.Integer(allow_none=True)
    available = fields.Boolean()
    open_tickets = fields.Integer()


class UnassignedSchema(Schema):
    count = fields.Integer()
    oldest_created_at = _datetime(allow_none=True)


class RuleDecisionsSchema(Schema):
    rule_id = Uuid(allow_none=True)
    rule_name = fields.String()
    assigned = fields.Integer()
    waiting = fields.Integer()


class PeriodSchema(Schema):
    from_ = _date(data_key="from", attribute="from")
    to = _date()
    days = fields.Integer(metadata={"description": "Days in the period; 0 when `from` is after `to`."})


class OverviewSchema(Schema):
    period = fields.Nested(PeriodSchema)
    computed_at = _datetime(metadata={"description": "Figures may be cached for a few seconds."})
    backlog = fields.Nested(BacklogSchema, metadata={"description": "Open tickets now."})
    bucket = fields.String(validate=validate.OneOf(services.BUCKETS), metadata={
        "description": "What each `flow` entry counts: a `day`; a `week` (Monday to Sunday) when the period is "
                       f"over {services.WEEKLY_AFTER_DAYS} days; a `month` when it is over "
                       f"{services.MONTHLY_AFTER_DAYS} days. Buckets are cut to the period."})
    flow = fields.List(fields.Nested(DaySchema), metadata={
        "description": "Created and closed per bucket, oldest first, zeros included; empty for an empty period."})
    first_response = fields.Nested(PercentilesSchema, metadata={
        "description": "Creation to first staff reply, for tickets created in the period."})
    resolution = fields.Nested(PercentilesSchema, metadata={
        "description": "Creation to resolution, for tickets resolved in the period."})
    agents = fields.List(fields.Nested(AgentLoadSchema), metadata={"description": "Open load beside capacity."})
    unassigned = fields.Nested(UnassignedSchema)
    rules = fields.List(fields.Nested(RuleDecisionsSchema), metadata={
        "description": "Automatic assignment decisions in the period, per rule."})


@blp.route("/reports/overview")
class Overview(MethodView):
    @admin_only
    @blp.arguments(OverviewArgs, location="query", unknown=RAISE)
    @blp.response(200, OverviewSchema)
    def get(self, args):
        """The dashboard's figures for a period (default: the last 30 days, UTC).

        Any two days make a period. With `from` after `to` it is empty: no days, nothing counted in
        it (backlog, agents and the unassigned queue are figures of now and still answer). A long
        period counts `flow` per week or month, as `bucket` says.
        """
        period = services.Period.of(args["from_"], args["to"], datetime.now(UTC).date())
        # Already JSON in the documented shape (and cached so): flask-smorest passes a Response through.
        return current_app.response_class(services.figures_json(period), mimetype="application/json")
