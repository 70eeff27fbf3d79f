"""One Redis pub/sub connection per web process, shared by every ticket stream the process holds.

A process subscribes to a ticket's channel when its first socket on that ticket opens and
unsubscribes when the last one closes, so Redis only sends a process the tickets someone is
looking at there. One reader thread parses each event once and hands it to the sockets' own
queues; sockets send from their own threads, so a slow peer never delays the others. After a
pub/sub failure the hub resubscribes and tells every socket to catch up from Postgres by seq,
and to send the ticket and its recent scans again (changes published meanwhile were lost).

The hub also listens, always, on the channel where a revocation, demotion, deletion or
suspension is announced with its tenant's id (`key_cache.CHANGED_CHANNEL`), and tells that
tenant's sockets to re-check their grant at once, so a socket that only receives never outlives
its access, and another tenant's changes cost it nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import redis

from app.conversation.socket_guard import Sending
from app.conversation.socket_slots import Slot

log = logging.getLogger(__name__)

# A socket whose queue grows past this is not keeping up: its new messages are dropped (it catches
# up on them from Postgres by seq); if the other events alone fill it, the socket is closed, and
# its client reconnects and reloads what it shows. Memory stays bounded either way.
MAX_QUEUED = 1000
MESSAGE_CREATED = "message.created"
# How often the hub's thread looks for sockets stuck in a send (`socket_guard.Sending`), and renews
# the slots of the sockets it holds (their leases last at least a minute, `socket_slots.Slot`).
WATCH_EVERY = 1.0
RENEW_EVERY = 15.0


class Listener:
    """A socket's inbox of live events; `wake` is set whenever something arrives."""

    def __init__(self, wake: threading.Event, tenant_id: str | None = None, slot: Slot | None = None,
                 sending: Sending | None = None) -> None:
        self.wake = wake
        self.tenant_id = tenant_id
        self.slot = slot
        self.sending = sending or Sending(None)
        self.events: deque[tuple[dict[str, Any], str]] = deque()
        self._lock = threading.Lock()
        self.resync = False
        self.recheck = False
        self.closing = False
        self.overflowed = False
        self.replay = False

    def offer(self, event: dict[str, Any], raw: str) -> None:
        """Queue an event with its JSON text (forwarded as is when the socket need not change it)."""
        with self._lock:
            if len(self.events) >= MAX_QUEUED:
                # New messages are found again by seq; edits, deletions and ticket changes are not.
                kept = [item for item in self.events if item[0].get("type") != MESSAGE_CREATED]
                self.events.clear()
                self.resync = True
                if len(kept) >= MAX_QUEUED // 2:
                    self.overflowed = True
                else:
                    self.events.extend(kept)
            if not self.overflowed and not (self.resync and event.get("type") == MESSAGE_CREATED):
                self.events.append((event, raw))
        self.wake.set()

    def request_close(self) -> None:
        self.closing = True
        self.wake.set()

    def request_resync(self) -> None:
        self.resync = True
        self.wake.set()

    def request_replay(self) -> None:
        """Ask for the ticket and its recent scans again: events other than new messages may have been lost."""
        self.replay = True
        self.wake.set()

    def request_recheck(self) -> None:
        self.recheck = True
        self.wake.set()

    def drain(self) -> list[tuple[dict[str, Any], str]]:
        """Take every queued event (called only by the socket's own thread)."""
        with self._lock:
            taken = list(self.events)
            self.events.clear()
        return taken


