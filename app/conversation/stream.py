"""WebSocket stream of a ticket's conversation: catch-up by seq, then live events, both ways.

The caller is authenticated and the ticket checked before the WebSocket handshake, so a refused
client gets a plain HTTP 401/404 and no data. The socket's thread owns every send; it sleeps on
the socket's wake event, which both incoming frames and the process hub's live events set. No
database session is held while waiting: each frame, catch-up page or resync opens a short one.
Every `STREAM_RESYNC_INTERVAL` seconds the socket re-checks its tenant, key and ticket (losing
any ends it), catches up by seq if the ticket has moved on, and sends the edits, deletions and
scan results of the last `RECENT_CHANGES` it has not told, which covers a live event lost in
Redis or with a process that died between its commit and its publish. A new socket is told those
since its client's last socket opened (`changed_since`, up to `CHANGES_SINCE_AT_MOST`), so a page
back from a long sleep does not keep showing a message deleted meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import re
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import redis
from flask import Blueprint, Flask, current_app, g, request
from flask_smorest import abort
from h11 import ProtocolError as H11Error
from marshmallow import ValidationError
from sqlalchemy.exc import DataError, SQLAlchemyError
from werkzeug.exceptions import (
    BadRequest,
    HTTPException,
    InternalServerError,
    ServiceUnavailable,
    UnprocessableEntity,
)
from wsproto.utilities import ProtocolError as WsprotoError

from app.auth import ratelimit
from app.auth.actor import Actor, current_actor, set_actor
from app.auth.cross_tenant import cross_tenant_attempt
from app.auth.grants import Grant, live_actor
from app.auth.key_cache import CHANGED_CHANNEL, current_generation, generation_key
from app.auth.request_auth import authenticate_api_key
from app.conversation import services, tokens, writes
from app.conversation.hub import Listener, process_hub
from app.conversation.models import Message
from app.conversation.schemas import MAX_BODY, MessageFrameSchema, StreamArgs
from app.conversation.socket_guard import ReaderThread, Sending, finish
from app.conversation.socket_slots import Slot
from app.errors import DomainError, NotFound
from app.extensions import db, parser, redis_client, sock
from app.gunicorn_worker import send_timeout
from app.http_errors import api_error_response, http_error
from app.idempotency import Claim, endpoint_of, fingerprint
from app.input_guard import check_value, parse_json
from app.media import services as media
from app.realtime import channel
from app.tickets.schemas import dump_ticket
from app.tickets.services import ticket_for
from tenants import current_tenant, requested_slug, set_current_tenant, tenant_moved

log = logging.getLogger(__name__)

bp = Blueprint("stream", __name__)
# Messages read per catch-up page: each may hold 64 KiB of text and its HTML, held until sent.
CATCH_UP_PAGE = 50
HANDSHAKE_KEY = re.compile(r"[A-Za-z0-9+/]{21}[AQgw]==", re.ASCII)
TOKEN_REFUSED = "The stream token is not valid, was used already or has expired."
RECENT_CHANGES = timedelta(minutes=15)  # what a socket is told of again (`send_recent_changes`)
CHANGES_SINCE_AT_MOST = timedelta(days=7)  # how far back a new socket's `changed_since` is heard
CHANGES_TOLD = 100  # the most changes of messages, and of files, a socket is told at once
_message_frame = MessageFrameSchema()
MESSAGES_RULE = "/api/v1/tickets/<uuid:ticket_id>/messages"  # the REST route a message frame stands for
_stream_args = StreamArgs()


def init_app(app: Flask) -> None:
    # simple-websocket pings every `ping_interval` and closes a peer that missed the last pong.
    app.config.setdefault("SOCK_SERVER_OPTIONS", {
        "ping_interval": app.config["STREAM_PING_INTERVAL"],
        # A 64 KiB body may take up to 12 bytes per character once JSON-escaped; beyond this the
        # frame is not a valid message anyway and the connection is closed with 1009.
        "max_message_size": 12 * MAX_BODY + 4096,
        "thread_class": ReaderThread,  # bounds the frames a client may have waiting (socket_guard)
    })
    app.register_blueprint(bp)


@bp.before_request
def authenticate_stream() -> None:
    """Accept an API key header or a single-use `?token=` for this ticket; refuse before the handshake.

    The tenant's key generation is read before the grant is checked, so a revocation that lands
    in between is seen by the socket's first frame.
    """
    check_handshake()
    try:  # read once, here, for the socket too; an unknown or repeated parameter is a ValidationError
        args = g.stream_args = _stream_args.load(parser.load_querystring(request, _stream_args))
    except ValidationError as err:
        abort(422, message="The request has invalid fields.", errors=err.messages)
    ticket_id = (request.view_args or {}).get("ticket_id")
    if args["token"]:
        redeemed = tokens.redeem_token(args["token"])
        actor = None
        if redeemed is not None and redeemed.ticket_id == ticket_id:
            slug = requested_slug()
            if slug is not None and slug != redeemed.grant.tenant.slug:
                cross_tenant_attempt("stream_token", redeemed.grant.user_id, redeemed.grant.tenant.id, slug)
                abort(404, message="No such organization.")  # a token works only under its own tenant
            set_current_tenant(redeemed.grant.tenant)
            g.stream_generation = current_generation(redeemed.grant.tenant.id)
            actor = live_actor(redeemed.grant)
        if actor is None:
            abort(401, message=TOKEN_REFUSED)
        set_actor(actor)
    else:
        authenticate_api_key(request.headers.get("Authorization", ""))
        g.stream_generation = g.get("key_generation")  # None when unknown: the first frame re-checks
    last = services.last_seq_seen(current_actor(), ticket_for(current_actor(), ticket_id))
    db.session.remove()
    if args["token"] and not tokens.take_token(args["token"]):  # checked: now it is used, by one request only
        abort(401, message=TOKEN_REFUSED)
    if args["after_seq"] > last:  # the socket would wait for seqs that come later, dropping what comes first
        abort(422, message="The request has invalid fields.",
              errors={"after_seq": [f"Past the ticket's last message, whose seq is {last}."]})
    slot = Slot(current_tenant(), current_actor())
    full = slot.claim()
    if full is not None:
        abort(429, message=f"This {full} has {slot.cap_of(full)} streams open already, the most allowed; "
                           "close one before opening another.")
    g.stream_slot = slot
    g.stream_handshake = True  # what fails from here until the socket opens is the handshake's (`unreadable_handshake`)


def check_handshake() -> None:
    """Refuse a WebSocket handshake wsproto would fail on (400, not its exception): RFC 6455's version and key."""
    version = request.headers.get("Sec-WebSocket-Version", "")
    if version != "13":
        abort(400, message="Not a WebSocket handshake this server speaks: Sec-WebSocket-Version must be 13.")
    if HANDSHAKE_KEY.fullmatch(request.headers.get("Sec-WebSocket-Key", "")) is None:
        abort(400, message="Not a WebSocket handshake: Sec-WebSocket-Key must be 16 bytes in base64.")


