"""Ticket pages: a requester's tickets, the agent queues, the new-ticket form and the ticket page.

Each view parses the form or query string through the API's schema, calls the same services as
`app/tickets/api.py`, and presents the result; a refusal comes back as a `Refusal` and is shown
beside the field it concerns, on the page that was submitted, with the status the API would
have answered. Changes go out live exactly as the API's do (`services.announce` before commit).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Flask, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_login import login_required

from app.admin.forms import read_fields, split_list
from app.assignment.services import explain
from app.auth.actor import Actor, current_actor
from app.conversation.services import latest_messages, post_message
from app.conversation.threads import threads_of
from app.errors import Invalid
from app.extensions import db
from app.media.page_forms import drain, read_page_form, streams_body, submitted_values
from app.media.services import record_files, upload_limits
from app.people.services import staff_users, teams_by_name, user_by_email, users_by_id
from app.schemas import parse_uuid
from app.tickets import queues, services
from app.tickets.listing import list_tickets
from app.tickets.models import PRIORITIES, STATUSES
from app.tickets.schemas import (
    PATCHABLE_STATUSES,
    CloseSchema,
    TicketListArgs,
    TicketSchema,
    TicketUpdateSchema,
    dump_ticket,
)
from app.ui.layout import EVERYONE, STAFF, Section, add_section
from app.ui.pages import Refusal, read_form, read_query, refusal_json, refusals, wants_json

bp = Blueprint("tickets_ui", __name__)
LIST_ARGS, NEW_TICKET, CHANGES, CLOSING = TicketListArgs(), TicketSchema(), TicketUpdateSchema(), CloseSchema()
NEW_TICKET_FIELDS = ("title", "description", "priority", "category")
PANEL_FIELDS = ("status", "priority", "assignee_id", "team_id", "category", "tags")
QUEUE_PAGE, MY_PAGE = 50, 20
MESSAGES_SHOWN = 500
# The requester's status filter: the API's values, with every not-yet-resolved status as "open".
MY_FILTERS = {"": "Any status", "new,open,pending": "Open", "resolved": "Resolved", "closed": "Closed"}
SORTABLE = {"number": "#", "priority": "priority", "status": "status", "created_at": "age", "updated_at": "updated"}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    ticket_pages = ("tickets_ui.ticket", "tickets_ui.edit", "tickets_ui.close", "tickets_ui.reopen",
                    "conversation_ui.reply")
    add_section(app, Section("Queues", "ui.index", STAFF, pages=ticket_pages))
    add_section(app, Section("My tickets", "ui.index", ("requester",), pages=ticket_pages))
    add_section(app, Section("New ticket", "tickets_ui.new_ticket", EVERYONE))


# --- lists -------------------------------------------------------------------------------------


def queue_page():
    """Show an agent queue (mine, my teams, unassigned, all open) with counts, sorting and `q` search."""
    actor = current_actor()
    counts = queues.queue_counts(actor)  # refuses requesters: the error page says so, with 403
    name = request.args.get("queue") or queues.DEFAULT_QUEUE
    found = None
    with refusals() as refused:
        args = read_query(LIST_ARGS, ("q", "sort", "cursor"))
        found = queues.list_queue(actor, name, {**args, "limit": QUEUE_PAGE},
                                  current_app.config["SEARCH_STATEMENT_TIMEOUT_MS"])
    items = found.items if found else []
    return render_template(
        "tickets/queue.html", queue=name if name in queues.QUEUES else queues.DEFAULT_QUEUE,
        queues=queues.QUEUES, counts=counts, tickets=items, next_cursor=found.next_cursor if found else None,
        order=found.order if found else None, q=request.args.get("q", ""), sort=request.args.get("sort", ""),
        people=users_by_id([t.requester_id for t in items] + [t.assignee_id for t in items]),
        sortable=SORTABLE, refused=refused.refusal,
    ), refused.refusal.status if refused else 200


def my_tickets_page():
    """Show a requester's own tickets, newest first, with a status filter and paging."""
    actor = current_actor()
    status = request.args.get("status", "")
    found = None
    with refusals() as refused:
        args = read_query(LIST_ARGS, ("status", "cursor"))
        found = list_tickets(db.session, actor, {**args, "limit": MY_PAGE, "sort": "-created_at"},
                             current_app.config["SEARCH_STATEMENT_TIMEOUT_MS"])
    return render_template(
        "tickets/mine.html", tickets=found.items if found else [], next_cursor=found.next_cursor if found else None,
        status=status, filters=MY_FILTERS, refused=refused.refusal,
    ), refused.refusal.status if refused else 200


