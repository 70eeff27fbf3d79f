"""One-statement writes wake the relay after they commit, from a thread, not from inside their statement."""

import logging
import time

import sqlalchemy as sa

from app.extensions import db
from app.outbox import WAKE_CHANNEL, wakes
from app.outbox.dispatch import _listen_on
from tests.helpers import record_statements


def _wakes_within(listener, slug: str, timeout: float = 10) -> int:
    """Count the wakes for `slug` that arrive until one has come and no more follow for a moment."""
    seen, deadline = 0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        for note in listener.notifies(timeout=0.5 if seen else 0.2, stop_after=1000):
            assert note.channel == WAKE_CHANNEL
            seen += note.payload == slug
        if seen:
            return seen
    return seen


def test_a_new_ticket_and_a_new_message_wake_the_relay_once_committed(app, tenant, monkeypatch):
    """The statements themselves notify nothing: a NOTIFY in them made their commits flush one at a time."""
    with app.app_context():
        listener = _listen_on(db.engine)
    try:
        ran = record_statements(monkeypatch)
        ticket = tenant.api.post("/api/v1/tickets", json={"title": "wake"})
        assert ticket.status_code == 201
        assert _wakes_within(listener, tenant.slug) == 1
        posted = tenant.api.post(f"/api/v1/tickets/{ticket.get_json()['id']}/messages", json={"body": "hello"})
        assert posted.status_code == 201
        assert _wakes_within(listener, tenant.slug) == 1
        assert len(ran) == 2 and not any("notify" in sql.lower() for sql, _ in ran)

        # A replay writes nothing new, so it wakes nothing.
        keyed = {"Idempotency-Key": "wake-once"}
        assert tenant.api.post("/api/v1/tickets", json={"title": "keyed"}, headers=keyed).status_code == 201
        assert _wakes_within(listener, tenant.slug) == 1
        assert tenant.api.post("/api/v1/tickets", json={"title": "keyed"}, headers=keyed).status_code == 201
        assert _wakes_within(listener, tenant.slug, timeout=1) == 0
    finally:
        listener.close()


def test_wakes_for_one_shard_go_out_together_and_one_that_fails_stops_nothing(app, caplog):
    """A shard that cannot be reached is logged (its rows wait for the sweep); later wakes still go out."""
    unreachable = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:9/none", connect_args={"connect_timeout": 1})
    with app.app_context():
        listener = _listen_on(db.engine)
        engine = db.engine
    try:
        with caplog.at_level(logging.WARNING, logger="app.outbox.wakes"):
            wakes.send(unreachable, {"acme", "globex"})
        assert "relay not woken for acme, globex" in caplog.text

        waker = wakes.Waker()
        waker.add(unreachable, "acme")
        for slug in ("one", "two", "three"):
            waker.add(engine, slug)
        got: set[str] = set()
        deadline = time.monotonic() + 10
        while got != {"one", "two", "three"} and time.monotonic() < deadline:
            got |= {note.payload for note in listener.notifies(timeout=0.2, stop_after=10)}
        assert got == {"one", "two", "three"}
    finally:
        listener.close()
        unreachable.dispose()