@bp.errorhandler(ValueError)  # UnicodeError is one
@bp.errorhandler(WsprotoError)
@bp.errorhandler(H11Error)
def unreadable_handshake(exc: Exception):
    """flask-sock hands every header of the handshake to wsproto and h11, which raise on some that
    `check_handshake` lets by (a Host that is not IDNA, bytes that are not ASCII, a window size that
    is no number): 400, as any unreadable request. Before the handshake, or once the socket is open, it
    is the server's own fault."""
    if g.get("stream_open") or not g.get("stream_handshake"):
        log.exception("stream failed on %s", request.path)
        return api_error_response(InternalServerError())
    return api_error_response(BadRequest(f"Not a WebSocket handshake this server can read: {str(exc)[:100]}"))


@bp.teardown_request
def release_slot(_exc: BaseException | None) -> None:
    slot = g.pop("stream_slot", None)
    if slot is not None:
        slot.release()


@sock.route("/api/v1/tickets/<uuid:ticket_id>/stream", bp=bp)
def ticket_stream(ws, ticket_id: uuid.UUID) -> None:
    """Serve one socket on a ticket until the peer leaves, stops answering pings, or loses access."""
    g.stream_open = True
    with contextlib.suppress(OSError, AttributeError):
        # Sends wait for good again: the worker bounds each send of a response (`app.gunicorn_worker`), and
        # a send cut short would leave part of a frame; a stream's sends have their watchdog (`Sending`).
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, send_timeout(0))
    args = g.stream_args
    grant = Grant.of(current_tenant(), current_actor())
    try:
        TicketStream(ws, ticket_id, grant, current_actor(), args["after_seq"], g.stream_generation, g.stream_slot,
                     with_ticket=args["with_ticket"], changed_since=args["changed_since"]).run()
    except OSError as exc:  # the peer vanished mid-send; the socket is finished either way
        log.info("stream closed: %s", exc)
    finally:
        finish(ws)


