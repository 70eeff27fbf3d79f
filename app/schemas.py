"""Marshmallow building blocks shared by every area's schemas."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

Tag = fields.String(validate=validate.Length(min=1, max=64))


def tag_list(**kwargs: object) -> fields.List:
    """A list of short labels (tags, skills), at most 50."""
    return fields.List(fields.String(validate=validate.Length(min=1, max=64)),
                       validate=validate.Length(max=50), **kwargs)


class ErrorSchema(Schema):
    code = fields.Integer()
    status = fields.String()
    message = fields.String()
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))
