"""A JSON number too large for a float (`1e999`) is refused where bodies and frames are decoded.

Python reads `1e999` as `inf` and `json.dumps` writes it back as `Infinity`, which is not JSON:
a socket frame's `ref` was echoed that way (to the sender, and in error frames), so a strict
client could not read its own socket any more. Such a number is bad input wherever it is nested.
"""

from __future__ import annotations

import json

import pytest
import websocket

from tests.helpers import new_ticket, post_message

# (raw JSON with a number that is not finite, the field the refusal names)
BODIES = [
    ('{"title": "Printer", "priority": 1e999}', "priority"),
    ('{"title": "Printer", "tags": ["a", -1e999]}', "tags.1"),
    ('{"title": "Printer", "extra": {"deep": [[1e400]]}}', "extra.deep.0.0"),
    ("1e999", "body"),
]


def _strict(raw: str) -> dict:
    """Parse as JSON is written: `Infinity` and `NaN` are not JSON."""
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in a frame: not JSON ({raw[:120]})")

    return json.loads(raw, parse_constant=refuse)


@pytest.mark.parametrize(("raw", "field"), BODIES)
@pytest.mark.parametrize("operation", ["create", "patch", "message"])
def test_a_body_with_a_number_that_is_not_finite_answers_400_naming_it(tenant, operation, raw, field):
    ticket = new_ticket(tenant.api)
    if operation == "message":
        raw = raw.replace('"title": "Printer"', '"body": "hello"')
    method, path = {"create": ("POST", "/api/v1/tickets"),
                    "patch": ("PATCH", f"/api/v1/tickets/{ticket['id']}"),
                    "message": ("POST", f"/api/v1/tickets/{ticket['id']}/messages")}[operation]
    resp = tenant.api.client.open(path, method=method, data=raw, headers={
        "Authorization": f"Bearer {tenant.key}", "Content-Type": "application/json"})
    assert resp.status_code == 400, (raw, resp.status_code, resp.get_data()[:200])
    body = _strict(resp.get_data(as_text=True))
    assert (body["code"], body["status"]) == (400, "Bad Request")
    assert field in body["errors"] and body["message"]
    assert [t["id"] for t in tenant.api.get("/api/v1/tickets").get_json()["items"]] == [ticket["id"]]
    assert tenant.api.get(f"/api/v1/tickets/{ticket['id']}").get_json()["version"] == 1
    assert tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"] == []


def test_socket_frames_with_numbers_that_are_not_finite_get_a_json_error_and_store_nothing(live_server, tenant):
    ticket = new_ticket(tenant.api)
    ws = websocket.create_connection(f"ws://127.0.0.1:{live_server.port}/api/v1/tickets/{ticket['id']}/stream",
                                     header=[f"Authorization: Bearer {tenant.key}"], timeout=10)
    try:
        frames = [
            '{"type": "message", "body": "hello", "ref": 1e999}',
            '{"type": "message", "body": "hello", "ref": -1e999}',
            '{"type": "message", "body": "hello", "ref": [1, {"n": 1e400}]}',
            '{"type": "message", "body": "hello", "internal": 1e999}',
            '{"type": "typing", "ref": 1e999}',
            '{"type": "dance", "ref": 1e999}',
            "[1e999]",
        ]
        for frame in frames:
            ws.send(frame)
            event = _strict(ws.recv())
            assert (event["type"], event["code"]) == ("error", 400), (frame, event)
            assert "ref" not in event
        post_message(tenant.api, ticket["id"], body="still open")
        assert _strict(ws.recv())["message"]["body"] == "still open"
    finally:
        ws.close()
    messages = tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"]
    assert [m["body"] for m in messages] == ["still open"]


def test_the_stream_never_sends_a_number_json_cannot_hold():
    """Whatever reaches a socket's send, what goes out is JSON: a value that is not raises instead."""
    from app.conversation.stream import TicketStream

    class Socket:
        sent: list[str] = []

        def send(self, text: str) -> None:
            self.sent.append(text)

    stream = TicketStream.__new__(TicketStream)
    stream.ws = Socket()
    with pytest.raises(ValueError):
        stream.send({"type": "error", "ref": float("inf")})
    assert stream.ws.sent == []
