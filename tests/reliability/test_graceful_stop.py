"""SIGTERM to the web server: requests in flight complete; open sockets close with 1001 and their
clients catch up by seq after reconnecting to the next server."""

from __future__ import annotations

import http.client
import signal
import uuid

import sqlalchemy as sa
import websocket

from tenants import schema_for
from tests.helpers import close_code, new_ticket, next_event, post_message, wait_until
from tests.servers import start_gunicorn, stop_gunicorn

ROWS = 4000


def test_sigterm_finishes_requests_in_flight_and_sends_sockets_away_with_1001(services, tenant, in_tenant):
    with in_tenant(tenant) as session:  # enough tickets that the export cannot sit in socket buffers
        session.execute(sa.text(
            f'insert into "{schema_for(tenant.slug)}".tickets (title, description, requester_id) '
            "select 'bulk ' || g, repeat('words ', 120), :uid from generate_series(1, :n) g"),
            {"uid": uuid.UUID(tenant.admin_id), "n": ROWS})
        session.commit()
    watched = new_ticket(tenant.api, "watched")
    first = start_gunicorn(services)
    try:
        ws = websocket.create_connection(f"ws://127.0.0.1:{first.port}/api/v1/tickets/{watched['id']}/stream",
                                         header=[f"Authorization: Bearer {tenant.key}"], timeout=10)
        post_message(tenant.api, watched["id"], body="before")
        assert next_event(ws, "message.created")["message"]["body"] == "before"
        export = http.client.HTTPConnection("127.0.0.1", first.port, timeout=30)
        export.request("GET", "/api/v1/tickets/export?format=csv", headers={"Authorization": f"Bearer {tenant.key}"})
        response = export.getresponse()
        head = response.read(1024)  # the export has begun, and waits for us to read on

        first.process.send_signal(signal.SIGTERM)
        assert close_code(ws, timeout=15) == 1001
        body = head + response.read()  # the request in flight completes
        assert response.status == 200 and body.decode().count("\n") == ROWS + 2  # header + every ticket
        wait_until(lambda: first.process.poll() is not None, "the old server to exit", timeout=30)
    finally:
        stop_gunicorn(first)

    post_message(tenant.api, watched["id"], body="while nobody listened")
    second = start_gunicorn(services)
    try:
        again = websocket.create_connection(
            f"ws://127.0.0.1:{second.port}/api/v1/tickets/{watched['id']}/stream?after_seq=1",
            header=[f"Authorization: Bearer {tenant.key}"], timeout=10)
        caught = next_event(again, "message.created")["message"]
        assert (caught["seq"], caught["body"]) == (2, "while nobody listened")
        again.close()
    finally:
        stop_gunicorn(second)