def away_for(changed_since: datetime | None) -> timedelta:
    """Return how far back a new socket is told what changed: since its client's last socket, within bounds.

    Never less than `RECENT_CHANGES` (what every resync covers, and all a client that does not say
    is told), never more than `CHANGES_SINCE_AT_MOST`.
    """
    if changed_since is None:
        return RECENT_CHANGES
    return min(max(datetime.now(UTC) - changed_since, RECENT_CHANGES), CHANGES_SINCE_AT_MOST)


@contextmanager
def short_session() -> Iterator[None]:
    """Give a frame its own database session, returned to the pool as soon as it is handled."""
    try:
        yield
    finally:
        db.session.remove()


def first_resync_after(interval: float) -> float:
    """Return when a new socket first re-checks: a random point of its first interval, then every interval.

    Sockets opened together (hundreds reconnecting after a restart) would otherwise re-check in
    lockstep for as long as they stay open, each taking a pooled database connection in the same
    instant: in the load bench, 500 sockets opened together did, and a hundred re-checks of one
    burst timed out waiting for a connection. No socket goes longer than the interval unchecked.
    """
    return random.uniform(0, interval)


class GrantEnded(Exception):
    """The socket's key, user or tenant is gone, or the ticket is no longer visible to it."""


class TenantMoved(Exception):
    """The socket's tenant moved to another database; the client reconnects to reach it there."""


