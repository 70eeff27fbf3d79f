"""`POST /api/v1/signup`: create an organization (no authentication)."""

from __future__ import annotations

import uuid

import orjson
import sqlalchemy as sa
from flask import Response, request
from flask.views import MethodView
from flask_smorest import Api, abort
from marshmallow import Schema, ValidationError, fields, validate, validates
from sqlalchemy.dialects.postgresql import insert

from app import idempotency
from app.api_common import api_blueprint
from app.auth.throttle import client_address, signup_wait
from app.errors import Invalid
from app.extensions import db
from app.schemas import EmailAddress, Uuid, display_name
from app.signup.models import SignupReplay
from app.signup.services import Signup, sign_up
from tenants import RESERVED_SLUGS, SLUG_RULE, SlugTaken, slug_problem

blp = api_blueprint("signup", "Create an organization. Public: no API key needed.", tag="Signup")


def register(api: Api) -> None:
    api.register_blueprint(blp)


class SignupSchema(Schema):
    name = display_name(required=True)
    slug = fields.String(required=True, metadata={
        # `slug_problem`'s rules: hyphens in the third and fourth characters are reserved in host names.
        "pattern": f"^(?!pg-)(?!..--){SLUG_RULE}$", "not": {"enum": sorted(RESERVED_SLUGS)},
        "description": "2-40 lowercase letters, digits and hyphens, starting with a letter; no hyphens as the "
                       "third and fourth characters (as in `xn--`); not starting with `pg-`; not a reserved name."})
    admin_email = EmailAddress(required=True, validate=validate.Length(max=254))
    admin_password = fields.String(required=True, load_only=True, validate=validate.Length(min=8, max=256))
    admin_name = display_name(load_default=None)

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
    @blp.doc(security=[], parameters=[idempotency.HEADER_DOC])
    @blp.arguments(SignupSchema)
    @blp.response(201, SignupResultSchema)
    @blp.alt_response(409, response="DEFAULT_ERROR")
    @blp.alt_response(429, response="DEFAULT_ERROR")
    @blp.alt_response(503, response="DEFAULT_ERROR")
    def post(self, data):
        """Create an organization with its own schema, its admin user and an admin API key.

        Each client address may create `SIGNUP_RATE_LIMIT_PER_HOUR` organizations an hour. A repeat
        with the same `Idempotency-Key` and body within 24 hours gets the first answer (kept sealed:
        it holds the admin's key).
        """
        claim = _claim()
        if claim is not None and (earlier := _earlier(claim)) is not None:
            return earlier
        _within_the_signup_limit()
        answer: list[bytes] = []
        try:
            sign_up(**data, before_commit=lambda result: answer.append(_answer(result, claim)))
        except SlugTaken:
            if claim is not None and (earlier := _earlier(claim)) is not None:
                return earlier  # the same signup, sent twice at once: the first one made it
            abort(409, message="This slug is taken.", errors={"slug": ["This slug is taken."]})
        except _KeyTaken:
            return _earlier(claim) or abort(409, message="A signup with this Idempotency-Key was in progress; "
                                                         "send it again.")
        return Response(answer[0], status=201, mimetype="application/json")


class _KeyTaken(Exception):
    """Another signup kept this Idempotency-Key first (found after its commit)."""


def _claim() -> idempotency.Claim | None:
    """Return the sealed claim of this signup's Idempotency-Key, which belongs to the client address
    that sent it (there is no API key yet): another address's same key is another key."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    idempotency.check_key(key)
    kept, sealing = idempotency.sealed_key(key, b"signup from " + client_address().encode())
    return idempotency.Claim(uuid.UUID(int=0), kept, "POST /signup", idempotency.fingerprint(request.get_json()),
                             sealing)


def _earlier(claim: idempotency.Claim) -> Response | None:
    """Replay the kept answer to `claim`'s key, or None; 422 if the key came with another signup."""
    row = db.session.execute(sa.select(SignupReplay.request_hash, SignupReplay.response).where(
        SignupReplay.key == claim.key, SignupReplay.created_at >= sa.func.now() - idempotency.RETENTION)).first()
    db.session.rollback()
    if row is None:
        return None
    if row.request_hash != claim.request_hash:
        # Counted as a signup: the body holds the admin's password, so refusals must not let anyone
        # who knows the key try passwords until one replays the answer (and the admin's API key).
        _within_the_signup_limit()
        raise Invalid.field("Idempotency-Key", "Already used with a different request.",
                            "This Idempotency-Key was already used with a different request.")
    return idempotency.replay(201, idempotency.unseal(row.response, claim.seal), None)


def _answer(result: Signup, claim: idempotency.Claim | None) -> bytes:
    """Return the 201's body, and keep it sealed for `claim`'s key in the signup's own transaction."""
    db.session.flush()
    db.session.refresh(result.tenant)  # its created_at, as the commit will keep it
    body = orjson.dumps(SignupResultSchema().dump(result))
    if claim is not None:
        values = {"key": claim.key, "request_hash": claim.request_hash, "response": idempotency.seal(body, claim.seal)}
        stmt = insert(SignupReplay).values(**values)
        kept = db.session.execute(stmt.on_conflict_do_update(
            index_elements=[SignupReplay.key], set_={**values, "created_at": sa.func.now()},
            where=SignupReplay.created_at < sa.func.now() - idempotency.RETENTION).returning(SignupReplay.key)).first()
        if kept is None:
            raise _KeyTaken
    return body


def _within_the_signup_limit() -> None:
    """Count a signup from this client address; 429 if it is over the hourly limit."""
    wait = signup_wait()
    if wait is not None:
        abort(429, message="Too many organizations were created from your address; try again later.",
              headers={"Retry-After": str(wait.retry_after)})

