"""Conversation pages: a reply posted as a plain form, and the stream token a ticket page connects with.

With its script running, the ticket page sends messages over the ticket's socket; this form is
the same message through the same service when the script is not there (or the socket is down).
Browsers cannot send an Authorization header on a WebSocket, so the page asks here for a
single-use token minted for the signed-in session (and bound to it: signing out ends it), and
opens the stream under its own tenant's path.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Flask, flash, jsonify, redirect, url_for
from flask_login import login_required

from app.auth.actor import current_actor
from app.conversation import services, tokens
from app.conversation.schemas import MessageSchema
from app.extensions import db
from app.media.page_forms import drain, read_page_form, streams_body, submitted_values
from app.media.services import record_files
from app.people.services import users_by_id
from app.tickets.services import ticket_by_number
from app.tickets.ui import ticket_page
from app.ui.pages import read_form, refusals
from tenants import current_tenant

bp = Blueprint("conversation_ui", __name__)
MESSAGE = MessageSchema()


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.post("/tickets/<int:number>/messages")
@streams_body
@login_required
def reply(number: int):
    """Post a message (`body`, and `parent_id` to reply in a thread; staff may mark it `internal`).

    Files come either already uploaded by the page's script (`attachment_ids`) or, without the
    script, in the form itself (`file`), streamed as they arrive and sent with the message.
    """
    actor = current_actor()
    with refusals() as refused:
        ticket_id = ticket_by_number(actor, number).id  # nothing is stored for a ticket the actor cannot see
        form = read_page_form()
        fields = read_form(MESSAGE, only=("body", "parent_id", "internal"), checkboxes=("internal",), form=form.fields)
        fields.pop("attachment_ids", None)  # the schema's default; the page's come below
        uploaded = form.ids("attachment_ids") + [a.id for a in record_files(actor, ticket_id, form.files)]
        message = services.post_message(actor, ticket_id, **fields, attachment_ids=uploaded)
        db.session.commit()
        flash("Internal note added." if message.internal else "Reply sent.", "success")
        return redirect(url_for("tickets_ui.ticket", number=number, _anchor=f"m-{message.id}"))
    drain()
    return ticket_page(number, refused.refusal, "reply", submitted_values())


@bp.get("/tickets/<int:number>/participants")
@login_required
def participants(number: int):
    """Name the people on this ticket that the viewer may see, for live messages from someone new."""
    actor = current_actor()
    ticket = ticket_by_number(actor, number)
    people = users_by_id(services.participant_ids(actor, ticket.id))
    return jsonify({str(i): {"name": u.name, "role": u.role} for i, u in people.items()})


@bp.post("/tickets/<int:number>/stream-token")
@login_required
def stream_token(number: int):
    """Mint a single-use token for this ticket's stream, for the signed-in session; answer its path.

    The path is under this tenant's own prefix, the only place the token opens a stream.
    """
    actor = current_actor()
    ticket = ticket_by_number(actor, number)
    issued = tokens.issue_token(current_tenant(), actor, ticket.id)
    db.session.rollback()
    # A path, never a host: the page opens it on its own origin, whatever Host header reached us.
    built = urlsplit(url_for("stream.ticket_stream", ticket_id=ticket.id, token=issued.token))
    return jsonify({"url": f"{built.path}?{built.query}", "expires_in": issued.expires_in,
                    "ticket_id": str(ticket.id)})