class TicketStream:
    """One socket's state: who it is, the last seq it accounted for, and its inbox."""

    def __init__(self, ws, ticket_id: uuid.UUID, grant: Grant, actor: Actor, after_seq: int,
                 generation: bytes | None, slot: Slot, with_ticket: bool = False,
                 changed_since: datetime | None = None) -> None:
        self.ws = ws
        self.ticket_id = ticket_id
        self.grant = grant
        self.actor = actor
        self.generation = generation
        self.last_seq = after_seq
        self.with_ticket = with_ticket
        self.changed_since = changed_since  # the client has heard every change before this (if it says)
        self.id = uuid.uuid4().hex
        self.channel = channel(current_tenant().id, ticket_id)
        # simple-websocket sets `ws.event` when a frame arrives; the hub sets it for live events.
        self.listener = Listener(ws.event, grant.tenant.id, slot, Sending(getattr(ws, "sock", None)))
        self.last_typing = -math.inf
        # Message or file id -> the state of it this socket last sent (`told_state`) and when, so a
        # resync sends only the changes whose live event never came, and a live event late after
        # a resync told its change is not sent again.
        self.told: dict[str, tuple[str, float]] = {}

    def run(self) -> None:
        config = current_app.config
        # Events are small frames sent one by one: without NODELAY, Nagle holds each behind the
        # peer's delayed ACK (~40 ms).
        with contextlib.suppress(OSError, AttributeError):
            self.ws.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        hub = process_hub(config["REDIS_URL"], CHANGED_CHANNEL)
        hub.join(self.channel, self.listener)
        try:
            self.serve(config["STREAM_RESYNC_INTERVAL"])
        except GrantEnded:
            self.close(1008, "Access to this ticket has ended.")
        except TenantMoved:
            self.close(1001, "The organization moved; reconnect with after_seq.")
        finally:
            hub.leave(self.channel, self.listener)
            db.session.remove()

    def serve(self, resync_every: float) -> None:
        if self.with_ticket:
            self.send_ticket()
        held = self.last_seq
        self.catch_up()  # first: a file's scan is told after the message that carries it
        self.send_recent_changes(held, away_for(self.changed_since), self.changed_since)
        next_resync = time.monotonic() + first_resync_after(resync_every)
        while True:
            wait = min(next_resync - time.monotonic(), self.key_seconds_left())  # a key's end is an action too
            self.ws.event.wait(timeout=max(wait, 0.01))
            self.ws.event.clear()
            self.recheck_if_asked()
            while (frame := self.ws.receive(timeout=0)) is not None:
                self.on_frame(frame)
            for event, raw in self.listener.drain():
                # The hub asks for a re-check before it queues any later event, so asking here
                # keeps a revoked or demoted socket from forwarding what followed the change.
                self.recheck_if_asked()
                self.on_live(event, raw)
            if self.listener.closing:
                self.close(1001, "Server restarting; reconnect with after_seq.")
                return
            if self.listener.overflowed:
                self.close(1008, "Too far behind the ticket's events; reconnect with after_seq.")
                return
            if time.monotonic() >= next_resync:
                next_resync = time.monotonic() + resync_every
                self.resync()
            if self.listener.resync:
                self.listener.resync = False
                self.catch_up()
            if self.listener.replay:  # after a pub/sub outage: what no catch-up by seq brings back
                self.listener.replay = False
                self.send_ticket()
                self.send_recent_changes(self.last_seq)

    def recheck_if_asked(self) -> None:
        """Re-check the grant if the hub asked (the key generation moved), or the key's end has come."""
        if self.listener.recheck or self.key_ended():
            self.listener.recheck = False
            self.recheck_grant()

    def key_seconds_left(self) -> float:
        """Return how long the socket's key still works (a rotated key's grace), or infinity."""
        ends = self.actor.key_expires_at
        return math.inf if ends is None else (ends - datetime.now(UTC)).total_seconds()

    def key_ended(self) -> bool:
        """Tell whether the socket's key is past its end: gone whatever the database says, as an end only
        moves earlier."""
        return self.key_seconds_left() <= 0

    def recheck_grant(self, read_changes: bool = False) -> list[tuple[bool, dict[str, Any]]] | None:
        """Turn the grant into an actor afresh from Postgres; raise GrantEnded if nothing is left of it.

        Raise TenantMoved if the tenant now lives on another database (the socket's queries would miss it).
        The role may have changed (a demoted agent stops seeing internal notes at once). If the
        database cannot answer, the socket keeps its actor and checks again at the next chance.
        With `read_changes`, also return the recent changes (`read_recent_changes`), read on the same
        pooled connection: a resync of every socket takes one checkout, not two.
        """
        if self.key_ended():
            raise GrantEnded
        changes = None
        try:
            with short_session():
                if tenant_moved(self.grant.tenant):
                    raise TenantMoved
                actor = live_actor(self.grant)
                if actor is None:
                    raise GrantEnded
                try:
                    last = ticket_for(actor, self.ticket_id).last_message_seq
                except NotFound:
                    raise GrantEnded from None
                if read_changes:
                    changes = self.read_recent_changes(self.last_seq, actor=actor)[0]  # live all along: told the rest
        except SQLAlchemyError:
            log.warning("could not re-check a stream's access", exc_info=True)
            return None
        self.actor = actor
        if last > self.last_seq:
            self.listener.resync = True  # catches up on what the pub/sub may have dropped
        return changes

    def resync(self) -> None:
        """Every resync interval: re-check the grant, catch up if behind, and send the recent changes
        not told live (the hub renews the slot)."""
        self.generation = current_generation(self.grant.tenant.id)
        changes = self.recheck_grant(read_changes=True)
        if changes is not None:
            self.tell_changes(changes, untold_only=True)

    def send(self, event: dict[str, Any]) -> None:
        """Send an event as JSON text; a value JSON cannot hold (infinity) raises rather than goes out."""
        self.send_text(json.dumps(event, default=str, allow_nan=False, ensure_ascii=False))

    def send_text(self, text: str) -> None:
        """Send one frame, watched: a client that takes nothing for `STREAM_SEND_TIMEOUT` is cut off.

        A send blocks while the client's window is shut; the process hub's watchdog shuts down a
        socket stuck that long (`socket_guard.Sending`), which fails the send, so a client that
        stops reading cannot hold a thread or the memory of its pending events.
        """
        self.listener.sending.begin(current_app.config["STREAM_SEND_TIMEOUT"])
        try:
            self.ws.send(text)
        finally:
            self.listener.sending.end()

    def close(self, code: int, message: str) -> None:
        """Close the socket with a reason, watched as a send is (the close frame may not get out either)."""
        self.listener.sending.begin(current_app.config["STREAM_SEND_TIMEOUT"])
        try:
            self.ws.close(reason=code, message=message)
        finally:
            self.listener.sending.end()

    def send_ticket(self) -> None:
        """Send the ticket as it is now; the socket already listens, so no later change can slip between."""
        try:
            with short_session():
                body = dump_ticket(ticket_for(self.actor, self.ticket_id))
        except NotFound:
            raise GrantEnded from None
        except SQLAlchemyError:
            log.warning("could not read the ticket for a new stream", exc_info=True)
            return
        self.send({"type": "ticket.updated", "ticket": body})

    def send_recent_changes(self, up_to_seq: int, within: timedelta = RECENT_CHANGES,
                            heard_until: datetime | None = None) -> None:
        """Send what changed `within` the last while of what the client holds (`read_recent_changes`), told or
        not, then `changes.truncated` with the time of the newest change it did not tell, if that was after
        `heard_until` (the client said it had heard every change before then): a client that does not
        show that change yet should read the conversation again."""
        try:
            with short_session():
                changes, untold = self.read_recent_changes(up_to_seq, within)
        except SQLAlchemyError:
            log.warning("could not read a stream's recent changes", exc_info=True)
            return
        self.tell_changes(changes)
        if untold is not None and (heard_until is None or untold >= heard_until):
            self.send({"type": "changes.truncated", "changed_at": untold.isoformat()})

    def read_recent_changes(self, up_to_seq: int, within: timedelta = RECENT_CHANGES, actor: Actor | None = None
                            ) -> tuple[list[tuple[bool, dict[str, Any]]], datetime | None]:
        """Read what changed lately of what the client holds and may see (as `actor`, or the socket's own
        actor): edits and deletions of its messages (up to `up_to_seq`) and the ticket's scans, of the
        last `within`, as (internal, event), the newest `CHANGES_TOLD` of each; and when the newest change
        left out was made (None if none was).

        Each was announced live once, maybe while this client had no socket (it reconnects after a
        drop, or its page was made a moment before the socket listened), while this process had no
        pub/sub, or not at all (its process died between commit and publish); a catch-up by seq
        brings back new messages only. Clients replace a message or a file by its id, so a state
        they have already is harmless.
        """
        staff = (actor or self.actor).is_staff
        messages, untold_message = services.recently_changed(self.ticket_id, up_to_seq, within, staff, CHANGES_TOLD) \
            if up_to_seq else ([], None)
        files, untold_file = media.recently_scanned(self.ticket_id, within, staff, CHANGES_TOLD)
        changes = [*messages, *((bool(body.get("internal")), {"type": "attachment.updated", "attachment": body})
                                for body in files)]
        return changes, max((t for t in (untold_message, untold_file) if t is not None), default=None)

    def tell_changes(self, changes: list[tuple[bool, dict[str, Any]]], untold_only: bool = False) -> None:
        """Send the changes the actor may see; with `untold_only`, only those not sent as they are now."""
        for internal, event in changes:
            if not services.visible_to(self.actor, internal):
                continue
            if self.note_told(event) or not untold_only:
                self.send(event)
        horizon = time.monotonic() - 2 * RECENT_CHANGES.total_seconds()  # no longer asked about: forgotten
        self.told = {item: told for item, told in self.told.items() if told[1] > horizon}

    def note_told(self, event: dict[str, Any]) -> bool:
        """Note that this socket tells the client a message or file as `event` says it is now; False
        if it had told it so already."""
        item_id, state = told_state(event)
        news = self.told.get(item_id, ("",))[0] != state
        self.told[item_id] = (state, time.monotonic())
        return news

    def catch_up(self, before: int | None = None) -> None:
        """Send every message after `last_seq` (and before seq `before`, if given) from Postgres, page by page.

        The grant is re-checked before each message when a change was announced, so a catch-up
        that a revocation or demotion interrupts sends nothing it no longer may. If the database
        cannot answer, the socket stays open and tries again at the next resync.
        """
        while True:
            self.recheck_if_asked()
            try:
                with short_session():
                    rows = services.messages_after(self.ticket_id, self.last_seq, CATCH_UP_PAGE)
                    events = [(m.seq, m.internal, m.deleted_at is not None, services.message_json(m))
                              for m in rows]
            except SQLAlchemyError:
                log.warning("catch-up failed; retrying at the next resync", exc_info=True)
                return
            for seq, internal, deleted, message in events:
                if before is not None and seq >= before:
                    return
                self.recheck_if_asked()
                self.last_seq = seq
                if not deleted and services.visible_to(self.actor, internal):
                    self.send({"type": "message.created", "message": message})
                # As it is now: a resync need not tell its edit again, nor the deletion of what never went out.
                if deleted or message.get("edited_at"):
                    self.note_told({"type": "message.deleted" if deleted else "message.updated", "message": message})
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
        if kind in CHANGES and not self.note_told(event):
            return  # a resync read it between its commit and this event, and told it already
        if raw is None:
            self.send(event)
        else:
            self.send_text(raw)

    def on_frame(self, frame: str | bytes) -> None:
        """Handle one client frame; a bad one gets an error event and changes nothing.

        Before it acts on a frame the socket makes sure its grant stands: one Redis read of the
        key generation (counted against the key's rate limit for messages, as REST does), and
        Postgres only when the generation moved.
        """
        ref = None
        try:
            if isinstance(frame, bytes):
                abort(400, message="Frames must be JSON text.")
            data = parse_json(frame, current_app.config["JSON_MAX_BYTES"])
            if not isinstance(data, dict):
                abort(400, message="A frame must be a JSON object.")
            check_value({"ref": data.get("ref")})
            ref = data.pop("ref", None)  # a refusal of the rest of the frame still names it
            check_value(data)
            kind = data.pop("type", None)
            if kind not in ("message", "typing"):
                abort(422, message="Unknown frame type.", errors={"type": ["Must be one of: message, typing."]})
            self.check_grant(counted=kind == "message")
            if kind == "message":
                self.post(data, ref)
            else:
                self.typing(data)
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

    def check_grant(self, counted: bool) -> None:
        """Re-check the grant if the key generation moved (or cannot be read); count a message frame
        against its key's rate limit, or its person's for a page's socket."""
        limit = None
        if counted and self.actor.api_key_id is not None:
            read = ratelimit.hit_and_read(self.grant.tenant.id, str(self.actor.api_key_id),
                                          generation_key(self.grant.tenant.id))
            limit, generation = (read[0], read[1] or b"") if read is not None else (None, None)
        else:
            if counted:
                limit = ratelimit.hit_user(self.grant.tenant.id, str(self.actor.user_id))
            generation = current_generation(self.grant.tenant.id)
        if generation is None or generation != self.generation or self.key_ended():
            self.recheck_grant()
            self.generation = generation
        if limit is not None and limit.exceeded:
            abort(429, message="Rate limit exceeded; retry after the window resets.")

    def post(self, data: dict[str, Any], ref: Any = None) -> None:
        """Store a message exactly as the REST call would, then deliver it to this socket at once.

        The sender's own copy carries the frame's `ref`, so a client can mark its optimistic
        message as delivered; every other socket gets the event without it. A frame's
        `idempotency_key` is the REST call's Idempotency-Key (one key is one message, by either
        way): a frame sent again with it, say after a reconnect, stores nothing and is answered
        with the message it stored first as it is now (`message.deleted` if it is gone), marked `replayed`.
        """
        try:
            fields = _message_frame.load(data)
        except ValidationError as err:
            abort(422, message="The frame has invalid fields.", errors=err.messages)
        key = fields.pop("idempotency_key")
        claim = None if key is None else self.claim(key, data)
        posted = None
        if not fields["attachment_ids"]:  # files are locked and checked on the session's path
            del fields["attachment_ids"]
            posted = writes.post_message(self.actor, self.ticket_id, claim, **fields)
        if posted is None:
            with short_session():
                answer = writes.post_in_session(self.actor, self.ticket_id, claim, fields)
            message, replayed = orjson.loads(answer.get_data()), "Idempotent-Replayed" in answer.headers
        else:
            replayed = posted.replay is not None
            message = orjson.loads(posted.replay.get_data()) if replayed else posted.message
        event: dict[str, Any] = {"type": "message.created", "message": message}
        if ref is not None:
            event["ref"] = ref
        if message["seq"] > self.last_seq + 1 and (ref is not None or replayed):
            # Messages stored meanwhile by others go first, so the gap check does not swallow the echo.
            self.catch_up(before=message["seq"])
        if not replayed:
            self.on_live(event)
            return
        event = {**self.as_it_is_now(message), "replayed": True}
        if ref is not None:
            event["ref"] = ref
        if message["seq"] == self.last_seq + 1:
            self.last_seq = message["seq"]
        self.send(event)  # the answer to this frame, though the message may have gone by already

    def as_it_is_now(self, first: dict[str, Any]) -> dict[str, Any]:
        """Return the event of a message stored by an earlier frame as it is now: edited since, or deleted
        (the stored first answer would bring a deleted message back to the sender's page)."""
        with short_session():
            message = db.session.get(Message, uuid.UUID(first["id"]))  # a ticket's messages are never removed
            if message.deleted_at is not None or not services.visible_to(self.actor, message.internal):
                return {"type": "message.deleted", "message": services.deleted_json(message)}
            return {"type": "message.created", "message": services.message_json(message)}

    def claim(self, key: str, data: dict[str, Any]) -> Claim:
        """Return the claim of a frame's key, as the REST call to post `data` would make it."""
        owner = self.actor.api_key_id or self.actor.user_id
        body = {k: v for k, v in data.items() if k != "idempotency_key"}
        return Claim(owner, key, endpoint_of("POST", MESSAGES_RULE, {"ticket_id": self.ticket_id}), fingerprint(body))

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
                {"type": "typing", "user_id": str(self.actor.user_id), "origin": self.id}, allow_nan=False))
        except redis.RedisError as exc:  # typing is a courtesy; never break the socket over it
            log.info("typing not relayed: %s", exc)


# The events that change a message or file a client holds, and what each says of its state.
CHANGES = {"message.updated": ("message", "edited_at"), "message.deleted": ("message", None),
           "attachment.updated": ("attachment", "status")}


def told_state(event: dict[str, Any]) -> tuple[str, str]:
    """Return the id of the message or file a change event is about, and the state it tells (an edit's
    time as an instant: processes whose sessions keep other time zones write it differently)."""
    item, field = CHANGES[event["type"]]
    body = event.get(item) or {}
    value = body.get(field) if field else ""
    if item == "attachment":  # a scan tried again may end as before, with another reason
        value = f"{value}:{body.get('status_reason')}"
    if field == "edited_at" and isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = datetime.fromisoformat(value).timestamp()
    return str(body.get("id")), f"{event['type']}:{value}"


def error_event(error: HTTPException | DomainError, ref: Any = None) -> dict[str, Any]:
    """Return an error event carrying the API's error body, and the frame's `ref` if it had one."""
    if isinstance(error, DomainError):
        error = http_error(error)
    event: dict[str, Any] = {"type": "error", **api_error_response(error).get_json()}
    if ref is not None:
        event["ref"] = ref
    return event

