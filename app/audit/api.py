"""`GET /api/v1/audit-events`: who changed what, with before and after, newest first (admins)."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Api
from marshmallow import RAISE, Schema, fields, validate

from app.api_common import api_blueprint
from app.audit import services
from app.auth.actor import admin_only
from app.pagination import PageArgs, page_body, page_schema
from app.schemas import UtcDateTime, Uuid

blp = api_blueprint("audit", "The audit log: every change, by whom, from what to what.", tag="Audit")


def register(api: Api) -> None:
    api.register_blueprint(blp)


class AuditEventArgs(PageArgs):
    entity_type = fields.String(validate=validate.OneOf(services.ENTITY_TYPES), metadata={
        "description": ", ".join(services.ENTITY_TYPES) + "."})
    entity_id = Uuid()
    actor_id = Uuid(metadata={"description": "The user who made the change."})
    action = fields.String(validate=validate.Length(min=1, max=40),
                           metadata={"description": "created, updated, deleted, closed, assigned, ..."})
    created_after = UtcDateTime(metadata={"description": "Inclusive."})
    created_before = UtcDateTime(metadata={"description": "Exclusive."})


class AuditEventSchema(Schema):
    id = fields.Integer()
    created_at = fields.DateTime()
    actor_id = Uuid(allow_none=True, metadata={"description": "Null for changes made by the system."})
    api_key_id = Uuid(allow_none=True, metadata={"description": "The key used, if the change came by API."})
    entity_type = fields.String(attribute="entity")
    entity_id = Uuid()
    action = fields.String()
    before = fields.Dict(allow_none=True, metadata={"description": "The changed fields before."})
    after = fields.Dict(allow_none=True, metadata={"description": "The changed fields after."})


ARGS = AuditEventArgs()


@blp.route("/audit-events")
class AuditEvents(MethodView):
    @admin_only
    @blp.arguments(ARGS, location="query", unknown=RAISE)
    @blp.response(200, page_schema(AuditEventSchema))
    def get(self, args):
        """List audit events, newest first, filtered by entity, actor, action and time."""
        limit, cursor = args.pop("limit"), args.pop("cursor", None)
        return page_body(*services.list_events(limit, cursor, **args))
