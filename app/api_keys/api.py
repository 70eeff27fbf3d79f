"""REST endpoints for API keys."""

from __future__ import annotations

import uuid

from flask.views import MethodView
from flask_smorest import Api
from marshmallow import Schema, fields, validate

from app.api_common import api_blueprint
from app.api_keys import services
from app.auth.actor import admin_only, current_actor
from app.extensions import db
from app.idempotency import idempotent_sealed
from app.pagination import PageArgs, page_body, page_schema
from app.people.models import ROLES
from app.schemas import Uuid, WholeNumber, display_name

MAX_GRACE = 7 * 24 * 3600
blp = api_blueprint("api_keys", "API keys: each acts with its role as its user, in its tenant only.",
                    tag="API keys")


def register(api: Api) -> None:
    api.register_blueprint(blp)


class ApiKeySchema(Schema):
    id = Uuid(dump_only=True)
    name = display_name(required=True)
    role = fields.String(load_default="admin", validate=validate.OneOf(ROLES))
    user_id = Uuid(load_default=None, metadata={"description": "User the key acts as (default: you)."})
    prefix = fields.String(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    revoked_at = fields.DateTime(dump_only=True, allow_none=True)
    expires_at = fields.DateTime(dump_only=True, allow_none=True,
                                 metadata={"description": "Set by a rotation with a grace period."})
    last_used_at = fields.DateTime(dump_only=True, allow_none=True,
                                   metadata={"description": "When it was last used (to the second; kept 90 days)."})


class NewApiKeySchema(ApiKeySchema):
    key = fields.String(dump_only=True, metadata={"description": "The key itself; shown only now."})


class RotationSchema(Schema):
    grace_seconds = WholeNumber(load_default=0, validate=validate.Range(min=0, max=MAX_GRACE), metadata={
        "description": "How long the old key keeps working beside the new one (0: revoked at once; at most 7 days)."})


class RotatedKeySchema(NewApiKeySchema):
    replaced_key_id = Uuid(dump_only=True)
    replaced_key_expires_at = fields.DateTime(dump_only=True, metadata={"description": "When the old key stops."})


@blp.route("/api-keys")
class ApiKeys(MethodView):
    @admin_only
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_schema(ApiKeySchema))
    def get(self, args):
        """List the organization's keys (the keys themselves are never shown again)."""
        return page_body(*services.list_keys(args["limit"], args.get("cursor")))

    @admin_only
    @idempotent_sealed
    @blp.arguments(ApiKeySchema)
    @blp.response(201, NewApiKeySchema)
    @blp.alt_response(409, response="DEFAULT_ERROR", description="The calling key is being replaced.")
    def post(self, data):
        """Create a key. Its role may not exceed its user's; the key is in this response only (and in its
        replay to the same Idempotency-Key for 24 hours, kept sealed with that key)."""
        return services.create_key(current_actor(), data["name"], data["role"], data["user_id"])


@blp.route("/api-keys/<uuid:key_id>")
class ApiKeyById(MethodView):
    @admin_only
    @blp.response(204)
    def delete(self, key_id: uuid.UUID):
        """Revoke a key; it is refused from the very next request."""
        services.revoke(key_id)
        db.session.commit()


@blp.route("/api-keys/<uuid:key_id>/rotate")
class ApiKeyRotation(MethodView):
    @admin_only
    @idempotent_sealed
    @blp.arguments(RotationSchema, required=False)
    @blp.response(201, RotatedKeySchema)
    @blp.alt_response(409, response="DEFAULT_ERROR",
                      description="The calling key is being replaced, or was made with the key to rotate.")
    def post(self, data, key_id: uuid.UUID):
        """Replace a key with a new one (same name, role and user), the old one working for a grace period.

        The new key is in this response only (and in its replay to the same Idempotency-Key, sealed).
        """
        return services.rotate(current_actor(), key_id, data["grace_seconds"])
