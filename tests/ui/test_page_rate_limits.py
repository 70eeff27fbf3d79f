"""A signed-in person's page writes and page-socket messages count against a rate limit per person,
as API keys' requests do (`RATE_LIMIT_PER_MINUTE`); over it, 429 and nothing is stored.

Counts are per one-minute window, so each test sends enough to be refused even if a window ends
between two of its requests.
"""

from __future__ import annotations

import json

import pytest
import websocket

from tests.helpers import send
from tests.servers import start_gunicorn, stop_gunicorn

LIMIT = 3


@pytest.fixture(scope="module")
def limited_server(services):
    server = start_gunicorn(services, RATE_LIMIT_PER_MINUTE=str(LIMIT))
    yield server
    stop_gunicorn(server)


def _bodies(hd, ticket) -> list[str]:
    listed = hd.tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()
    return [m["body"] for m in listed["items"]]


def test_page_posts_over_a_person_s_limit_are_refused_and_store_nothing(app, help_desk, sign_in, monkeypatch):
    ticket = help_desk.ticket_for(help_desk.requester)
    client = sign_in(help_desk.requester)
    monkeypatch.setitem(app.config, "RATE_LIMIT_PER_MINUTE", LIMIT)
    answers = [client.post(f"/t/{help_desk.slug}/tickets/{ticket['number']}/messages", data={"body": f"m{i}"})
               for i in range(2 * LIMIT + 2)]
    codes = [a.status_code for a in answers]
    assert set(codes) == {302, 429} and codes.count(302) <= 2 * LIMIT, codes
    refused = answers[codes.index(429)]
    assert int(refused.headers["Retry-After"]) >= 1
    assert "wait a minute" in refused.get_data(as_text=True)
    other = sign_in(help_desk.agent)  # the limit is the person's, not everyone's
    assert other.post(f"/t/{help_desk.slug}/tickets/{ticket['number']}/messages",
                      data={"body": "from someone else"}).status_code == 302
    monkeypatch.undo()  # the API key that reads them back has its own limit
    assert len(_bodies(help_desk, ticket)) == codes.count(302) + 1


def test_page_socket_messages_over_a_person_s_limit_are_refused_and_store_nothing(limited_server, help_desk,
                                                                                   sign_in):
    ticket = help_desk.ticket_for(help_desk.requester)
    client = sign_in(help_desk.requester)
    token = client.post(f"/t/{help_desk.slug}/tickets/{ticket['number']}/stream-token")
    assert token.status_code == 200
    ws = websocket.create_connection(f"ws://127.0.0.1:{limited_server.port}{token.get_json()['url']}", timeout=5)
    answers = {}
    try:
        for i in range(2 * LIMIT + 2):
            send(ws, type="message", body=f"frame {i}", ref=i)
        while len(answers) < 2 * LIMIT + 2:
            event = json.loads(ws.recv())
            if event.get("ref") is not None:
                answers[event["ref"]] = event
    finally:
        ws.close()
    kinds = [answers[i]["type"] for i in range(2 * LIMIT + 2)]
    refused = [answers[i] for i, kind in enumerate(kinds) if kind == "error"]
    assert refused and all(e["code"] == 429 for e in refused), kinds
    assert len(_bodies(help_desk, ticket)) == kinds.count("message.created") <= 2 * LIMIT
