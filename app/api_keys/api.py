"""REST endpoints for API keys."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from flask.views import MethodView
from flask_smorest import Api, abort
from marshmallow import Schema, fields, validate

from app import audit
from app.api_common import api_blueprint
from app.auth.actor import admin_only, current_actor
from app.auth.keys import mint_key, revoke_key
from app.extensions import db
from app.pagination import PageArgs, SortKey, page, page_body, page_schema
from app.people.models import ROLES, User
from tenants.context import current_tenant
from tenants.models import ApiKey

blp = api_blueprint("api_keys", "API keys: each acts with its role as its user, in its tenant only.")
KEYS = [SortKey(ApiKey.created_at, kind="datetime"), SortKey(ApiKey.id, kind="uuid")]


def register(api: Api) -> None:
    api.register_blueprint(blp)


class ApiKeySchema(Schema):
    id = fields.UUID(dump_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    role = fields.String(load_default="admin", validate=validate.OneOf(ROLES))
    user_id = fields.UUID(load_default=None, metadata={"description": "User the key acts as (default: you)."})
    prefix = fields.String(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    revoked_at = fields.DateTime(dump_only=True)


class NewApiKeySchema(ApiKeySchema):
    key = fields.String(dump_only=True, metadata={"description": "The key itself; shown only now."})


def _tenant_keys() -> sa.Select:
    return sa.select(ApiKey).where(ApiKey.tenant_id == uuid.UUID(current_tenant().id))


@blp.route("/api-keys")
class ApiKeys(MethodView):
    @admin_only
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_schema(ApiKeySchema))
    def get(self, args):
        """List the organization's keys (the keys themselves are never shown again)."""
        items, cursor = page(db.session, _tenant_keys(), KEYS, args["limit"], args["cursor"])
        return page_body(items, cursor)

    @admin_only
    @blp.arguments(ApiKeySchema)
    @blp.response(201, NewApiKeySchema)
    def post(self, data):
        """Create a key. Its role may not exceed its user's; the key is in this response only."""
        user_id = data["user_id"] or current_actor().user_id
        user = db.session.get(User, user_id)
        if user is None or user.deleted_at is not None:
            abort(422, message="No such user.", errors={"user_id": ["No such user."]})
        if ROLES.index(data["role"]) < ROLES.index(user.role):
            abort(422, message="A key cannot have a higher role than its user.",
                  errors={"role": [f"The user is a {user.role}."]})
        record, plaintext = mint_key(uuid.UUID(current_tenant().id), user.id, data["name"], data["role"])
        audit.record("api_key", record.id, "created", after={"name": record.name, "role": record.role,
                                                             "user_id": user.id})
        db.session.commit()
        return {**{c: getattr(record, c) for c in ("id", "name", "role", "user_id", "prefix", "created_at",
                                                    "revoked_at")}, "key": plaintext}


@blp.route("/api-keys/<uuid:key_id>")
class ApiKeyById(MethodView):
    @admin_only
    @blp.response(204)
    def delete(self, key_id: uuid.UUID):
        """Revoke a key; it is refused from the very next request."""
        record = db.session.execute(_tenant_keys().where(ApiKey.id == key_id)).scalar_one_or_none()
        if record is None or record.revoked_at is not None:
            abort(404, message="No such API key.")
        revoke_key(record)
        audit.record("api_key", record.id, "revoked")
        db.session.commit()
