"""An open ticket socket ends with its session: after sign-out or a password change, frames it
sends are not acted on.

The socket's grant carries the session version. Both endings move it and the tenant's key
generation, so every process's sockets re-check at once instead of at the next periodic resync
(`STREAM_RESYNC_INTERVAL`, 30 s by default).
"""

from __future__ import annotations

import json

import pytest
import websocket

from tests.helpers import send


def _open(live_server, client, hd, ticket) -> websocket.WebSocket:
    response = client.post(f"/t/{hd.slug}/tickets/{ticket['number']}/stream-token")
    assert response.status_code == 200, response.data[:300]
    url = response.get_json()["url"]
    return websocket.create_connection(f"ws://127.0.0.1:{live_server.port}{url}", timeout=5)


def _bodies(hd, ticket) -> list[str]:
    listed = hd.tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()
    return [m["body"] for m in listed["items"]]


def _frame_after(ws, body: str) -> dict | None:
    """Send a message frame; return the event answering it, or None if the server closed the socket."""
    try:
        send(ws, type="message", body=body, ref="after")
        ws.settimeout(5)
        while True:
            opcode, data = ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return None
            if opcode == websocket.ABNF.OPCODE_TEXT:
                event = json.loads(data)
                if event.get("ref") == "after":
                    return event
    except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
        return None


@pytest.mark.parametrize("ending", ["sign_out", "password_change"])
def test_a_socket_of_an_ended_session_posts_nothing(live_server, help_desk, sign_in, ending):
    hd = help_desk
    ticket = hd.ticket_for(hd.requester)
    browser = sign_in(hd.requester)
    ws = _open(live_server, browser, hd, ticket)
    try:
        send(ws, type="message", body="before", ref="before")  # the socket works while the session lasts
        if ending == "sign_out":
            assert browser.post(f"/t/{hd.slug}/logout").status_code == 302
        else:  # e.g. the user, fearing a stolen session, has their password changed
            assert hd.tenant.api.patch(f"/api/v1/users/{hd.requester.id}",
                                       json={"password": "a brand new password"}).status_code == 200
        assert browser.get(f"/t/{hd.slug}/").status_code == 302, "the cookie itself is refused at once"
        answer = _frame_after(ws, "posted after the session ended")
    finally:
        ws.close()
    assert "posted after the session ended" not in _bodies(hd, ticket), answer
