"""REST endpoints of the assignment area: rules, and why a ticket was assigned as it was."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from flask.views import MethodView
from flask_smorest import Api, abort

from app import idempotency
from app.api_common import api_blueprint, get_or_404
from app.assignment import services
from app.assignment.models import AssignmentRule
from app.assignment.schemas import RulePatchSchema, RuleSchema, TicketAssignmentSchema
from app.auth.actor import admin_only, current_actor, staff_only
from app.extensions import db
from app.pagination import PageArgs, SortKey, page, page_body, page_schema
from app.tickets.services import ticket_for

blp = api_blueprint("assignment", "Assignment rules, and the recorded reason for each assignment.")
RULE_KEYS = [SortKey(AssignmentRule.position, kind="int"), SortKey(AssignmentRule.created_at, kind="datetime"),
             SortKey(AssignmentRule.id, kind="uuid")]


def register(api: Api) -> None:
    api.register_blueprint(blp)


def _invalid(exc: services.InvalidRule) -> None:
    db.session.rollback()
    abort(422, message=str(exc), errors=exc.errors)


@blp.route("/assignment-rules")
class Rules(MethodView):
    @staff_only
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_schema(RuleSchema))
    def get(self, args):
        """List assignment rules in the order they are tried (lowest `position` first)."""
        items, cursor = page(db.session, sa.select(AssignmentRule), RULE_KEYS, args["limit"], args["cursor"])
        return page_body(items, cursor)

    @admin_only
    @blp.arguments(RuleSchema)
    @blp.response(201, RuleSchema)
    @blp.doc(parameters=[idempotency.HEADER_DOC])
    def post(self, data):
        """Add a rule. The first enabled rule whose conditions all match picks the team and strategy."""
        earlier = idempotency.replay_or_claim("POST /assignment-rules")
        if earlier is not None:
            return earlier
        try:
            rule = services.create_rule(**data)
        except services.InvalidRule as exc:
            _invalid(exc)
        idempotency.remember(RuleSchema().dump(rule))
        db.session.commit()
        return rule


@blp.route("/assignment-rules/<uuid:rule_id>")
class RuleById(MethodView):
    @staff_only
    @blp.response(200, RuleSchema)
    def get(self, rule_id: uuid.UUID):
        """Get an assignment rule."""
        return get_or_404(AssignmentRule, rule_id, "assignment rule")

    @admin_only
    @blp.arguments(RulePatchSchema)
    @blp.response(200, RuleSchema)
    def patch(self, changes, rule_id: uuid.UUID):
        """Change a rule; tickets waiting in the unassigned queue are re-evaluated."""
        rule = get_or_404(AssignmentRule, rule_id, "assignment rule")
        try:
            services.update_rule(rule, changes)
        except services.InvalidRule as exc:
            _invalid(exc)
        db.session.commit()
        return rule

    @admin_only
    @blp.response(204)
    def delete(self, rule_id: uuid.UUID):
        """Delete a rule. Past decisions keep its name."""
        services.delete_rule(get_or_404(AssignmentRule, rule_id, "assignment rule"))
        db.session.commit()


@blp.route("/tickets/<uuid:ticket_id>/assignment")
class TicketAssignment(MethodView):
    @staff_only
    @blp.response(200, TicketAssignmentSchema)
    def get(self, ticket_id: uuid.UUID):
        """Explain a ticket's assignment: rule, strategy, candidates with their load, and the reason."""
        ticket = ticket_for(current_actor(), ticket_id)
        history = services.decisions_for(ticket.id)
        return {"ticket_id": ticket.id, "assignee_id": ticket.assignee_id, "team_id": ticket.team_id,
                "status": ticket.status, "queued": ticket.status == "new" and ticket.assignee_id is None,
                "decision": history[0] if history else None, "history": history}
