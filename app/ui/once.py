"""Forms that make something shown only once (an API key, a webhook's secret) make it once.

Such a page answers its form with the new secret (201) instead of redirecting, so the browser's
reload posts the form again: each reload made another live key or webhook, the earlier one never
kept by anyone. Each such form carries a token of its own (`form_once`, new at every render);
`sent_once` takes it in Redis for a day and refuses it a second time, before anything is made.
A form without the token (a script's post) is not held to it, as the API's Idempotency-Key is
the caller's to send; when Redis cannot be reached the form goes through, as it did before.
"""

from __future__ import annotations

import logging
import re
import secrets

import redis
from flask import Flask, request

from app.auth.actor import current_actor
from app.errors import Conflict, Invalid
from app.extensions import redis_client
from tenants import current_tenant

log = logging.getLogger(__name__)
FIELD = "once"
KEPT_SECONDS = 24 * 3600
_TOKEN = re.compile(r"[A-Za-z0-9_-]{22}", re.ASCII)
SENT_ALREADY = ("This form was sent already (a reload sends it again), so nothing more was made. What it made "
                "was shown once, on the page that answered it first; if that was not kept, revoke it and make "
                "another.")


def init_app(app: Flask) -> None:
    app.jinja_env.globals.update(form_once=form_once)


def form_once() -> str:
    """Return a new token for a form `sent_once` guards (its hidden `once` field)."""
    return secrets.token_urlsafe(16)


def sent_once() -> None:
    """Refuse a form sent a second time by the token it carries (Conflict); the first sending takes it."""
    token = request.form.get(FIELD, "")
    if not token:
        return
    if _TOKEN.fullmatch(token) is None:
        raise Invalid.field(FIELD, "Not a token this page gave.", "The form is not one this page gave out.")
    key = f"tms:{current_tenant().id}:form-once:{current_actor().user_id}:{token}"
    try:
        first = redis_client().set(key, b"1", nx=True, ex=KEPT_SECONDS)
    except redis.RedisError as exc:
        log.warning("a form's once token went unchecked: %s", exc)
        return
    if not first:
        raise Conflict(SENT_ALREADY)
