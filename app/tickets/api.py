"""REST endpoints for tickets."""

from __future__ import annotations

import uuid
from typing import Any

from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import Api
from marshmallow import RAISE, Schema

from app.api_common import api_blueprint, json_response
from app.auth.actor import current_actor
from app.extensions import db
from app.idempotency import claimed_at_once
from app.tickets import export, listing, reads, services, writes
from app.tickets.models import Ticket
from app.tickets.schemas import (
    CloseSchema,
    ExportArgs,
    TicketListArgs,
    TicketPageSchema,
    TicketSchema,
    TicketUpdateSchema,
    dump_ticket,
)

blp = api_blueprint("tickets", "Tickets: create, find, change, close and export.", tag="Tickets")
# Instances, not classes: webargs builds a schema from a class on every request (deep-copying
# its fields); a schema keeps no state between loads, so one instance serves every thread.
LIST_ARGS, NEW_TICKET, TICKET_CHANGES, CLOSING = TicketListArgs(), TicketSchema(), TicketUpdateSchema(), CloseSchema()
REOPENING = Schema()  # no fields: anything sent is refused (422), as on every other endpoint
ETAG_HEADER = {"ETag": {"description": "The ticket's version; send it back in If-Match.",
                        "schema": {"type": "string"}}}
IF_NONE_MATCH = blp.doc(parameters=[{
    "in": "header", "name": "If-None-Match", "required": False, "schema": {"type": "string"},
    "description": "ETags you hold; `304` with no body if the ticket's version is one of them."}])
IF_MATCH = blp.doc(parameters=[{
    "in": "header", "name": "If-Match", "required": False, "schema": {"type": "string"},
    "description": "The ETag you read; `412` and no change if the ticket has changed since."}])
NOT_MODIFIED = blp.alt_response(304, description="Not modified: the ticket's version is one you sent in If-None-Match.")
STALE = blp.alt_response(412, response="DEFAULT_ERROR", description="The ticket changed since the If-Match version.")


def register(api: Api) -> None:
    api.register_blueprint(blp)


def ticket_response(ticket: Ticket | None, status: int = 200, body: dict[str, Any] | None = None) -> Response:
    """Return a ticket as JSON with its ETag; GET and HEAD answer 304 to a matching If-None-Match."""
    body = body if body is not None else dump_ticket(ticket)
    response = json_response(body, status)
    response.set_etag(services.etag_of_version(body["version"]))
    conditional = "If-None-Match" in request.headers or "If-Modified-Since" in request.headers
    if conditional and request.method in ("GET", "HEAD"):
        response.make_conditional(request)  # only then: it would otherwise only add a Date gunicorn sends anyway
    return response


def expected_versions() -> set[str] | None:
    """Return the entity tags an If-Match header accepts, or None when any version will do.

    Only strong tags: If-Match compares strongly (RFC 9110), so `W/"v2"` matches no version and
    answers 412. So does an empty If-Match (a list of no tags): a client whose tag went missing
    must not overwrite what it never saw.
    """
    if "If-Match" not in request.headers or request.if_match.star_tag:
        return None
    return set(request.if_match.as_set())


def commit_and_respond(ticket: Ticket) -> Response:
    """Dump the changed ticket, announce it live, commit, and answer with it."""
    body = dump_ticket(ticket)
    services.announce(ticket, body)
    db.session.commit()
    return ticket_response(ticket, body=body)


