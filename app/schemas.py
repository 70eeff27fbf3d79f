"""Marshmallow building blocks shared by every area's schemas."""

from __future__ import annotations

from datetime import UTC

from marshmallow import Schema, ValidationError, fields, validate

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


class UtcDateTime(fields.AwareDateTime):
    """An ISO 8601 timestamp (UTC when no zone is given), normalised to UTC.

    Python accepts offsets up to ±23:59 but PostgreSQL only up to ±15:59, so values are converted
    before they reach a query rather than failing there.
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(default_timezone=UTC, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        parsed = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parsed.astimezone(UTC)
        except OverflowError as exc:
            raise ValidationError("Not a representable timestamp.") from exc