# --- new ticket --------------------------------------------------------------------------------


@bp.route("/tickets/new", methods=["GET", "POST"])
@streams_body
@login_required
def new_ticket():
    """Open a ticket, with files if chosen (their scans follow); assignment follows in the background.

    Without the page's script the form posts itself, files streamed as they arrive; the script
    posts the same form with progress and asks for JSON (`Accept: application/json`).
    """
    refused = None
    if request.method == "POST":
        with refusals() as refused:
            form = read_page_form()
            fields = read_form(NEW_TICKET, only=NEW_TICKET_FIELDS, form=form.fields)
            actor = current_actor()
            fields["requester_id"] = requester_named(actor, form.fields)
            ticket = services.create_ticket(actor, **fields)
            number = ticket.number
            send_files(actor, ticket.id, form.files)
            db.session.commit()
            flash(f"Ticket #{number} is open. Replies appear on this page as they are written.", "success")
            url = url_for("tickets_ui.ticket", number=number)
            if wants_json():
                return jsonify({"number": number, "url": url}), 201
            return redirect(url)
        refused = refused.refusal
        drain()
        if wants_json():
            return refusal_json(refused)
    return render_template("tickets/new.html", priorities=PRIORITIES, refused=refused, uploads=upload_limits(),
                           values=submitted_values() if refused else {}), refused.status if refused else 200


def requester_named(actor: Actor, form: Any) -> uuid.UUID | None:
    """Return whom staff open a ticket for (a call, an email), by the email the form names; None: themselves.

    Requesters have no such box; anything sent in its name is theirs anyway.
    """
    email = (form.get("requester") or "").strip()
    if not email or not actor.is_staff:
        return None
    user = user_by_email(email)
    if user is None:
        raise Invalid.field("requester", "No one in this organization has this email. An admin adds people "
                                         "under Settings, People.", "Check the requester's email.")
    return user.id


def send_files(actor: Actor, ticket_id: uuid.UUID, files: list) -> None:
    """Record the files a new ticket's form carried and send them in its first message."""
    attachments = record_files(actor, ticket_id, files)
    if attachments:
        names = ", ".join(a.filename for a in attachments)
        post_message(actor, ticket_id, f"Attached when the ticket was opened: {names}",
                     attachment_ids=[a.id for a in attachments], opening=True)


# --- the ticket page ---------------------------------------------------------------------------


@bp.get("/tickets/<int:number>")
@login_required
def ticket(number: int):
    """Show a ticket with its conversation (live once the page's script connects) and, for staff, its panel."""
    return ticket_page(number)


