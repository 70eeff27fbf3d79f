"""Requests gunicorn refuses before the app sees them are answered in the API's error shape.

gunicorn parses the request line, the headers and a chunked body itself, and answered what it
could not parse with an HTML page of its own. Every kind below went to the real server as raw
bytes, on a socket of its own.
"""

from __future__ import annotations

import json
import socket

import pytest

from tests.helpers import RAW_HOST as HOST
from tests.helpers import parse_raw_response, raw_exchange, read_until_closed

MALFORMED = {
    "request line over its limit": (b"GET /api/v1/" + b"a" * 9000 + b" HTTP/1.1\r\n" + HOST + b"\r\n", 414),
    "raw non-ASCII byte in the path": (b"GET /api/v1/tick\xffets HTTP/1.1\r\n" + HOST + b"\r\n", 400),
    "NUL in the path": (b"GET /api/v1/\x00 HTTP/1.1\r\n" + HOST + b"\r\n", 400),
    "method that is no token": (b"G(T /healthz HTTP/1.1\r\n" + HOST + b"\r\n", 400),
    "unknown HTTP version": (b"GET /healthz HTTP/9.9\r\n" + HOST + b"\r\n", 400),
    "no HTTP version": (b"GET /healthz\r\n" + HOST + b"\r\n", 400),
    "header name with a space": (b"GET /healthz HTTP/1.1\r\n" + HOST + b"Bad Name: x\r\n\r\n", 400),
    "header value with a NUL": (b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-A: a\x00b\r\n\r\n", 400),
    "header over its limit": (b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-Long: " + b"a" * 9000 + b"\r\n\r\n", 431),
    "too many headers": (b"GET /healthz HTTP/1.1\r\n" + HOST + b"".join(b"X-%d: 1\r\n" % i for i in range(120))
                         + b"\r\n", 431),
    "folded header": (b"GET /healthz HTTP/1.1\r\n" + HOST + b"X-A: a\r\n b\r\n\r\n", 400),
    "length and chunked together": (b"POST /api/v1/tickets HTTP/1.1\r\n" + HOST + b"Content-Length: 4\r\n"
                                    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "two lengths that differ": (b"POST /api/v1/tickets HTTP/1.1\r\n" + HOST + b"Content-Length: 1\r\n"
                                b"Content-Length: 2\r\n\r\nab", 400),
    "length that is no number": (b"POST /api/v1/tickets HTTP/1.1\r\n" + HOST + b"Content-Length: 1x\r\n\r\n",
                                 400),
    "compressed body with no chunks": (b"POST /api/v1/tickets HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip\r\n\r\n",
                                       400),
    "unknown transfer coding": (b"POST /api/v1/tickets HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: x-made-up\r\n\r\n",
                                501),
}


@pytest.mark.parametrize("raw,status", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_request_gunicorn_cannot_parse_is_answered_as_json(live_server, raw, status):
    answered, headers, body = parse_raw_response(raw_exchange(live_server.port, raw))
    assert answered == status
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    assert int(headers["content-length"]) == len(body)
    error = json.loads(body)
    assert set(error) == {"code", "status", "message"}
    assert error["code"] == status and error["status"] and error["message"]
    assert body.isascii() and len(error["message"]) <= 200  # the request's own bytes come back escaped, and cut short


BROKEN_CHUNKS = {
    "size that is no number": b"zz\r\n{}\r\n0\r\n\r\n",
    "chunk longer than its size": b"2\r\n{}}}}\r\n0\r\n\r\n",
    "cut off mid-chunk": b"40\r\n{\"title\": \"x\"",
}


@pytest.mark.parametrize("chunks", BROKEN_CHUNKS.values(), ids=BROKEN_CHUNKS.keys())
@pytest.mark.parametrize("target", ["json", "upload", "page form"])
def test_a_broken_chunked_body_is_refused_without_a_500(live_server, tenant, target, chunks):
    """gunicorn reads a chunked body as the app reads it, so its parse error reaches the app: the
    input guard's read of a JSON body, an upload's streamed read, a page form's parse."""
    ticket = tenant.api.post("/api/v1/tickets", json={"title": "Kept"}).get_json()
    path, content_type, auth = {
        "json": ("/api/v1/tickets", b"application/json", True),
        "upload": (f"/api/v1/tickets/{ticket['id']}/attachments", b"multipart/form-data; boundary=b", True),
        "page form": (f"/t/{tenant.slug}/login", b"application/x-www-form-urlencoded", False),
    }[target]
    raw = (b"POST " + path.encode() + b" HTTP/1.1\r\n" + HOST + b"Content-Type: " + content_type + b"\r\n"
           + (b"Authorization: Bearer " + tenant.key.encode() + b"\r\n" if auth else b"")
           + b"Transfer-Encoding: chunked\r\n\r\n" + chunks)
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)  # the cut-off body ends here
        answer = read_until_closed(sock)
    answered, headers, body = parse_raw_response(answer)
    assert answered == 400
    assert headers["connection"] == "close"  # where the next request would start is unknown
    if target != "page form":
        assert headers["content-type"] == "application/json" and json.loads(body)["code"] == 400
    listed = tenant.api.get("/api/v1/tickets").get_json()["items"]
    assert [t["id"] for t in listed] == [ticket["id"]]


@pytest.mark.parametrize("chunks", [b"1\r\nab\r\n0\r\n\r\n", b"zz\r\n", b"2\r\nab\r\n0\r\nBad Trailer: x\r\n\r\n"],
                         ids=["chunk longer than its size", "size that is no number", "bad trailer"])
@pytest.mark.parametrize("path", ["/healthz", "/api/v1/tickets", "/api/v1/nothing-here"])
def test_a_malformed_body_the_app_never_read_gets_no_second_answer(live_server, chunks, path):
    """gthread drained the unread body after the response and wrote its 400 on the same connection:
    the client took it as the answer to its next request (pipelined, that request was never served)."""
    raw = (b"GET " + path.encode() + b" HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n" + chunks
           + b"GET /healthz HTTP/1.1\r\n" + HOST + b"\r\n")
    answer = raw_exchange(live_server.port, raw)
    assert answer.count(b"HTTP/1.1 ") == 1


def test_gunicorn_refusals_carry_their_own_status_phrase(live_server):
    raw = b"POST /api/v1/tickets HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: x-made-up\r\n\r\n"
    answer = raw_exchange(live_server.port, raw)
    assert answer.startswith(b"HTTP/1.1 501 Not Implemented\r\n")
    _status, headers, body = parse_raw_response(answer)
    assert json.loads(body)["status"] == "Not Implemented" and headers["date"].endswith("GMT")
