"""REST endpoints for users, teams and team membership."""

from __future__ import annotations

import uuid

from flask.views import MethodView
from flask_smorest import Api

from app.api_common import api_blueprint
from app.auth.actor import admin_only, current_actor, staff_only
from app.extensions import db
from app.idempotency import idempotent
from app.pagination import PageArgs, page_body, page_schema
from app.people import services
from app.people.schemas import TeamPatchSchema, TeamSchema, UserListArgs, UserPatchSchema, UserSchema

blp = api_blueprint("people", "Users (admins, agents, requesters), teams and team membership.",
                    tag="People")


def register(api: Api) -> None:
    api.register_blueprint(blp)


@blp.route("/users")
class Users(MethodView):
    @staff_only
    @blp.arguments(UserListArgs, location="query")
    @blp.response(200, page_schema(UserSchema))
    def get(self, args):
        """List the users of the organization, oldest first."""
        return page_body(*services.list_users(args.get("role"), args["limit"], args.get("cursor")))

    @admin_only
    @idempotent
    @blp.arguments(UserSchema)
    @blp.response(201, UserSchema)
    @blp.alt_response(409, response="DEFAULT_ERROR")
    def post(self, data):
        """Add a user (admin, agent or requester). A taken email answers 409."""
        return services.create_user(**data)


@blp.route("/users/<uuid:user_id>")
class UserById(MethodView):
    @blp.response(200, UserSchema)
    def get(self, user_id: uuid.UUID):
        """Get a user. Requesters may only read themselves."""
        return services.user_for(current_actor(), user_id)

    @blp.arguments(UserPatchSchema, required=False)
    @blp.response(200, UserSchema)
    @blp.alt_response(409, response="DEFAULT_ERROR")
    def patch(self, changes, user_id: uuid.UUID):
        """Change a user. Admins change anyone; a user may change their own name, password and availability."""
        user = services.change_user(current_actor(), user_id, changes)
        db.session.commit()
        return user

    @admin_only
    @blp.response(204)
    @blp.alt_response(409, response="DEFAULT_ERROR")
    def delete(self, user_id: uuid.UUID):
        """Deactivate a user: their sessions end, their keys are revoked, they leave their teams.

        An agent's open tickets go back to their team's queue and pending ones lose their assignee.
        """
        services.delete_user(services.user_or_404(user_id))
        db.session.commit()


@blp.route("/teams")
class Teams(MethodView):
    @staff_only
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_schema(TeamSchema))
    def get(self, args):
        """List teams (departments) by name, with their member ids."""
        return page_body(*services.list_teams(args["limit"], args.get("cursor")))

    @admin_only
    @idempotent
    @blp.arguments(TeamSchema)
    @blp.response(201, TeamSchema)
    @blp.alt_response(409, response="DEFAULT_ERROR")
    def post(self, data):
        """Create a team. A taken name answers 409."""
        return services.team_view(services.create_team(**data), [])


@blp.route("/teams/<uuid:team_id>")
class TeamById(MethodView):
    @staff_only
    @blp.response(200, TeamSchema)
    def get(self, team_id: uuid.UUID):
        """Get a team with its member ids."""
        return services.team_view(services.team_or_404(team_id))

    @admin_only
    @blp.arguments(TeamPatchSchema, required=False)
    @blp.response(200, TeamSchema)
    @blp.alt_response(409, response="DEFAULT_ERROR")
    def patch(self, changes, team_id: uuid.UUID):
        """Rename a team or change its description."""
        team = services.update_team(services.team_or_404(team_id), changes)
        db.session.commit()
        return services.team_view(team)

    @admin_only
    @blp.response(204)
    @blp.alt_response(409, response="DEFAULT_ERROR", description="Assignment rules route tickets to the team.")
    def delete(self, team_id: uuid.UUID):
        """Delete a team; its tickets keep their history and lose the team. Rules routing to it must be
        changed or deleted first (409 names them)."""
        services.delete_team(services.team_or_404(team_id))
        db.session.commit()


@blp.route("/teams/<uuid:team_id>/members/<uuid:user_id>")
class TeamMembers(MethodView):
    @admin_only
    @blp.response(200, TeamSchema)
    @blp.alt_response(422, response="UNPROCESSABLE_ENTITY", description="The user is a requester.")
    def put(self, team_id: uuid.UUID, user_id: uuid.UUID):
        """Add an agent or admin to a team (idempotent); a requester answers 422."""
        team = services.team_or_404(team_id)
        services.add_member(team, services.user_or_404(user_id))
        db.session.commit()
        return services.team_view(team)

    @admin_only
    @blp.response(204)
    def delete(self, team_id: uuid.UUID, user_id: uuid.UUID):
        """Remove a user from a team."""
        services.remove_member(services.team_or_404(team_id), user_id)
        db.session.commit()
