"""REST endpoints of webhooks: subscriptions, secrets, the delivery log and redelivery (admins only)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask.views import MethodView
from flask_smorest import Api

from app.api_common import api_blueprint
from app.auth.actor import admin_only
from app.extensions import db
from app.idempotency import claim_of_request, holds_response, idempotent_sealed
from app.pagination import PageArgs, page_body, page_schema
from app.webhooks import services, targets
from app.webhooks.schemas import (
    AttemptListArgs,
    AttemptSchema,
    DeliverySchema,
    NewWebhookSchema,
    RotateSecretSchema,
    WebhookPatchSchema,
    WebhookSchema,
)

blp = api_blueprint("webhooks", "Webhooks: signed deliveries of events to your URL, with a delivery log.",
                    tag="Webhooks")


def register(api: Api) -> None:
    api.register_blueprint(blp)


def with_secret(subscription, secret: str):
    subscription.signing_secret = secret
    return subscription


def url_checked_first(view: Callable) -> Callable:
    """Check a new webhook's URL before its Idempotency-Key is claimed. The claim is an INSERT, and while
    its transaction runs every tenant's event feed on the shard stands still (a feed serves only what is
    below the oldest running transaction): for as long as a lookup takes, up to `SAVE_LOOKUP_SECONDS`.

    A key that already holds a response is replayed unchecked: the webhook exists, and its secret is
    shown only there, whatever the name resolves to now.
    """

    @wraps(view)
    def wrapped(self: MethodView, data: dict[str, Any], **kwargs: Any) -> Any:
        claim = claim_of_request(kwargs, sealed=True)
        if claim is None or not holds_response(claim):
            targets.check_saved(data["url"])
        return view(self, data, **kwargs)

    return wrapped


@blp.route("/webhooks")
class Webhooks(MethodView):
    @admin_only
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, page_schema(WebhookSchema))
    def get(self, args):
        """List webhooks, oldest first (secrets are never shown again)."""
        return page_body(*services.list_subscriptions(args["limit"], args.get("cursor")))

    @admin_only
    @blp.arguments(WebhookSchema)
    @url_checked_first
    @idempotent_sealed
    @blp.response(201, NewWebhookSchema)
    @blp.alt_response(409, response="DEFAULT_ERROR")
    @blp.alt_response(503, response="DEFAULT_ERROR", description=targets.LOOKUPS_BUSY)
    def post(self, data):
        """Subscribe a URL to event types. The response shows the signing secret, this once (and in its
        replay to the same Idempotency-Key, sealed).

        The URL must be http(s) on a public address, unless the instance sets
        `WEBHOOK_ALLOW_PRIVATE_ADDRESSES=1`.
        """
        return with_secret(*services.create_subscription(**data))


@blp.route("/webhooks/<uuid:webhook_id>")
class WebhookById(MethodView):
    @admin_only
    @blp.response(200, WebhookSchema)
    def get(self, webhook_id: uuid.UUID):
        """Get a webhook, with why it was disabled if it was."""
        return services.subscription_or_404(webhook_id)

    @admin_only
    @blp.arguments(WebhookPatchSchema, required=False)
    @blp.response(200, WebhookSchema)
    @blp.alt_response(503, response="DEFAULT_ERROR", description=targets.LOOKUPS_BUSY)
    def patch(self, changes, webhook_id: uuid.UUID):
        """Change a webhook; `enabled: true` turns a disabled one back on."""
        subscription = services.change_subscription(webhook_id, changes)
        db.session.commit()
        return subscription

    @admin_only
    @blp.response(204)
    def delete(self, webhook_id: uuid.UUID):
        """Delete a webhook and its delivery log."""
        services.delete_subscription(services.subscription_or_404(webhook_id, lock=True))
        db.session.commit()


@blp.route("/webhooks/<uuid:webhook_id>/rotate-secret")
class WebhookSecret(MethodView):
    @admin_only
    @blp.arguments(RotateSecretSchema, required=False)
    @blp.response(200, NewWebhookSchema)
    @blp.alt_response(409, response="DEFAULT_ERROR")
    def post(self, data, webhook_id: uuid.UUID):
        """Replace the signing secret. The old one keeps signing too for `grace_period_seconds`.

        During a grace period `X-Signature` carries one signature per secret, comma separated; a
        second rotation leaves the first one's grace as it was, and `0` ends every earlier secret
        at once. With ten earlier secrets still signing, a rotation with a grace period is 409.
        """
        subscription, secret = services.rotate_secret(services.subscription_or_404(webhook_id, lock=True),
                                                      data["secret"], data["grace_period_seconds"])
        db.session.commit()
        return with_secret(subscription, secret)


@blp.route("/webhooks/<uuid:webhook_id>/deliveries")
class WebhookDeliveries(MethodView):
    @admin_only
    @blp.arguments(AttemptListArgs, location="query")
    @blp.response(200, page_schema(AttemptSchema))
    def get(self, args, webhook_id: uuid.UUID):
        """List delivery attempts, newest first: the request, the response, latency and error of each."""
        subscription = services.subscription_or_404(webhook_id)
        return page_body(*services.list_attempts(subscription, args["limit"], args.get("cursor"),
                                                 args.get("event_id"), args.get("status")))


@blp.route("/webhooks/<uuid:webhook_id>/deliveries/<uuid:delivery_id>")
class WebhookDeliveryById(MethodView):
    @admin_only
    @blp.response(200, AttemptSchema)
    def get(self, webhook_id: uuid.UUID, delivery_id: uuid.UUID):
        """Get one delivery attempt."""
        return services.attempt_or_404(services.subscription_or_404(webhook_id), delivery_id)


@blp.route("/webhooks/<uuid:webhook_id>/deliveries/<uuid:delivery_id>/redeliver")
class WebhookRedeliver(MethodView):
    @admin_only
    @blp.response(202, DeliverySchema)
    @blp.alt_response(409, response="DEFAULT_ERROR")
    def post(self, webhook_id: uuid.UUID, delivery_id: uuid.UUID):
        """Send the attempt's event again, now, once (signed afresh). The new attempt joins the log."""
        delivery = services.redeliver(services.subscription_or_404(webhook_id), delivery_id)
        view = services.delivery_view(delivery)
        db.session.commit()
        return view
