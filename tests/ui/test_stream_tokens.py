"""The ticket page's stream: tokens minted for a signed-in session, and what its socket may carry.

A token opens one socket, only under its own tenant's path, only while the session that minted it
lasts; an open socket of that session closes once it signs out. Frames carry Markdown rendered and
sanitised by the server, never a requester's internal notes, and the sender's `ref` only to it.
"""

from __future__ import annotations

import json

import pytest
import websocket

from tests.helpers import close_code, next_event, post_message, send
from tests.servers import start_gunicorn, stop_gunicorn
from tests.ui.conftest import make_help_desk


def mint(client, hd, ticket) -> str:
    response = client.post(f"/t/{hd.slug}/tickets/{ticket['number']}/stream-token")
    assert response.status_code == 200, response.data[:300]
    return response.get_json()["url"]


def open_socket(server, url: str, **query: object) -> websocket.WebSocket:
    """Open the page's stream path on `server`."""
    path = url
    extra = "".join(f"&{k}={v}" for k, v in query.items())
    return websocket.create_connection(f"ws://127.0.0.1:{server.port}{path}{extra}", timeout=5)


def refused(server, url: str) -> int:
    with pytest.raises(websocket.WebSocketBadStatusException) as caught:
        open_socket(server, url)
    return caught.value.status_code


@pytest.fixture(scope="module")
def quick_server(app, services):
    """A server that re-checks every open socket's access twice a second."""
    server = start_gunicorn(services, STREAM_RESYNC_INTERVAL="0.5")
    yield server
    stop_gunicorn(server)


@pytest.fixture
def ticket(help_desk):
    return help_desk.ticket_for(help_desk.requester, title="Printer on fire")


def test_a_session_token_opens_one_socket_under_its_own_tenant(live_server, help_desk, ticket, sign_in, make_tenant):
    requester = sign_in(help_desk.requester)
    url = mint(requester, help_desk, ticket)
    assert url.startswith(f"/t/{help_desk.slug}/api/v1/tickets/{ticket['id']}/stream?token=")
    ws = open_socket(live_server, url, with_ticket=1)
    first = next_event(ws)
    assert first["type"] == "ticket.updated" and first["ticket"]["id"] == ticket["id"]
    ws.close()
    assert refused(live_server, url) == 401, "a token works once"
    other = make_help_desk(make_tenant())
    elsewhere = mint(requester, help_desk, ticket).replace(f"/t/{help_desk.slug}/", f"/t/{other.slug}/")
    assert refused(live_server, elsewhere) == 404, "a token works only under its own tenant's path"


def test_a_token_dies_with_the_session_that_minted_it(live_server, help_desk, ticket, sign_in):
    requester = sign_in(help_desk.requester)
    url = mint(requester, help_desk, ticket)
    assert requester.post(f"/t/{help_desk.slug}/logout").status_code == 302
    assert refused(live_server, url) == 401


def test_an_open_socket_closes_when_its_session_signs_out(quick_server, help_desk, ticket, sign_in):
    requester = sign_in(help_desk.requester)
    ws = open_socket(quick_server, mint(requester, help_desk, ticket))
    post_message(help_desk.tenant.api, ticket["id"], body="still here")
    assert next_event(ws, "message.created")["message"]["body"] == "still here"
    assert requester.post(f"/t/{help_desk.slug}/logout").status_code == 302
    assert close_code(ws) == 1008
    # Signing out ends every session of the user (its version moves); signing in again starts anew.
    again = sign_in(help_desk.requester)
    ws = open_socket(quick_server, mint(again, help_desk, ticket))
    post_message(help_desk.tenant.api, ticket["id"], body="back")
    assert next_event(ws, "message.created")["message"]["body"] == "still here"  # catch-up from seq 0
    ws.close()


def test_a_requesters_socket_carries_no_internal_note_and_only_sanitised_html(live_server, help_desk, ticket,
                                                                            sign_in):
    agent_key = help_desk.tenant.key_for(help_desk.agent.user)
    post_message(agent_key, ticket["id"], body="secret **note**", internal=True)
    requester_ws = open_socket(live_server, mint(sign_in(help_desk.requester), help_desk, ticket))
    agent_ws = open_socket(live_server, mint(sign_in(help_desk.agent), help_desk, ticket))
    assert next_event(agent_ws, "message.created")["message"]["internal"] is True
    send(agent_ws, type="message", body="also secret", internal=True, ref="n1")
    send(agent_ws, type="message", body="Hi <script>alert(1)</script> **there**", ref="m1")
    echoes = [next_event(agent_ws, "message.created") for _ in range(2)]
    assert [e.get("ref") for e in echoes] == ["n1", "m1"], "the sender's echo carries its ref"
    received = []
    while not received or received[-1].get("type") != "message.created":
        received.append(next_event(requester_ws))
    frames = [json.dumps(e) for e in received]
    assert not [f for f in frames if "secret" in f], "no internal note, not even its seq's neighbours"
    message = received[-1]["message"]
    assert "ref" not in received[-1], "only the sender sees its ref"
    assert message["body_html"] == "<p>Hi &lt;script&gt;alert(1)&lt;/script&gt; <strong>there</strong></p>"
    assert message["seq"] == 3
    requester_ws.close()
    agent_ws.close()
