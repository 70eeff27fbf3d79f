"""REST endpoints of the assignment area: rules, and why a ticket was assigned as it was."""

from __future__ import annotations

import uuid

from flask.views import MethodView
from flask_smorest import Api

from app.api_common import api_blueprint
from app.assignment import services
from app.assignment.schemas import (
    DryRunResultSchema,
    DryRunSchema,
    RulePatchSchema,
    RuleSchema,
    TicketAssignmentSchema,
)
from app.auth.actor import admin_only, current_actor, staff_only
from app.extensions import db
from app.idempotency import idempotent
from app.pagination import PageArgs, page_body, page_schema

blp = api_blueprint("assignment", "Assignment rules, and the recorded reason for each assignment.",
                    tag="Assignment")


def register(api: Api) -> None:
    api.register_blueprint(blp)


@blp.route("/assignment-rules")
class Rules(MethodView):
    @staff_only
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_schema(RuleSchema))
    def get(self, args):
        """List assignment rules in the order they are tried (lowest `position` first)."""
        return page_body(*services.list_rules(args["limit"], args.get("cursor")))

    @admin_only
    @idempotent
    @blp.arguments(RuleSchema)
    @blp.response(201, RuleSchema)
    @blp.alt_response(409, response="DEFAULT_ERROR",
                      description="The organization has its 200 rules, or 20,000 characters of keywords, already.")
    def post(self, data):
        """Add a rule. The first enabled rule whose conditions all match picks the team and strategy."""
        return services.create_rule(**data)


@blp.route("/assignment-rules/dry-run")
class RuleDryRun(MethodView):
    @staff_only
    @blp.arguments(DryRunSchema)
    @blp.response(200, DryRunResultSchema)
    def post(self, data):
        """Say where a sample ticket would go now and why: the rule, the team, the candidates, the pick.

        Nothing is created or assigned.
        """
        return services.dry_run(services.SampleTicket(**data["ticket"]), data["rule_id"])


@blp.route("/assignment-rules/<uuid:rule_id>")
class RuleById(MethodView):
    @staff_only
    @blp.response(200, RuleSchema)
    def get(self, rule_id: uuid.UUID):
        """Get an assignment rule."""
        return services.rule_or_404(rule_id)

    @admin_only
    @blp.arguments(RulePatchSchema, required=False)
    @blp.response(200, RuleSchema)
    @blp.alt_response(409, response="DEFAULT_ERROR",
                      description="The organization's rules would hold more than 20,000 characters of keywords.")
    def patch(self, changes, rule_id: uuid.UUID):
        """Change a rule; tickets waiting in the unassigned queue are re-evaluated."""
        rule = services.update_rule(services.rule_or_404(rule_id), changes)
        db.session.commit()
        return rule

    @admin_only
    @blp.response(204)
    def delete(self, rule_id: uuid.UUID):
        """Delete a rule. Past decisions keep its name."""
        services.delete_rule(services.rule_or_404(rule_id))
        db.session.commit()


@blp.route("/tickets/<uuid:ticket_id>/assignment")
class TicketAssignment(MethodView):
    @staff_only
    @blp.response(200, TicketAssignmentSchema)
    def get(self, ticket_id: uuid.UUID):
        """Explain a ticket's assignment: rule, strategy, candidates with their load, and the reason."""
        return services.explain(current_actor(), ticket_id)
