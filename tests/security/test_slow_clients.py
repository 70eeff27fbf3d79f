"""A client that stops sending its request, or trickles it, gives up its worker thread at a deadline.

gthread read a request's head and body on a request thread with no timeout: a client that sent
`GET / HTTP/1.1` and nothing more held a thread for good, and as many such sockets as threads
(64 here, 1,100 a worker as shipped) left nothing to answer anyone else. This server's deadline
is 1 s (`REQUEST_READ_SECONDS`), and each 500 bytes that arrive buy another second.
"""

from __future__ import annotations

import http.client
import io
import json
import signal
import socket
import threading
import time
from concurrent.futures import Future

import pytest
import websocket

from app.gunicorn_worker import CLOSED, SEND_SECONDS, DeadlineUnreader, ReadDeadlinePassed, Worker
from tests.helpers import RAW_HOST, next_event, parse_raw_response, read_until_closed
from tests.servers import start_gunicorn, stop_gunicorn


@pytest.fixture(scope="module")
def strict_server(app, services):
    server = start_gunicorn(services, REQUEST_READ_SECONDS="1", RESPONSE_SEND_SECONDS="1", GUNICORN_THREADS="16")
    yield server
    stop_gunicorn(server)


def _connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=15)


def test_a_request_whose_head_stops_is_closed_and_holds_no_thread(strict_server):
    stalled = [_connect(strict_server) for _ in range(40)]  # more than the server's 16 threads
    for sock in stalled:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
    try:
        for sock in stalled:
            assert read_until_closed(sock) == b""  # closed at the deadline, unanswered
            sock.close()
        with _connect(strict_server) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n" + RAW_HOST + b"Connection: close\r\n\r\n")
            assert parse_raw_response(read_until_closed(sock))[0] == 200
    finally:
        for sock in stalled:
            sock.close()


def test_a_peer_that_never_closes_its_side_holds_back_no_other_client(strict_server):
    """gthread closed each finished connection on the thread that accepts every other, waiting up to 2 s
    for the peer to close too: five such peers kept a sixth client waiting 7.8 s for /healthz."""
    held = []
    try:
        for _ in range(5):
            sock = _connect(strict_server)
            sock.sendall(b"GET /healthz HTTP/1.1\r\n" + RAW_HOST + b"Connection: close\r\n\r\n")
            held.append(sock)
        time.sleep(0.2)
        with _connect(strict_server) as sock:
            sock.settimeout(4)  # five such peers held the loop for 2 s each, one after another
            sock.sendall(b"GET /healthz HTTP/1.1\r\n" + RAW_HOST + b"Connection: close\r\n\r\n")
            assert parse_raw_response(sock.recv(65536))[0] == 200
    finally:
        for sock in held:
            sock.close()


def test_a_head_trickled_a_byte_at_a_time_is_closed_at_its_outer_deadline(strict_server):
    with _connect(strict_server) as sock:
        started = time.monotonic()
        with pytest.raises(OSError):
            for _ in range(200):  # would take 20 s
                sock.sendall(b"X")
                time.sleep(0.1)
            assert sock.recv(1) == b""
        assert time.monotonic() - started < 10  # two budgets at most, with room for a busy host


def test_a_body_that_stops_is_answered_408(strict_server, tenant):
    with _connect(strict_server) as sock:
        sock.sendall(b"POST /api/v1/tickets HTTP/1.1\r\n" + RAW_HOST + b"Authorization: Bearer " + tenant.key.encode()
                     + b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"title\": ")
        status, headers, body = parse_raw_response(read_until_closed(sock))
    assert status == 408 and headers["content-type"] == "application/json"
    assert headers["connection"] == "close"  # where the next request would start is unknown
    assert json.loads(body)["code"] == 408
    assert tenant.api.get("/api/v1/tickets").get_json()["items"] == []


def test_an_upload_that_stops_is_answered_408_not_malformed(strict_server, tenant):
    ticket = tenant.api.post("/api/v1/tickets", json={"title": "Upload"}).get_json()
    part = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\n"
            b"Content-Type: text/plain\r\n\r\nhello")
    with _connect(strict_server) as sock:
        sock.sendall(f"POST /api/v1/tickets/{ticket['id']}/attachments HTTP/1.1\r\n".encode() + RAW_HOST
                     + b"Authorization: Bearer " + tenant.key.encode()
                     + b"\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n" + part)
        status, _headers, body = parse_raw_response(read_until_closed(sock))
    assert status == 408 and json.loads(body)["code"] == 408


def test_a_client_that_never_reads_its_answers_holds_no_thread(app, services):
    """Each write of a response had no deadline: two clients that asked for the 270 KB document 40 times
    over and read nothing held both threads for good, and /healthz got no answer."""
    server = start_gunicorn(services, RESPONSE_SEND_SECONDS="1", GUNICORN_THREADS="2")
    stuck = []
    try:
        for _ in range(2):
            sock = _connect(server)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall((b"GET /api/v1/openapi.json HTTP/1.1\r\n" + RAW_HOST + b"\r\n") * 40)
            stuck.append(sock)
        time.sleep(3)
        with _connect(server) as sock:
            sock.settimeout(10)
            sock.sendall(b"GET /healthz HTTP/1.1\r\n" + RAW_HOST + b"Connection: close\r\n\r\n")
            assert parse_raw_response(read_until_closed(sock))[0] == 200
        log = server.log.read_text()
        assert "Socket error" not in log and "Traceback" not in log  # a client gone quiet is no server error
    finally:
        for sock in stuck:
            sock.close()
        stop_gunicorn(server)


