"""WebSocket stream of a ticket's conversation: catch-up by seq, then live events, both ways.

The caller is authenticated and the ticket checked before the WebSocket handshake, so a refused
client gets a plain HTTP 401/404 and no data. The socket's thread owns every send; it sleeps on
the socket's wake event, which both incoming frames and the process hub's live events set. No
database session is held while waiting: each frame, catch-up page or resync opens a short one.
Every `STREAM_RESYNC_INTERVAL` seconds the socket re-checks its tenant, key and ticket (losing
any ends it) and catches up by seq if the ticket has moved on, which also covers a live event
lost in Redis.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
import sqlalchemy as sa
from flask import Blueprint, Flask, current_app, request
from flask_smorest import abort
from marshmallow import ValidationError
from sqlalchemy.exc import DataError, SQLAlchemyError
from werkzeug.exceptions import HTTPException, ServiceUnavailable, UnprocessableEntity

from app.auth import ratelimit
from app.auth.actor import Actor, current_actor, set_actor
from app.auth.request_auth import authenticate_api_key
from app.conversation import services, tokens
from app.conversation.hub import Listener, process_hub
from app.conversation.schemas import MAX_BODY, MessageSchema, StreamArgs
from app.errors import DomainError, NotFound
from app.extensions import db, redis_client, sock
from app.http_errors import api_error_response, http_error
from app.realtime import channel
from app.tickets.services import ticket_for
from tenants import ApiKey, Tenant, active_tenant, current_tenant, set_current_tenant

log = logging.getLogger(__name__)

bp = Blueprint("stream", __name__)
CATCH_UP_PAGE = 200
_message_frame = MessageSchema()


def init_app(app: Flask) -> None:
    # simple-websocket pings every `ping_interval` and closes a peer that missed the last pong.
    app.config.setdefault("SOCK_SERVER_OPTIONS", {
        "ping_interval": app.config["STREAM_PING_INTERVAL"],
        # A 64 KiB body may take up to 12 bytes per character once JSON-escaped; beyond this the
        # frame is not a valid message anyway and the connection is closed with 1009.
        "max_message_size": 12 * MAX_BODY + 4096,
    })
    app.register_blueprint(bp)


@bp.before_request
def authenticate_stream() -> None:
    """Accept an API key header or a single-use `?token=` for this ticket; refuse before the handshake."""
    try:
        args = StreamArgs().load(request.args.to_dict())
    except ValidationError as err:
        abort(422, message="The request has invalid fields.", errors=err.messages)
    ticket_id = (request.view_args or {}).get("ticket_id")
    if args["token"]:
        grant = tokens.redeem_token(args["token"])
        tenant = active_tenant(grant.tenant_slug) if grant else None
        if grant is None or tenant is None or grant.ticket_id != ticket_id:
            abort(401, message="The stream token is not valid, was used already or has expired.")
        set_current_tenant(tenant.ref())
        set_actor(grant.actor)
    else:
        authenticate_api_key(request.headers.get("Authorization", ""))
    ticket_for(current_actor(), ticket_id)
    db.session.remove()


@sock.route("/api/v1/tickets/<uuid:ticket_id>/stream", bp=bp)
def ticket_stream(ws, ticket_id: uuid.UUID) -> None:
    """Serve one socket on a ticket until the peer leaves or stops answering pings."""
    after_seq = StreamArgs().load(request.args.to_dict())["after_seq"]
    try:
        TicketStream(ws, ticket_id, current_actor(), after_seq).run()
    except OSError as exc:  # the peer vanished mid-send; the socket is finished either way
        log.info("stream closed: %s", exc)


@contextmanager
def short_session() -> Iterator[None]:
    """Give a frame its own database session, returned to the pool as soon as it is handled."""
    try:
        yield
    finally:
        db.session.remove()


class TicketStream:
    """One socket's state: who it is, the last seq it accounted for, and its inbox."""

    def __init__(self, ws, ticket_id: uuid.UUID, actor: Actor, after_seq: int) -> None:
        self.ws = ws
        self.ticket_id = ticket_id
        self.actor = actor
        self.last_seq = after_seq
        self.id = uuid.uuid4().hex
        self.channel = channel(current_tenant().id, ticket_id)
        # simple-websocket sets `ws.event` when a frame arrives; the hub sets it for live events.
        self.listener = Listener(ws.event)
        self.last_typing = 0.0

    def run(self) -> None:
        config = current_app.config
        # Events are small frames sent one by one: without NODELAY, Nagle holds each behind the
        # peer's delayed ACK (~40 ms).
        with contextlib.suppress(OSError, AttributeError):
            self.ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        hub = process_hub(config["REDIS_URL"])
        hub.join(self.channel, self.listener)
        try:
            self.catch_up()
            resync_every = config["STREAM_RESYNC_INTERVAL"]
            next_resync = time.monotonic() + resync_every
            while True:
                self.ws.event.wait(timeout=max(next_resync - time.monotonic(), 0.01))
                self.ws.event.clear()
                while (frame := self.ws.receive(timeout=0)) is not None:
                    self.on_frame(frame)
                for event, raw in self.listener.drain():
                    self.on_live(event, raw)
                if self.listener.closing:
                    self.ws.close(reason=1001, message="Server restarting; reconnect with after_seq.")
                    return
                if time.monotonic() >= next_resync:
                    next_resync = time.monotonic() + resync_every
                    if not self.still_allowed():
                        self.ws.close(reason=1008, message="Access to this ticket has ended.")
                        return
                if self.listener.resync:
                    self.listener.resync = False
                    self.catch_up()
        finally:
            hub.leave(self.channel, self.listener)
            db.session.remove()

    def still_allowed(self) -> bool:
        """Tell whether the tenant is active, the key live and the ticket visible (checked periodically).

        Also notes whether the ticket has messages beyond `last_seq`, so an idle socket's periodic
        resync costs two small queries and no catch-up query.
        """
        try:
            with short_session():
                tenant_id = uuid.UUID(current_tenant().id)
                access = sa.select(Tenant.id).where(Tenant.id == tenant_id, Tenant.status == "active")
                if self.actor.api_key_id is not None:
                    access = access.join(ApiKey, ApiKey.tenant_id == Tenant.id).where(
                        ApiKey.id == self.actor.api_key_id, ApiKey.revoked_at.is_(None))
                if db.session.execute(access).first() is None:
                    return False
                try:
                    last = ticket_for(self.actor, self.ticket_id).last_message_seq
                except NotFound:
                    return False
        except SQLAlchemyError:  # the database is busy or away: keep the socket, check next time
            log.warning("could not re-check a stream's access", exc_info=True)
            return True
        if last > self.last_seq:
            self.listener.resync = True
        return True

    def send(self, event: dict[str, Any]) -> None:
        self.ws.send(json.dumps(event, default=str))

    def catch_up(self) -> None:
        """Send every message after `last_seq` from Postgres, page by page.

        If the database cannot answer, the socket stays open and tries again at the next resync.
        """
        while True:
            try:
                with short_session():
                    rows = services.messages_after(self.ticket_id, self.last_seq, CATCH_UP_PAGE)
                    events = [(m.seq, m.internal, m.deleted_at is not None, services.message_json(m))
                              for m in rows]
            except SQLAlchemyError:
                log.warning("catch-up failed; retrying at the next resync", exc_info=True)
                return
            for seq, internal, deleted, message in events:
                self.last_seq = seq
                if not deleted and services.visible_to(self.actor, internal):
                    self.send({"type": "message.created", "message": message})
            if len(rows) < CATCH_UP_PAGE:
                return

    def on_live(self, event: dict[str, Any], raw: str | None = None) -> None:
        """Forward a live event this socket may see; a seq gap means something was missed."""
        kind = event.get("type")
        if kind == "message.created":
            message = event.get("message") or {}
            seq = message.get("seq", 0)
            if seq <= self.last_seq:
                return
            if seq > self.last_seq + 1:
                self.catch_up()
                return
            self.last_seq = seq
        elif kind == "typing":
            if event.get("origin") == self.id:
                return
            event, raw = {"type": "typing", "user_id": event.get("user_id")}, None
        for item in ("message", "attachment"):
            if isinstance(event.get(item), dict) and not services.visible_to(
                    self.actor, bool(event[item].get("internal"))):
                return
        if raw is None:
            self.send(event)
        else:
            self.ws.send(raw)

    def on_frame(self, frame: str | bytes) -> None:
        """Handle one client frame; a bad one gets an error event and changes nothing."""
        ref = None
        try:
            if isinstance(frame, bytes):
                abort(400, message="Frames must be JSON text.")
            try:
                data = json.loads(frame)
            except ValueError:
                abort(400, message="The frame is not valid JSON.")
            if not isinstance(data, dict):
                abort(400, message="A frame must be a JSON object.")
            ref = data.pop("ref", None)
            kind = data.pop("type", None)
            if kind == "message":
                self.post(data)
            elif kind == "typing":
                self.typing(data)
            else:
                abort(422, message="Unknown frame type.", errors={"type": ["Must be one of: message, typing."]})
        except (HTTPException, DomainError) as error:
            db.session.remove()
            self.send(error_event(error, ref))
        except DataError as exc:
            db.session.remove()
            log.info("frame rejected by the database: %s", exc.orig)
            self.send(error_event(UnprocessableEntity("A value is out of range or malformed."), ref))
        except SQLAlchemyError:
            db.session.remove()
            log.exception("could not store a frame")
            self.send(error_event(ServiceUnavailable("The message could not be stored; send it again."), ref))

    def post(self, data: dict[str, Any]) -> None:
        """Store a message exactly as the REST call would, then deliver it to this socket at once."""
        if self.actor.api_key_id is not None:
            limit = ratelimit.hit(str(self.actor.api_key_id))
            if limit is not None and limit.exceeded:
                abort(429, message="Rate limit exceeded; retry after the window resets.")
        try:
            fields = _message_frame.load(data)
        except ValidationError as err:
            abort(422, message="The frame has invalid fields.", errors=err.messages)
        with short_session():
            message = services.post_message(self.actor, self.ticket_id, **fields)
            event = {"type": "message.created", "message": services.message_json(message)}
            db.session.commit()
        self.on_live(event)

    def typing(self, data: dict[str, Any]) -> None:
        """Relay that this user is typing to the ticket's other sockets, at most once per interval."""
        if data:
            abort(422, message="A typing frame has no fields.", errors={k: ["Unknown field."] for k in data})
        now = time.monotonic()
        if now - self.last_typing < current_app.config["STREAM_TYPING_INTERVAL"]:
            return
        self.last_typing = now
        try:
            redis_client().publish(self.channel, json.dumps(
                {"type": "typing", "user_id": str(self.actor.user_id), "origin": self.id}))
        except redis.RedisError as exc:  # typing is a courtesy; never break the socket over it
            log.info("typing not relayed: %s", exc)


def error_event(error: HTTPException | DomainError, ref: Any = None) -> dict[str, Any]:
    """Return an error event carrying the API's error body, and the frame's `ref` if it had one."""
    if isinstance(error, DomainError):
        error = http_error(error)
    event: dict[str, Any] = {"type": "error", **api_error_response(error).get_json()}
    if ref is not None:
        event["ref"] = ref
    return event