@blp.route("/tickets")
class Tickets(MethodView):
    # unknown=RAISE: a misspelt filter must answer 422, not silently widen the result.
    @blp.arguments(LIST_ARGS, location="query", unknown=RAISE)
    @blp.response(200, TicketPageSchema)
    @blp.alt_response(503, response="DEFAULT_ERROR")
    def get(self, args):
        """List tickets: filter, sort, search with `q`, and page with `cursor`.

        Newest first unless `sort` says otherwise; with `q`, `sort=relevance` ranks the matches best
        first unless they are very many (then they come newest first). The `order` field says which.
        """
        if not args.get("q"):
            found = reads.ticket_page(current_actor(), args)
            return json_response({"items": found.items, "next_cursor": found.next_cursor, "order": found.order})
        found = listing.list_tickets(db.session, current_actor(), args,
                                     current_app.config["SEARCH_STATEMENT_TIMEOUT_MS"])
        return json_response({"items": [dump_ticket(t) for t in found.items], "next_cursor": found.next_cursor,
                              "order": found.order})

    @claimed_at_once
    @blp.arguments(NEW_TICKET)
    @blp.response(201, TicketSchema, headers=ETAG_HEADER)
    @blp.alt_response(409, response="DEFAULT_ERROR", description=(
        "Another request with this Idempotency-Key held it and let go twice while this one waited; send it again."))
    def post(self, data, claim):
        """Open a ticket. It starts `new`; assignment fills in `assignee_id` shortly after."""
        created = writes.create_ticket(current_actor(), claim, **data)
        if created.replay is not None:
            return created.replay
        response = current_app.response_class(created.body, status=201, mimetype="application/json")
        response.set_etag(created.etag)
        return response


@blp.route("/tickets/export")
class TicketExport(MethodView):
    @blp.arguments(ExportArgs, location="query", unknown=RAISE)
    @blp.response(200, description="Every matching ticket, streamed, in number order, as `format` asks.")
    @blp.alt_response(503, response="DEFAULT_ERROR")
    def get(self, args):
        """Download every matching ticket as CSV, a JSON array or NDJSON (no page limit)."""
        fmt = args.pop("format")
        return export.download(current_actor(), args, fmt)


@blp.route("/tickets/<uuid:ticket_id>")
class TicketById(MethodView):
    @blp.response(200, TicketSchema, headers=ETAG_HEADER)
    @NOT_MODIFIED
    @IF_NONE_MATCH
    def get(self, ticket_id: uuid.UUID):
        """Get a ticket, with its version as the `ETag`."""
        return ticket_response(None, body=reads.ticket(current_actor(), ticket_id))

    @blp.arguments(TICKET_CHANGES, required=False)
    @blp.response(200, TicketSchema, headers=ETAG_HEADER)
    @STALE
    @blp.alt_response(409, response="DEFAULT_ERROR")
    @IF_MATCH
    def patch(self, changes, ticket_id: uuid.UUID):
        """Change a ticket. Send `If-Match` with its ETag so a concurrent edit is never overwritten.

        Every change to the ticket moves its ETag, a new message included: a `412` means read it again.

        Setting `assignee_id` on a `new` ticket makes it `open`; `status: open` needs an assignee, already
        there or set in the same PATCH (else `409`). Close with `/close`.
        """
        ticket = services.update_ticket(current_actor(), ticket_id, changes, expected_versions())
        return commit_and_respond(ticket)


@blp.route("/tickets/by-number/<int:number>")
class TicketByNumber(MethodView):
    @blp.response(200, TicketSchema, headers=ETAG_HEADER)
    @NOT_MODIFIED
    @IF_NONE_MATCH
    def get(self, number: int):
        """Get a ticket by its number."""
        return ticket_response(None, body=reads.ticket_by_number(current_actor(), number))


@blp.route("/tickets/<uuid:ticket_id>/close")
class TicketClose(MethodView):
    @blp.arguments(CLOSING, required=False)
    @blp.response(200, TicketSchema, headers=ETAG_HEADER)
    @STALE
    @blp.alt_response(409, response="DEFAULT_ERROR")
    @IF_MATCH
    def post(self, data, ticket_id: uuid.UUID):
        """Close a ticket, optionally with a `resolution`."""
        ticket = services.close_ticket(current_actor(), ticket_id, data.get("resolution"), expected_versions())
        return commit_and_respond(ticket)


@blp.route("/tickets/<uuid:ticket_id>/reopen")
class TicketReopen(MethodView):
    @blp.arguments(REOPENING, required=False)
    @blp.response(200, TicketSchema, headers=ETAG_HEADER)
    @STALE
    @blp.alt_response(409, response="DEFAULT_ERROR")
    @IF_MATCH
    def post(self, _nothing, ticket_id: uuid.UUID):
        """Reopen a closed or resolved ticket; its resolution is cleared (the audit log keeps it)."""
        ticket = services.reopen_ticket(current_actor(), ticket_id, expected_versions())
        return commit_and_respond(ticket)
