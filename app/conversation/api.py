"""REST endpoints of the conversation: messages on a ticket and tokens for its live stream."""

from __future__ import annotations

import uuid

from flask import current_app
from flask.views import MethodView
from flask_smorest import Api

from app.api_common import api_blueprint
from app.auth.actor import current_actor
from app.conversation import services, tokens, writes
from app.conversation.schemas import (
    MessageEditSchema,
    MessageListArgs,
    MessageSchema,
    StreamTokenSchema,
)
from app.extensions import db
from app.idempotency import claimed_at_once
from app.pagination import page_body, page_schema
from tenants import current_tenant

# Instances: webargs would build a schema from a class on every request.
NEW_MESSAGE, LIST_ARGS = MessageSchema(), MessageListArgs()
blp = api_blueprint("conversation", "Conversation on a ticket: messages, threads, internal notes, live stream.",
                    tag="Conversation")


def register(api: Api) -> None:
    api.register_blueprint(blp)
    # The stream is a WebSocket (a flask-sock route), which OpenAPI 3.0 has no way to describe as an
    # operation: a `paths` entry would promise an HTTP exchange that ends in 101 and never answers.
    # So it is described under `x-websockets`, with the same parameters and refusals.
    api.spec.options.setdefault("x-websockets", {})[STREAM_PATH] = {"get": STREAM_OPERATION}


def _error(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


STREAM_PATH = "/api/v1/tickets/{ticket_id}/stream"
STREAM_OPERATION = {
    "tags": ["Conversation"],
    "summary": "Open the ticket's live stream (WebSocket).",
    "description": (
        "Upgrade to a WebSocket. Authenticate with the Authorization header or `?token=` from "
        "`POST /tickets/{id}/stream-token`. The server first sends every message after `after_seq` as "
        "`{\"type\": \"message.created\", \"message\": {...}}`, then what changed in the last 15 minutes "
        "(or since `changed_since`): edits and deletions of the messages up to `after_seq` as `message.updated` "
        "and `message.deleted`, and the ticket's files scanned as `attachment.updated`, followed by "
        "`{\"type\": \"changes.truncated\", \"changed_at\"}` if more changed than a socket tells "
        "(`changed_at` is when the newest change left out was made: a client whose copy is older should read "
        "the conversation again over REST); then live events: `message.created`, "
        "`message.updated`, `message.deleted`, `ticket.updated`, `attachment.updated`, `attachment.deleted`, "
        "`{\"type\": \"typing\", \"user_id\"}`. Clients send `{\"type\": \"message\", \"body\", "
        "\"parent_id\"?, \"internal\"?, \"attachment_ids\"?, \"ref\"?, \"idempotency_key\"?}` (validated as the "
        "REST call; `idempotency_key` is its Idempotency-Key, shared with it: a frame sent again with the key "
        "stores nothing and is answered with that message as it is now, or `message.deleted` if it is gone, marked "
        "`\"replayed\": true`) or "
        "`{\"type\": \"typing\"}`; the sender's own `message.created` echo carries its `ref`, and a "
        "bad frame gets `{\"type\": \"error\", \"code\", \"message\", \"errors\"?, \"ref\"?}`. Requesters "
        "never receive internal notes. Refusals happen before the handshake, as plain HTTP errors."
    ),
    "parameters": [
        {"name": "Upgrade", "in": "header", "required": True, "schema": {"type": "string", "enum": ["websocket"]}},
        {"name": "Connection", "in": "header", "required": True, "schema": {"type": "string", "enum": ["Upgrade"]}},
        {"name": "Sec-WebSocket-Version", "in": "header", "required": True,
         "schema": {"type": "string", "enum": ["13"]}},
        {"name": "Sec-WebSocket-Key", "in": "header", "required": True,
         "schema": {"type": "string", "pattern": "^[A-Za-z0-9+/]{21}[AQgw]==$"},
         "description": "16 random bytes in base64, as RFC 6455 asks."},
        {"name": "after_seq", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1,
                                                        "default": 0}},
        {"name": "with_ticket", "in": "query", "schema": {"type": "boolean", "default": False},
         "description": "Send the ticket as a `ticket.updated` event before the catch-up, read once the socket "
                        "listens, so a client that loaded the ticket earlier misses no change."},
        {"name": "token", "in": "query", "schema": {"type": "string", "maxLength": 200},
         "description": "Single-use stream token, instead of the Authorization header."},
    ],
    "responses": {
        "101": {"description": "Switching protocols: the stream is open."},
        "400": _error("Not a WebSocket handshake, or an unknown query parameter."),
        "401": _error("No valid key or token."),
        "404": _error("No such ticket for this caller."),
        "422": _error("Invalid query parameters, or `after_seq` past the ticket's last message."),
    },
}