def ticket_page(number: int, refused: Refusal | None = None, form: str | None = None, values=None):
    """Render the ticket page, with a refused form's message and values if there was one."""
    actor = current_actor()
    ticket = services.ticket_by_number(actor, number)
    messages, older = latest_messages(actor, ticket.id, MESSAGES_SHOWN)
    staff = staff_users() if actor.is_staff else []
    people = users_by_id([ticket.requester_id, ticket.assignee_id, *(m.author_id for m in messages)])
    people.update({u.id: u for u in staff})
    values = (request.form if values is None else values) if refused and refused.keep_input else {}
    # A refused reply keeps its thread, and a note's thread keeps the composer a note.
    reply_to = _reply_to(request.args.get("reply_to") or values.get("parent_id"), messages)
    context: dict[str, Any] = {
        "ticket": ticket, "etag": services.etag(ticket), "threads": threads_of(messages), "older": older,
        "people": people, "me": actor, "refused": refused, "refused_form": form, "values": values,
        "reply_to": reply_to,
        "last_seq": max((m.seq for m in messages), default=0), "shown_limit": MESSAGES_SHOWN,
        "rendered_at": datetime.now(UTC).isoformat(),  # the page's changes are asked for since (ticket.js)
        "script_people": {str(i): {"name": u.name, "role": u.role} for i, u in people.items()},
    }
    context["uploads"] = upload_limits()
    if actor.is_staff:
        context.update(assignees=staff, teams=teams_by_name(), why=explain(actor, ticket.id),
                       statuses=PATCHABLE_STATUSES, priorities=PRIORITIES, all_statuses=STATUSES)
    return render_template("tickets/ticket.html", **context), refused.status if refused else 200


def _reply_to(raw: str | None, messages: list) -> Any:
    if not raw:
        return None
    try:
        wanted = parse_uuid(raw)
    except ValueError:
        return None
    return next((m for m in messages if m.id == wanted), None)


def _shown(field: str, text: str) -> str:
    """Return a panel field's text as `services.check_seen` compares it (`services.shown`)."""
    return services.shown(split_list(text) if field == "tags" else text)


def _announce_and_commit(ticket) -> None:
    services.announce(ticket, dump_ticket(ticket))
    db.session.commit()


@bp.post("/tickets/<int:number>/edit")
@login_required
def edit(number: int):
    """Save the side panel: only the fields the agent changed, and only if nobody changed those fields since."""
    actor = current_actor()
    with refusals() as refused:
        found = services.ticket_by_number(actor, number)
        changed = [f for f in PANEL_FIELDS if f in request.form
                   and _shown(f, request.form[f]) != _shown(f, request.form.get(f"was_{f}", ""))]
        if changed:
            changes = read_fields(CHANGES, text=[f for f in changed if f != "tags"],
                                  lists=[f for f in changed if f == "tags"], partial=True)
            seen = {f: _shown(f, request.form.get(f"was_{f}", "")) for f in changed}
            _announce_and_commit(services.update_ticket(actor, found.id, changes, seen=seen))
            flash("Saved.", "success")
        return redirect(url_for("tickets_ui.ticket", number=number))
    return ticket_page(number, refused.refusal, "panel")


@bp.post("/tickets/<int:number>/close")
@login_required
def close(number: int):
    """Close the ticket (a requester their own), with an optional `resolution`."""
    actor = current_actor()
    with refusals() as refused:
        found = services.ticket_by_number(actor, number)
        resolution = read_form(CLOSING, only=("resolution",)).get("resolution")
        _announce_and_commit(services.close_ticket(actor, found.id, resolution))
        flash(f"Ticket #{number} is closed.", "success")
        return redirect(url_for("tickets_ui.ticket", number=number))
    return ticket_page(number, refused.refusal, "close")


@bp.post("/tickets/<int:number>/reopen")
@login_required
def reopen(number: int):
    """Reopen a closed or resolved ticket."""
    actor = current_actor()
    with refusals() as refused:
        found = services.ticket_by_number(actor, number)
        _announce_and_commit(services.reopen_ticket(actor, found.id))
        flash(f"Ticket #{number} is open again.", "success")
        return redirect(url_for("tickets_ui.ticket", number=number))
    return ticket_page(number, refused.refusal, "close")


def home(actor: Actor):
    """Return the home page of `actor`: the queues for staff, their own tickets for requesters.

    A requester who asks for a queue by name is refused (403), not quietly shown their own tickets.
    """
    return queue_page() if actor.is_staff or "queue" in request.args else my_tickets_page()