def test_a_connection_closed_on_its_own_thread_is_counted_out_once():
    """The worker closed it, then gthread closed it again and counted it out twice: its count of open
    connections went below zero, lifting `worker_connections` and ending a graceful stop at once."""
    worker = Worker.__new__(Worker)
    worker.nr_conns = 1
    done: Future = Future()
    done.set_result(CLOSED)
    worker.finish_request(object(), done)
    assert worker.nr_conns == 0


def test_a_stopping_worker_still_answers_a_kept_alive_connection(app, services):
    """With its count of connections below zero, a stopping worker closed kept-alive connections at once
    instead of answering the request a client was sending on one (with `Connection: close`)."""
    server = start_gunicorn(services)
    try:
        for _ in range(3):
            with _connect(server) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\n" + RAW_HOST + b"Connection: close\r\n\r\n")
                read_until_closed(sock)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        assert response.status == 200 and response.will_close
        conn.close()
    finally:
        stop_gunicorn(server)


def test_a_slow_but_steady_body_is_taken(strict_server, tenant):
    """Past the first second, each 500 bytes buy another: 3 s of a steady 1,000 bytes a second is read."""
    body = json.dumps({"title": "Slow link", "description": "x" * 2900}).encode()
    with _connect(strict_server) as sock:
        sock.sendall(b"POST /api/v1/tickets HTTP/1.1\r\n" + RAW_HOST + b"Authorization: Bearer " + tenant.key.encode()
                     + b"\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n")
        for at in range(0, len(body), 500):
            sock.sendall(body[at:at + 500])
            time.sleep(0.5)
        status, _headers, answer = parse_raw_response(read_until_closed(sock))
    assert status == 201 and json.loads(answer)["title"] == "Slow link"


def test_kept_alive_requests_each_get_their_own_deadline(strict_server):
    conn = http.client.HTTPConnection("127.0.0.1", strict_server.port, timeout=10)
    try:
        for _ in range(3):
            time.sleep(0.7)  # idle between requests: kept alive, not any request's time
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            assert response.status == 200 and response.read() == b'{"status":"ok"}\n'
            assert not response.will_close
    finally:
        conn.close()


def test_an_open_stream_has_no_deadline(strict_server, tenant):
    ticket = tenant.api.post("/api/v1/tickets", json={"title": "Quiet"}).get_json()
    ws = websocket.create_connection(f"ws://127.0.0.1:{strict_server.port}/api/v1/tickets/{ticket['id']}/stream",
                                     header=[f"Authorization: Bearer {tenant.key}"], timeout=10)
    try:
        time.sleep(2.5)  # quiet for longer than any request's deadline
        tenant.api.post(f"/api/v1/tickets/{ticket['id']}/messages", json={"body": "still here"})
        assert next_event(ws, "message.created")["message"]["body"] == "still here"
    finally:
        ws.close()



def test_bytes_already_here_are_read_past_the_deadline_and_none_are_waited_for():
    """The deadline bounds waiting for the client: bytes it sent in time are taken however late the app
    comes to them (the app may have waited on the database first); with none here, the read gives up."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        reader = DeadlineUnreader(ours)
        reader.begin(0.05, 0.05)
        theirs.sendall(b"sent in time")
        time.sleep(0.1)
        assert reader.read() == b"sent in time"
        reader.begin(0.05, 0.05)
        with pytest.raises(ReadDeadlinePassed):
            reader.read()


def _read(reader: DeadlineUnreader, size: int) -> bytes:
    got = b""
    while len(got) < size:
        got += reader.read()
    return got


def test_a_burst_buys_no_more_than_one_first_budget_of_silence():
    """500 bytes buy a second, but never more than the first budget ahead: 100 KB sent at once would have
    bought 200 s of a thread for a client that then fell silent."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        reader = DeadlineUnreader(ours)
        reader.begin(0.3, 60)
        theirs.sendall(b"x" * 100_000)
        assert _read(reader, 100_000) == b"x" * 100_000
        time.sleep(0.5)
        started = time.monotonic()
        with pytest.raises(ReadDeadlinePassed):
            reader.read()
        assert time.monotonic() - started < 5  # not the 60 s (of the 200 s) the burst would have bought


def test_no_wait_runs_past_the_outer_bound():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        reader = DeadlineUnreader(ours)
        reader.begin(30, 0.2)
        time.sleep(0.3)
        started = time.monotonic()
        with pytest.raises(ReadDeadlinePassed):
            reader.read()
        assert time.monotonic() - started < 5  # not the 30 s of its first budget


def test_a_file_is_sent_with_a_deadline_on_each_wait():
    """gunicorn sends a file with `socket.sendfile`, which waits on a socket that takes nothing for as long
    as the socket's own timeout: the kernel's send timeout does not reach those waits."""
    from gunicorn.http.wsgi import FileWrapper

    class Socket:
        timeout = None

        def settimeout(self, seconds):
            self.timeout = seconds

    worker = Worker.__new__(Worker)
    worker._serving = threading.local()
    worker.app = type("App", (), {"wsgi": lambda self: lambda environ, start: (
        FileWrapper(io.BytesIO(b"file")) if environ["PATH_INFO"] == "/file" else [b"page"])})()
    worker.cfg = type("Cfg", (), {"reload": False})()
    worker.load_wsgi()
    for path, timed in (("/file", SEND_SECONDS), ("/page", None)):
        sock = Socket()
        worker.wsgi({"PATH_INFO": path, "wsgi.file_wrapper": FileWrapper, "gunicorn.socket": sock}, None)
        assert sock.timeout == timed
