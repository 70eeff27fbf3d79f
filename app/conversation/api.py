"""REST endpoints of the conversation: messages on a ticket and tokens for its live stream."""

from __future__ import annotations

import uuid

from flask.views import MethodView
from flask_smorest import Api

from app.api_common import api_blueprint
from app.auth.actor import current_actor
from app.conversation import services, tokens
from app.conversation.schemas import (
    MessageEditSchema,
    MessageListArgs,
    MessageSchema,
    StreamTokenSchema,
)
from app.extensions import db
from app.pagination import page_body, page_schema
from app.tickets.services import ticket_for
from tenants.context import current_tenant

blp = api_blueprint("conversation", "Conversation on a ticket: messages, threads, internal notes, live stream.")


def register(api: Api) -> None:
    api.register_blueprint(blp)


@blp.route("/tickets/<uuid:ticket_id>/messages")
class TicketMessages(MethodView):
    @blp.arguments(MessageListArgs, location="query")
    @blp.response(200, page_schema(MessageSchema))
    def get(self, args, ticket_id: uuid.UUID):
        """List a ticket's messages in `seq` order; `after_seq` returns only those after it.

        Requesters never see internal notes.
        """
        rows, next_cursor = services.list_messages(current_actor(), ticket_id, args["after_seq"],
                                                   args["limit"], args["cursor"])
        return page_body(rows, next_cursor)

    @blp.arguments(MessageSchema)
    @blp.response(201, MessageSchema)
    def post(self, data, ticket_id: uuid.UUID):
        """Post a message; `parent_id` makes it a reply, `internal` a note only staff can see.

        The message is stored, then sent to every open stream of the ticket.
        """
        message = services.post_message(current_actor(), ticket_id, **data)
        db.session.commit()
        return message


@blp.route("/tickets/<uuid:ticket_id>/messages/<uuid:message_id>")
class TicketMessageById(MethodView):
    @blp.response(200, MessageSchema)
    def get(self, ticket_id: uuid.UUID, message_id: uuid.UUID):
        """Get one message."""
        return services.message_for(current_actor(), ticket_id, message_id)

    @blp.arguments(MessageEditSchema)
    @blp.response(200, MessageSchema)
    def patch(self, data, ticket_id: uuid.UUID, message_id: uuid.UUID):
        """Edit a message's body (author or admin); the previous body stays in the audit log."""
        message = services.edit_message(current_actor(), ticket_id, message_id, data["body"])
        db.session.commit()
        return message

    @blp.response(204)
    def delete(self, ticket_id: uuid.UUID, message_id: uuid.UUID):
        """Delete a message (author or admin); its body stays in the audit log, its seq stays taken."""
        services.delete_message(current_actor(), ticket_id, message_id)
        db.session.commit()


@blp.route("/tickets/<uuid:ticket_id>/stream-token")
class TicketStreamToken(MethodView):
    @blp.response(201, StreamTokenSchema)
    def post(self, ticket_id: uuid.UUID):
        """Get a short-lived, single-use token to open the ticket's stream with `?token=`.

        For browsers, which cannot send an Authorization header on a WebSocket.
        """
        actor = current_actor()
        ticket_for(actor, ticket_id)
        token, ttl = tokens.issue_token(current_tenant(), actor, ticket_id)
        return {"token": token, "expires_in": ttl, "url": f"/api/v1/tickets/{ticket_id}/stream?token={token}"}
