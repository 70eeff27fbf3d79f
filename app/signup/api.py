"""`POST /api/v1/signup`: create an organization (no authentication)."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Api, abort
from marshmallow import Schema, ValidationError, fields, validate, validates

from app.api_common import api_blueprint
from app.auth.throttle import signup_wait
from app.extensions import db
from app.schemas import EmailAddress, Uuid
from app.signup.services import sign_up
from tenants import RESERVED_SLUGS, SlugTaken, slug_problem

blp = api_blueprint("signup", "Create an organization. Public: no API key needed.", tag="Signup")


def register(api: Api) -> None:
    api.register_blueprint(blp)


class SignupSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    slug = fields.String(required=True, metadata={
        "pattern": "^(?!pg-)[a-z][a-z0-9-]{1,39}$", "not": {"enum": sorted(RESERVED_SLUGS)},
        "description": "Lowercase letters, digits and hyphens, starting with a letter; not a reserved name."})
    admin_email = EmailAddress(required=True, validate=validate.Length(max=254))
    admin_password = fields.String(required=True, load_only=True, validate=validate.Length(min=8, max=256))
    admin_name = fields.String(load_default=None, validate=validate.Length(min=1, max=200))

    @validates("slug")
    def check_slug(self, value: str, **_kwargs: object) -> None:
        problem = slug_problem(value)
        if problem:
            raise ValidationError(problem)


class TenantSchema(Schema):
    id = Uuid()
    slug = fields.String()
    name = fields.String()
    status = fields.String()
    created_at = fields.DateTime()


class SignupResultSchema(Schema):
    tenant = fields.Nested(TenantSchema)
    admin_id = Uuid()
    api_key = fields.String(metadata={"description": "The admin's first API key; shown only now."})


@blp.route("/signup")
class Signups(MethodView):
    @blp.doc(security=[])
    @blp.arguments(SignupSchema)
    @blp.response(201, SignupResultSchema)
    @blp.alt_response(409, response="DEFAULT_ERROR")
    @blp.alt_response(429, response="DEFAULT_ERROR")
    @blp.alt_response(503, response="DEFAULT_ERROR")
    def post(self, data):
        """Create an organization with its own schema, its admin user and an admin API key.

        Each client address may create `SIGNUP_RATE_LIMIT_PER_HOUR` organizations an hour.
        """
        wait = signup_wait()
        if wait is not None:
            abort(429, message="Too many organizations were created from your address; try again later.",
                  headers={"Retry-After": str(wait.retry_after)})
        try:
            result = sign_up(**data)
        except SlugTaken:
            abort(409, message="This slug is taken.", errors={"slug": ["This slug is taken."]})
        db.session.refresh(result.tenant)
        return result
