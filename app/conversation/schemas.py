"""Request and response schemas of the conversation: one set for REST and socket frames alike."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields, validate, validates

from app.idempotency import MAX_KEY
from app.markdown import stored_or_rendered
from app.media.schemas import AttachmentSchema
from app.openapi import NOT_BLANK
from app.pagination import PageArgs
from app.schemas import BoundedList, Flag, QueryNumber, UtcDateTime, Uuid, shows_something

MAX_BODY = 64 * 1024


class MessageSchema(Schema):
    id = Uuid(dump_only=True)
    ticket_id = Uuid(dump_only=True)
    author_id = Uuid(dump_only=True, allow_none=True)
    body = fields.String(required=True, validate=validate.Length(min=1, max=MAX_BODY), metadata={
        "pattern": NOT_BLANK, "description": "Markdown; not blank."})
    body_html = fields.Function(
        lambda message: stored_or_rendered(message.body_html, message.body), dump_only=True,
        metadata={"type": "string",
                  "description": "`body` as Markdown rendered to sanitised HTML (no scripts, styles or raw HTML)."})
    parent_id = Uuid(load_default=None, allow_none=True)
    internal = Flag(load_default=False)
    attachment_ids = BoundedList(Uuid(), load_only=True, load_default=list, validate=validate.Length(max=20),
                                  metadata={"description": "Files the author uploaded to this ticket and has "
                                                           "not sent yet (POST /tickets/{id}/attachments)."})
    attachments = fields.List(fields.Nested(AttachmentSchema), dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    edited_at = fields.DateTime(dump_only=True, allow_none=True)
    seq = fields.Integer(dump_only=True)

    @validates("body")
    def validate_body(self, value: str, **_kwargs) -> None:
        if not shows_something(value):
            raise ValidationError("The body must not be blank.")
        if "\x00" in value:
            raise ValidationError("The body must not contain NUL characters.")


class MessageFrameSchema(MessageSchema):
    """A socket's message frame: the REST body, and the Idempotency-Key a header would carry."""

    idempotency_key = fields.String(load_default=None, validate=validate.Length(min=1, max=MAX_KEY))


class MessageEditSchema(Schema):
    body = fields.String(required=True, validate=validate.Length(min=1, max=MAX_BODY), metadata={
        "pattern": NOT_BLANK, "description": "Markdown; not blank."})

    validate_body = MessageSchema.validate_body


class MessageListArgs(PageArgs):
    after_seq = QueryNumber(load_default=0, validate=validate.Range(min=0, max=2**31 - 1))


class StreamTokenSchema(Schema):
    token = fields.String(dump_only=True)
    expires_in = fields.Integer(dump_only=True, metadata={"description": "Seconds the token stays valid."})
    url = fields.String(dump_only=True, metadata={"description": "Path of the stream to open with the token."})


class StreamArgs(Schema):
    after_seq = QueryNumber(load_default=0, validate=validate.Range(min=0, max=2**31 - 1))
    with_ticket = fields.Boolean(load_default=False, truthy={"1", "true"}, falsy={"0", "false"}, metadata={
        "description": "Send the ticket as a `ticket.updated` event first, read once the socket listens, so a "
                       "page rendered earlier misses no change."})
    token = fields.String(load_default=None, validate=validate.Length(max=200))
    changed_since = UtcDateTime(load_default=None, metadata={
        "description": "When this client's last socket on the ticket opened, by the server's clock (the `Date` "
                       "of the answer that gave its token will do). Edits, deletions and scan results since "
                       "then, of the messages and files it holds, are sent after the catch-up: up to 7 days "
                       "back, the newest 100 messages' and files'. Without it, those of the last 15 minutes. "
                       "If a change left out was made after `changed_since` (or, without it, at all), a "
                       "`{\"type\": \"changes.truncated\", \"changed_at\"}` event follows them, with the time "
                       "of the newest change left out: a client whose copy is older should read the conversation "
                       "again over REST. A client away longer than 7 days should do so too."})
