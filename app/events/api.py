"""`GET /api/v1/events`: the event feed, for integrators who poll instead of receiving webhooks."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Api
from marshmallow import RAISE

from app.api_common import api_blueprint
from app.auth.actor import staff_only
from app.events import services
from app.events.schemas import EventPageSchema, FeedArgs

blp = api_blueprint("events", "The event feed: the events webhooks deliver, in order, kept 30 days.", tag="Events")
FEED_ARGS = FeedArgs()


def register(api: Api) -> None:
    api.register_blueprint(blp)


@blp.route("/events")
class Events(MethodView):
    @staff_only
    @blp.arguments(FEED_ARGS, location="query", unknown=RAISE)
    @blp.response(200, EventPageSchema)
    def get(self, args):
        """Page through the organization's events, oldest first, in one order that never skips an event.

        The same events webhooks deliver, kept `EVENT_RETENTION_DAYS` (30) days; internal notes
        included (staff only). Follow `next_cursor` to the newest event, then poll with
        `poll_cursor` for what happens next. A cursor made with `types` goes on only with the same
        types, and is refused (422) with others or none: a filtered poll passes the events it
        leaves out. A cursor of the whole feed may go on with a filter.
        """
        return services.feed(args.get("types"), args["limit"], args.get("cursor"))
