"""One-statement writes wake the relay after they commit, from a thread, not from inside their statement.

That the relay, once woken, finds the rows (the wake follows the commit) is held by
`test_relay.py`'s wake during a sweep that never ends.
"""

import logging
import socket
import subprocess
import sys
import threading
import time

import sqlalchemy as sa

from app.extensions import db
from app.outbox import WAKE_CHANNEL, wakes
from app.outbox.dispatch import _listen_on
from tests.helpers import record_statements


def _wakes(listener, slug: str, within: float = 10, then: float = 0.5) -> int:
    """Count the wakes for `slug` that arrive within `within` s, waiting `then` s more after the first."""
    seen, deadline = 0, time.monotonic() + within
    while time.monotonic() < deadline:
        for note in listener.notifies(timeout=0.1, stop_after=1000):
            assert note.channel == WAKE_CHANNEL
            if note.payload == slug and not seen:
                deadline = time.monotonic() + then
            seen += note.payload == slug
    return seen


def test_a_new_ticket_and_a_new_message_wake_the_relay_once_committed(app, tenant, monkeypatch):
    """The statements themselves notify nothing: a NOTIFY in them made their commits flush one at a time."""
    with app.app_context():
        listener = _listen_on(db.engine)
    try:
        ran = record_statements(monkeypatch)
        ticket = tenant.api.post("/api/v1/tickets", json={"title": "wake"})
        assert ticket.status_code == 201
        assert _wakes(listener, tenant.slug) == 1
        posted = tenant.api.post(f"/api/v1/tickets/{ticket.get_json()['id']}/messages", json={"body": "hello"})
        assert posted.status_code == 201
        assert _wakes(listener, tenant.slug) == 1
        assert len(ran) == 2 and not any("notify" in sql.lower() for sql, _ in ran)

        # A replay writes nothing new, so it wakes nothing.
        keyed = {"Idempotency-Key": "wake-once"}
        assert tenant.api.post("/api/v1/tickets", json={"title": "keyed"}, headers=keyed).status_code == 201
        assert _wakes(listener, tenant.slug) == 1
        assert tenant.api.post("/api/v1/tickets", json={"title": "keyed"}, headers=keyed).status_code == 201
        assert _wakes(listener, tenant.slug, within=1) == 0
    finally:
        listener.close()


def test_wakes_for_one_database_go_out_in_one_batch(app):
    with app.app_context():
        listener = _listen_on(db.engine)
        sender = wakes.Sender(db.engine, connect_timeout=3)
    try:
        for slug in ("one", "two", "two", "three"):
            sender._due.add(slug)
        sender.send_due()
        assert sorted(note.payload for note in listener.notifies(timeout=2, stop_after=3)) == ["one", "three", "two"]
        assert not list(listener.notifies(timeout=0.3))
    finally:
        listener.close()


def test_a_database_that_hangs_delays_no_other_databases_wakes(app, caplog):
    """A shard that accepts connections and never answers holds its own wakes only; they are logged and
    dropped (its rows wait for the sweep)."""
    silent = socket.create_server(("127.0.0.1", 0))
    hanging = sa.create_engine(f"postgresql+psycopg://nobody@127.0.0.1:{silent.getsockname()[1]}/none")
    senders = wakes.Senders()
    with app.app_context():
        listener = _listen_on(db.engine)
        engine = db.engine
    try:
        with caplog.at_level(logging.WARNING, logger="app.outbox.wakes"):
            senders.add(hanging, "stuck", connect_timeout=3)
            time.sleep(0.2)  # its thread is waiting for the silent server
            started = time.monotonic()
            senders.add(engine, "free", connect_timeout=3)
            assert _wakes(listener, "free", within=2.5, then=0) == 1
            assert time.monotonic() - started < 2.5  # not behind the hung connect (3 s)
            time.sleep(3.5)
            assert "relay not woken for 1 tenants on postgresql+psycopg://nobody@127.0.0.1" in caplog.text
    finally:
        listener.close()
        silent.close()
        hanging.dispose()


def test_a_wake_that_cannot_be_handed_to_its_thread_does_not_fail_the_committed_write(tenant, monkeypatch, caplog):
    def broken(self, slug):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(wakes.Sender, "add", broken)
    with caplog.at_level(logging.WARNING, logger="app.outbox.wakes"):
        assert tenant.api.post("/api/v1/tickets", json={"title": "still made"}).status_code == 201
    assert "relay not woken" in caplog.text
    assert tenant.api.get("/api/v1/tickets").get_json()["items"][0]["title"] == "still made"


def test_a_process_that_exits_sends_the_wakes_it_holds(app):
    """Its thread never ran: the process sends them on its way out (a worker stopped on request)."""
    with app.app_context():
        listener = _listen_on(db.engine)
        url = db.engine.url.render_as_string(hide_password=False)
    script = ("import sys, sqlalchemy as sa\n"
              "from app.outbox import wakes\n"
              "wakes.Sender._start = lambda self: None\n"
              f"wakes._senders.add(sa.create_engine({url!r}), 'leaving', 3)\n"
              "sys.exit(0)\n")
    try:
        subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
        assert _wakes(listener, "leaving", within=5, then=0) == 1
    finally:
        listener.close()


def test_wakes_added_from_many_threads_are_all_sent(app):
    with app.app_context():
        listener = _listen_on(db.engine)
        engine = db.engine
    senders = wakes.Senders()
    slugs = {f"t{i}-{j}" for i in range(8) for j in range(50)}

    def add(i: int) -> None:
        for j in range(50):
            senders.add(engine, f"t{i}-{j}", 3)

    try:
        threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        got: set[str] = set()
        deadline = time.monotonic() + 10
        while got != slugs and time.monotonic() < deadline:
            got |= {note.payload for note in listener.notifies(timeout=0.2, stop_after=1000)}
        assert got == slugs
    finally:
        listener.close()


def test_a_connection_with_no_wakes_for_a_while_is_closed(app, monkeypatch):
    """Kept for the life of the process, it stopped a retired shard's database from being dropped."""
    monkeypatch.setattr(wakes, "IDLE_SECONDS", 0.3)
    with app.app_context():
        sender = wakes.Sender(db.engine, connect_timeout=3)
    sender.add("idle")
    deadline = time.monotonic() + 10
    while (sender._conn is None or not sender._conn.closed) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sender._conn is not None and sender._conn.closed
    with app.app_context():
        listener = _listen_on(db.engine)
    try:
        sender.add("again")  # a later wake connects anew
        assert _wakes(listener, "again", within=5, then=0) == 1
    finally:
        listener.close()
