"""A JSON body sent in chunks, which carries no length to check first, over a real socket to gunicorn."""

from __future__ import annotations

import socket

import pytest

from tests.media.test_streaming import chunk, read_response


def chunked_post(server, key: str, body: bytes, step: int) -> tuple[int, dict]:
    head = (f"POST /api/v1/tickets HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
        conn.sendall(head)
        try:
            for start in range(0, len(body), step):
                conn.sendall(chunk(body[start:start + step]))
            conn.sendall(b"0\r\n\r\n")
        except OSError:  # the server may answer and close before the rest is sent
            pass
        return read_response(conn)


@pytest.mark.parametrize("shape", ["padded", "long title"])
def test_a_chunked_body_over_the_limit_is_413_not_cut_off_there(app, tenant, live_server, shape):
    """The body was read to the limit and no further, so a body padded past it was taken (201), and one
    with a longer title was 400, not JSON."""
    limit = app.config["JSON_MAX_BYTES"]
    body = b'{"title": "padded"}' + b" " * limit if shape == "padded" else b'{"title": "%s"}' % (b"x" * limit)
    status, answer = chunked_post(live_server, tenant.key, body, 64 * 1024)
    assert status == 413 and answer["message"] == f"The body is larger than {limit} bytes.", answer
    assert tenant.api.get("/api/v1/tickets").get_json()["items"] == []


def test_a_chunked_body_within_the_limit_is_read_whole_whatever_its_chunks(tenant, live_server):
    title = "y" * 190
    body = b'{"title": "%s", "description": "%s"}' % (title.encode(), b"z" * 50_000)
    status, answer = chunked_post(live_server, tenant.key, body, 7)
    assert status == 201, answer
    assert answer["title"] == title and answer["description"] == "z" * 50_000