class Hub:
    """The process's pub/sub connection and the sockets listening on each channel."""

    def __init__(self, redis_url: str, grants_channel: str) -> None:
        self._client = redis.Redis.from_url(redis_url, health_check_interval=15, socket_keepalive=True,
                                            socket_connect_timeout=2)
        self._lock = threading.Lock()
        self._listeners: dict[str, set[Listener]] = {}
        self._confirmed: dict[str, threading.Event] = {}
        self._grants_channel = grants_channel
        self._pubsub = self._client.pubsub()
        self._broken = threading.Event()
        self._send(self._pubsub.subscribe, grants_channel)
        self._thread = threading.Thread(target=self._run, name="tms-stream-hub", daemon=True)
        self._thread.start()

    def join(self, channel: str, listener: Listener, wait: float = 2.0) -> None:
        """Add a socket to a channel, subscribing the process first if it is the channel's first."""
        with self._lock:
            listeners = self._listeners.setdefault(channel, set())
            listeners.add(listener)
            confirmed = self._confirmed.get(channel)
            if confirmed is None:
                confirmed = self._confirmed[channel] = threading.Event()
                self._send(self._pubsub.subscribe, channel)
        # Events published before the subscription took effect are found by the socket's catch-up,
        # which runs after this; waiting here is what makes that ordering hold.
        if not confirmed.wait(wait):
            listener.resync = True

    def leave(self, channel: str, listener: Listener) -> None:
        """Remove a socket; the last one out unsubscribes the process from the channel."""
        with self._lock:
            listeners = self._listeners.get(channel)
            if listeners is None:
                return
            listeners.discard(listener)
            if not listeners:
                del self._listeners[channel]
                self._confirmed.pop(channel, None)
                self._send(self._pubsub.unsubscribe, channel)

    def _send(self, command, channel: str) -> None:
        try:
            command(channel)
        except redis.RedisError as exc:
            log.warning("pub/sub command failed, reconnecting: %s", exc)
            self._broken.set()

    def _run(self) -> None:
        backoff = 0.1
        next_watch = time.monotonic() + WATCH_EVERY
        next_renewal = time.monotonic() + RENEW_EVERY
        while True:
            if _serving is not None and not _serving():
                self._close_all()
            if time.monotonic() >= next_watch:
                next_watch = time.monotonic() + WATCH_EVERY
                self._cut_stuck()
            if time.monotonic() >= next_renewal:
                next_renewal = time.monotonic() + RENEW_EVERY
                self._renew_slots()
            try:
                if self._broken.is_set():
                    self._reconnect()
                message = self._pubsub.get_message(timeout=1.0)
                backoff = 0.1
            except (redis.RedisError, OSError, RuntimeError) as exc:
                log.warning("pub/sub connection lost, resubscribing: %s", exc)
                self._broken.set()
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if message is not None:
                try:
                    self._dispatch(message)
                except Exception:  # one bad event must not stop delivery for the whole process
                    log.exception("could not dispatch a live event")

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        channel = channel.decode() if isinstance(channel, bytes) else channel
        kind = message["type"]
        if kind == "subscribe":
            with self._lock:
                confirmed = self._confirmed.get(channel)
            if confirmed is not None:
                confirmed.set()
            return
        if kind != "message":
            return
        if channel == self._grants_channel:
            data = message["data"]
            tenant_id = data.decode(errors="replace") if isinstance(data, bytes) else str(data)
            self._all_listeners(Listener.request_recheck, tenant_id)
            return
        try:
            raw = message["data"].decode()
            event = json.loads(raw)
        except ValueError:
            log.warning("ignored a malformed live event on %s", channel)
            return
        if not isinstance(event, dict):
            return
        with self._lock:
            listeners = list(self._listeners.get(channel, ()))
        for listener in listeners:
            listener.offer(event, raw)

    def _all_listeners(self, action: Callable[[Listener], None], tenant_id: str | None = None) -> None:
        """Apply `action` to every socket (of one tenant, if given)."""
        for listener in self._listening():
            if tenant_id is None or listener.tenant_id in (tenant_id, None):
                action(listener)

    def _listening(self) -> list[Listener]:
        """Return every socket this process holds (a copy: actions on them run outside the lock)."""
        with self._lock:
            return [listener for group in self._listeners.values() for listener in group]

    def _cut_stuck(self) -> None:
        """Cut off every socket whose client took nothing of a blocked send for its timeout: it stopped reading."""
        now = time.monotonic()
        for listener in self._listening():
            if listener.sending.stuck(now):
                log.info("a socket's client took nothing for %.0f s; cut off", listener.sending.timeout)
                listener.sending.cut()

    def _renew_slots(self) -> None:
        """Extend the lease of every socket's slot this process holds, in one round trip.

        The hub renews them, not the sockets' threads, so a socket whose thread is busy for long
        (sending to a slow client) still counts against its caps for as long as it holds a thread.
        """
        slots = [listener.slot for listener in self._listening() if listener.slot is not None]
        if not slots:
            return
        try:
            pipe = self._client.pipeline(transaction=False)
            for slot in slots:
                slot.renew_in(pipe)
            pipe.execute()
        except redis.RedisError as exc:
            log.info("socket slots not renewed: %s", exc)

    def _close_all(self) -> None:
        """Ask every socket to close (the worker is shutting down; clients reconnect with after_seq)."""
        self._all_listeners(Listener.request_close)

    def _reconnect(self) -> None:
        """Replace the pub/sub connection, resubscribe, and have every socket catch up by seq."""
        with self._lock:
            with contextlib.suppress(redis.RedisError, OSError):
                self._pubsub.close()
            self._pubsub = self._client.pubsub()
            channels = list(self._listeners)
            for name in channels:
                self._confirmed[name] = threading.Event()
            self._pubsub.subscribe(self._grants_channel, *channels)
            self._broken.clear()
            listeners = [listener for group in self._listeners.values() for listener in group]
        for listener in listeners:
            listener.request_resync()
            listener.request_replay()  # ticket changes and scans published meanwhile are lost too
            listener.request_recheck()  # an announcement may have been missed while disconnected


_hub: Hub | None = None
_hub_lock = threading.Lock()
_serving: Callable[[], bool] | None = None


def watch_server(serving: Callable[[], bool]) -> None:
    """Close this process's sockets once `serving()` turns false, so a worker restart need not wait.

    Set from gunicorn's `post_worker_init` with the worker's `alive` flag: without it, sockets
    would hold their threads until the graceful timeout kills the worker.
    """
    global _serving
    _serving = serving


def process_hub(redis_url: str, grants_channel: str) -> Hub:
    """Return this process's hub, starting it on first use (after gunicorn has forked)."""
    global _hub
    if _hub is None:
        with _hub_lock:
            if _hub is None:
                _hub = Hub(redis_url, grants_channel)
    return _hub
