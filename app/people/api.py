"""REST endpoints for users, teams and team membership."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from flask.views import MethodView
from flask_smorest import Api, abort

from app import idempotency
from app.api_common import answer_as, api_blueprint, get_or_404
from app.auth.actor import admin_only, current_actor, staff_only
from app.extensions import db
from app.pagination import PageArgs, SortKey, page, page_body, page_schema
from app.people import services
from app.people.models import Team, User
from app.people.schemas import TeamPatchSchema, TeamSchema, UserListArgs, UserPatchSchema, UserSchema

blp = api_blueprint("people", "Users (admins, agents, requesters), teams and team membership.")
USER_KEYS = [SortKey(User.created_at, kind="datetime"), SortKey(User.id, kind="uuid")]
TEAM_KEYS = [SortKey(Team.name), SortKey(Team.id, kind="uuid")]
SELF_EDITABLE = {"name", "password", "available"}


def register(api: Api) -> None:
    api.register_blueprint(blp)


@blp.route("/users")
class Users(MethodView):
    @staff_only
    @blp.arguments(UserListArgs, location="query")
    @blp.response(200, page_schema(UserSchema))
    def get(self, args):
        """List the users of the organization, oldest first."""
        stmt = sa.select(User).where(User.deleted_at.is_(None))
        if args.get("role"):
            stmt = stmt.where(User.role == args["role"])
        items, cursor = page(db.session, stmt, USER_KEYS, args["limit"], args["cursor"])
        return page_body(items, cursor)

    @admin_only
    @blp.arguments(UserSchema)
    @blp.response(201, UserSchema)
    @blp.alt_response(409, response="DEFAULT_ERROR")
    @blp.doc(parameters=[idempotency.HEADER_DOC])
    def post(self, data):
        """Add a user (admin, agent or requester). A taken email answers 409."""
        earlier = idempotency.replay_or_claim("POST /users")
        if earlier is not None:
            return earlier
        with answer_as(409, services.Conflict):
            user = services.create_user(**data)
        idempotency.remember(UserSchema().dump(user))
        db.session.commit()
        return user


@blp.route("/users/<uuid:user_id>")
class UserById(MethodView):
    @blp.response(200, UserSchema)
    def get(self, user_id: uuid.UUID):
        """Get a user. Requesters may only read themselves."""
        actor = current_actor()
        if not actor.is_staff and actor.user_id != user_id:
            abort(404, message="No such user.")
        return get_or_404(User, user_id, "user")

    @blp.arguments(UserPatchSchema)
    @blp.response(200, UserSchema)
    @blp.alt_response(409, response="DEFAULT_ERROR")
    def patch(self, changes, user_id: uuid.UUID):
        """Change a user. Admins change anyone; a user may change their own name, password and availability."""
        actor = current_actor()
        user = get_or_404(User, user_id, "user")
        if actor.role != "admin":
            if actor.user_id != user_id:
                abort(403, message="Only admins can change other users.")
            if set(changes) - SELF_EDITABLE:
                abort(403, message="You may change only your name, password and availability.")
        with answer_as(409, services.Conflict):
            services.update_user(user, changes)
        db.session.commit()
        return user

    @admin_only
    @blp.response(204)
    @blp.alt_response(409, response="DEFAULT_ERROR")
    def delete(self, user_id: uuid.UUID):
        """Deactivate a user: their sessions end, their keys are revoked, they leave their teams."""
        user = get_or_404(User, user_id, "user")
        with answer_as(409, services.Conflict):
            services.delete_user(user)
        db.session.commit()


def _team_body(team: Team, member_ids: list[uuid.UUID]) -> dict:
    return {"id": team.id, "name": team.name, "description": team.description, "member_ids": member_ids,
            "created_at": team.created_at, "updated_at": team.updated_at}


@blp.route("/teams")
class Teams(MethodView):
    @staff_only
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_schema(TeamSchema))
    def get(self, args):
        """List teams (departments) by name, with their member ids."""
        teams, cursor = page(db.session, sa.select(Team), TEAM_KEYS, args["limit"], args["cursor"])
        members = services.team_member_ids([t.id for t in teams])
        return page_body([_team_body(t, members[t.id]) for t in teams], cursor)

    @admin_only
    @blp.arguments(TeamSchema)
    @blp.response(201, TeamSchema)
    @blp.alt_response(409, response="DEFAULT_ERROR")
    @blp.doc(parameters=[idempotency.HEADER_DOC])
    def post(self, data):
        """Create a team. A taken name answers 409."""
        earlier = idempotency.replay_or_claim("POST /teams")
        if earlier is not None:
            return earlier
        with answer_as(409, services.Conflict):
            team = services.create_team(**data)
        body = _team_body(team, [])
        idempotency.remember(TeamSchema().dump(body))
        db.session.commit()
        return body


@blp.route("/teams/<uuid:team_id>")
class TeamById(MethodView):
    @staff_only
    @blp.response(200, TeamSchema)
    def get(self, team_id: uuid.UUID):
        """Get a team with its member ids."""
        team = get_or_404(Team, team_id, "team")
        return _team_body(team, services.team_member_ids([team.id])[team.id])

    @admin_only
    @blp.arguments(TeamPatchSchema)
    @blp.response(200, TeamSchema)
    @blp.alt_response(409, response="DEFAULT_ERROR")
    def patch(self, changes, team_id: uuid.UUID):
        """Rename a team or change its description."""
        team = get_or_404(Team, team_id, "team")
        with answer_as(409, services.Conflict):
            services.update_team(team, changes)
        db.session.commit()
        return _team_body(team, services.team_member_ids([team.id])[team.id])

    @admin_only
    @blp.response(204)
    def delete(self, team_id: uuid.UUID):
        """Delete a team; its tickets keep their history and lose the team."""
        services.delete_team(get_or_404(Team, team_id, "team"))
        db.session.commit()


@blp.route("/teams/<uuid:team_id>/members/<uuid:user_id>")
class TeamMembers(MethodView):
    @admin_only
    @blp.response(200, TeamSchema)
    def put(self, team_id: uuid.UUID, user_id: uuid.UUID):
        """Add an agent or admin to a team (idempotent)."""
        team = get_or_404(Team, team_id, "team")
        user = get_or_404(User, user_id, "user")
        try:
            services.add_member(team, user)
        except ValueError as exc:
            abort(422, message=str(exc), errors={"user_id": [str(exc)]})
        db.session.commit()
        return _team_body(team, services.team_member_ids([team.id])[team.id])

    @admin_only
    @blp.response(204)
    def delete(self, team_id: uuid.UUID, user_id: uuid.UUID):
        """Remove a user from a team."""
        team = get_or_404(Team, team_id, "team")
        if not services.remove_member(team, user_id):
            abort(404, message="That user is not on this team.")
        db.session.commit()
