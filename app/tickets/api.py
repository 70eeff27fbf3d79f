"""REST endpoints for tickets."""

from __future__ import annotations

import uuid

from flask.views import MethodView
from flask_smorest import Api

from app.api_common import api_blueprint
from app.auth.actor import current_actor
from app.extensions import db
from app.tickets import services
from app.tickets.schemas import TicketSchema

blp = api_blueprint("tickets", "Tickets: create, find, change, close and export.")


def register(api: Api) -> None:
    api.register_blueprint(blp)


@blp.route("/tickets")
class Tickets(MethodView):
    @blp.arguments(TicketSchema)
    @blp.response(201, TicketSchema)
    def post(self, data):
        """Open a ticket. It starts `new`; assignment fills in `assignee_id` shortly after."""
        ticket = services.create_ticket(current_actor(), **data)
        db.session.commit()
        return ticket


@blp.route("/tickets/<uuid:ticket_id>")
class TicketById(MethodView):
    @blp.response(200, TicketSchema)
    def get(self, ticket_id: uuid.UUID):
        """Get a ticket."""
        return services.ticket_for(current_actor(), ticket_id)