@blp.route("/tickets/<uuid:ticket_id>/messages")
class TicketMessages(MethodView):
    @blp.arguments(LIST_ARGS, location="query")
    @blp.response(200, page_schema(MessageSchema))
    def get(self, args, ticket_id: uuid.UUID):
        """List a ticket's messages in `seq` order; `after_seq` returns only those after it.

        Requesters never see internal notes.
        """
        rows, next_cursor = services.list_messages(current_actor(), ticket_id, args["after_seq"],
                                                   args["limit"], args.get("cursor"))
        return page_body(rows, next_cursor)

    @claimed_at_once
    @blp.arguments(NEW_MESSAGE)
    @blp.response(201, MessageSchema)
    @blp.alt_response(409, response="DEFAULT_ERROR",
                      description="A requester's message on their closed ticket: reopen it to write again.")
    def post(self, data, ticket_id: uuid.UUID, claim):
        """Post a message; `parent_id` makes it a reply, `internal` a note only staff can see.

        A requester's message reopens their ticket if it was `pending` or `resolved` (open again,
        or `new` if nobody is assigned), as `ticket.updated`. On their closed ticket it is refused
        (409) until they reopen it; staff may still write there.

        The message is stored, then sent to every open stream of the ticket.
        """
        if not data["attachment_ids"]:  # files are locked and checked on the session's path
            del data["attachment_ids"]
            posted = writes.post_message(current_actor(), ticket_id, claim, **data)
            if posted is not None:
                return posted.replay or current_app.response_class(posted.body, status=201,
                                                                   mimetype="application/json")
        return writes.post_in_session(current_actor(), ticket_id, claim, data)


@blp.route("/tickets/<uuid:ticket_id>/messages/<uuid:message_id>")
class TicketMessageById(MethodView):
    @blp.response(200, MessageSchema)
    def get(self, ticket_id: uuid.UUID, message_id: uuid.UUID):
        """Get one message."""
        return services.message_for(current_actor(), ticket_id, message_id)

    @blp.arguments(MessageEditSchema)
    @blp.response(200, MessageSchema)
    @blp.alt_response(409, response="DEFAULT_ERROR",
                      description="A requester's message on their closed ticket: reopen it to change it.")
    def patch(self, data, ticket_id: uuid.UUID, message_id: uuid.UUID):
        """Edit a message's body (author or admin); the previous body stays in the audit log."""
        message = services.edit_message(current_actor(), ticket_id, message_id, data["body"])
        db.session.commit()
        return message

    @blp.response(204)
    @blp.alt_response(409, response="DEFAULT_ERROR",
                      description="A requester's message on their closed ticket: reopen it to change it.")
    def delete(self, ticket_id: uuid.UUID, message_id: uuid.UUID):
        """Delete a message (author or admin); its body stays in the audit log, its seq stays taken.

        On their closed ticket a requester may neither edit nor delete their messages (409) until
        they reopen it.
        """
        services.delete_message(current_actor(), ticket_id, message_id)
        db.session.commit()


@blp.route("/tickets/<uuid:ticket_id>/stream-token")
class TicketStreamToken(MethodView):
    @blp.response(201, StreamTokenSchema)
    def post(self, ticket_id: uuid.UUID):
        """Get a short-lived, single-use token to open the ticket's stream with `?token=`.

        For browsers, which cannot send an Authorization header on a WebSocket.
        """
        issued = tokens.issue_token(current_tenant(), current_actor(), ticket_id)
        return {"token": issued.token, "expires_in": issued.expires_in,
                "url": f"/api/v1/tickets/{ticket_id}/stream?token={issued.token}"}
