"""Request and response schemas for users and teams."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.pagination import cursor_field
from app.people.models import ROLES
from app.schemas import EmailAddress, Flag, QueryNumber, Uuid, WholeNumber, display_name, tag_list


class UserSchema(Schema):
    id = Uuid(dump_only=True)
    email = EmailAddress(required=True, validate=validate.Length(max=254))
    name = display_name(required=True)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))
    password = fields.String(load_only=True, validate=validate.Length(min=8, max=256))
    skills = tag_list(load_default=list)
    capacity = WholeNumber(allow_none=True, load_default=None, validate=validate.Range(min=0, max=100000))
    available = Flag(load_default=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class UserPatchSchema(Schema):
    email = EmailAddress(validate=validate.Length(max=254))
    name = display_name()
    role = fields.String(validate=validate.OneOf(ROLES))
    password = fields.String(load_only=True, validate=validate.Length(min=8, max=256))
    skills = tag_list()
    capacity = WholeNumber(allow_none=True, validate=validate.Range(min=0, max=100000))
    available = Flag()


class UserListArgs(Schema):
    role = fields.String(validate=validate.OneOf(ROLES))
    limit = QueryNumber(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = cursor_field()


class TeamSchema(Schema):
    id = Uuid(dump_only=True)
    name = display_name(required=True)
    description = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=5000))
    member_ids = fields.List(Uuid(), dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class TeamPatchSchema(Schema):
    name = display_name()
    description = fields.String(allow_none=True, validate=validate.Length(max=5000))
