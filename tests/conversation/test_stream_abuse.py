"""A client cannot turn its socket against the server: one that stops reading is cut off and frees
its slot, one that floods frames is cut off, a revocation stops a catch-up in flight, a malformed
handshake or an `after_seq` past the ticket is refused before it, the sender's echo keeps its
`ref` when others' messages came first, and a socket that falls far behind keeps the events a
catch-up cannot replay (or is closed)."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
import websocket

from app import unit_of_work
from app.auth.actor import Actor
from app.conversation import services
from app.conversation.hub import MAX_QUEUED, Listener
from app.conversation.socket_guard import (
    MAX_WAITING_FRAMES,
    MAX_WAITING_SIZE,
    OneWriter,
    Sending,
    WaitingFrames,
    bytes_acked,
    bytes_unacknowledged,
)
from app.conversation.stream import CATCH_UP_PAGE
from app.extensions import db
from app.realtime import LIVE_EVENTS
from tenants import active_tenant
from tenants.context import tenant_context
from tests import helpers
from tests.conversation.conftest import OPEN_SOCKETS, StreamServer, start_gunicorn
from tests.servers import stop_gunicorn

BIG = "😀" * 60_000  # about 480 KB of event once rendered: a few fill any socket buffer


@pytest.fixture(scope="module")
def cutting_server(app, services) -> Iterator[StreamServer]:
    """A server that cuts a socket off when one frame has not gone out in a second; 2 streams a key."""
    server = start_gunicorn(services, STREAM_SEND_TIMEOUT="1", STREAM_MAX_SOCKETS_PER_KEY="2")
    yield server
    stop_gunicorn(server)


@pytest.fixture(scope="module")
def patient_server(app, services) -> Iterator[StreamServer]:
    """A server that waits ten minutes for a slow reader (so a test controls when it reads)."""
    server = start_gunicorn(services, STREAM_SEND_TIMEOUT="600")
    yield server
    stop_gunicorn(server)


def stalled(server: StreamServer, ticket_id: str, key: str) -> websocket.WebSocket:
    """Open a socket that reads nothing (a tiny receive window, and no recv), as a stalled client does."""
    ws = websocket.create_connection(f"{server.ws_base}/api/v1/tickets/{ticket_id}/stream",
                                     header=[f"Authorization: Bearer {key}"], timeout=10,
                                     sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    OPEN_SOCKETS.append(ws)
    return ws


def agent_key(tenant) -> dict:
    agent = tenant.user("agent")
    return tenant.api.post("/api/v1/api-keys", json={"name": "agent", "role": "agent",
                                                     "user_id": agent["id"]}).get_json()


def read_to_the_end(ws: websocket.WebSocket) -> tuple[list[dict], int | None]:
    """Read every event until the connection ends; return them and the close code (None if it was cut)."""
    events: list[dict] = []
    ws.settimeout(30)
    while True:
        try:
            opcode, data = ws.recv_data(control_frame=True)
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
            return events, None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return events, int.from_bytes(data[:2], "big")
        if opcode == websocket.ABNF.OPCODE_TEXT:
            events.append(json.loads(data))


def test_a_client_that_stops_reading_is_cut_off_and_frees_its_slot(tenant, cutting_server):
    ticket = helpers.new_ticket(tenant.api)
    for _ in range(24):
        assert helpers.post_message(tenant.api, ticket["id"], body=BIG).status_code == 201
    key = agent_key(tenant)["key"]
    sockets = [stalled(cutting_server, ticket["id"], key) for _ in range(2)]
    assert helpers.refused_status(cutting_server, ticket["id"], key=key) == 429  # the key's 2 streams

    # Each stalled socket is cut within a second or two of its send blocking, and gives its slot
    # back then: long before its lease (90 s) would have run out.
    def opens() -> bool:
        try:
            OPEN_SOCKETS.append(cutting_server.connect(ticket["id"], key=key))
        except websocket.WebSocketBadStatusException:
            return False
        return True

    helpers.wait_until(opens, "a stalled socket's slot to be given back", timeout=30)
    for ws in sockets:
        events, code = read_to_the_end(ws)
        assert code is None and len(events) < 24  # cut off mid-catch-up, not closed in order


def slow_reader(server: StreamServer, ticket_id: str, key: str, frames: int, slow_for: float) -> list[int]:
    """Read a stream through a small window, for `slow_for` seconds at about 250 KB/s (a slow mobile link),
    then at full speed, until `frames` text frames came; return their sizes. Fails if the server ends the
    connection first."""
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(30)
    raw.connect(("127.0.0.1", server.port))
    raw.sendall((f"GET /api/v1/tickets/{ticket_id}/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                 f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer {key}\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += raw.recv(4096)
    head, data = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    sizes: list[int] = []
    slow_until = time.monotonic() + slow_for
    try:
        while len(sizes) < frames:
            while True:  # whole frames in `data`: the server's are unmasked
                if len(data) < 2:
                    break
                length, start = data[1] & 0x7F, 2
                if length == 126:
                    length, start = int.from_bytes(data[2:4], "big"), 4
                elif length == 127:
                    length, start = int.from_bytes(data[2:10], "big"), 10
                if len(data) < start + length:
                    break
                opcode, payload = data[0] & 0x0F, data[start:start + length]
                assert opcode != 0x8, f"the server closed the stream: {payload!r}"
                if opcode == 0x1:
                    sizes.append(length)
                elif opcode == 0x9:  # a ping: pong with its payload (masked, as a client must; a zero mask)
                    raw.sendall(bytes([0x8A, 0x80 | len(payload)]) + bytes(4) + payload)
                data = data[start + length:]
            chunk = raw.recv(4096)
            assert chunk, "the server cut the stream off"
            data += chunk
            if time.monotonic() < slow_until:
                time.sleep(0.016)
    finally:
        raw.close()
    return sizes


@pytest.mark.parametrize("server", ["cutting_server", "impatient_server"])
def test_a_slow_client_that_keeps_reading_is_never_cut_off(request, tenant, server):
    """`cutting_server` cuts off a socket whose client took nothing of a frame for a second: past the
    first 4 MB (the kernel's buffers) each frame takes this client about two seconds, and it takes
    bytes all along. `impatient_server` pings every half second and closes a socket whose pong has
    not come by the next ping: a ping sent behind the megabytes this client is still taking would
    wait seconds."""
    ticket = helpers.new_ticket(tenant.api)
    for _ in range(12):
        assert helpers.post_message(tenant.api, ticket["id"], body=BIG).status_code == 201
    sizes = slow_reader(request.getfixturevalue(server), ticket["id"], tenant.key, 12, slow_for=6)
    assert len(sizes) == 12 and min(sizes) > 400_000


def test_the_slot_of_a_socket_whose_thread_is_stuck_in_a_send_is_kept(app, services, tenant, patient_server):
    ticket = helpers.new_ticket(tenant.api)
    for _ in range(24):
        assert helpers.post_message(tenant.api, ticket["id"], body=BIG).status_code == 201
    made = agent_key(tenant)
    ws = stalled(patient_server, ticket["id"], made["key"])  # its thread blocks in the catch-up for ten minutes
    try:
        with app.app_context():
            tenant_id = active_tenant(tenant.slug).id
        client = redis.Redis.from_url(services.redis_url)
        name = f"tms:{tenant_id}:sockets:key:{made['id']}"
        helpers.wait_until(lambda: client.zcard(name) == 1, "the socket's slot", timeout=10)
        first = client.zrange(name, 0, -1, withscores=True)[0][1]
        # The process hub renews it (every 15 s) though the socket's own thread cannot.
        helpers.wait_until(lambda: client.zrange(name, 0, -1, withscores=True)[0][1] > first,
                           "the stuck socket's lease to be renewed", timeout=40)
        assert client.ttl(name) > 30
    finally:
        ws.shutdown()  # frees the server's thread at once, so the server stops without waiting for it


def test_a_client_flooding_frames_it_does_not_wait_for_is_cut_off(tenant, patient_server):
    ticket = helpers.new_ticket(tenant.api)
    for _ in range(24):
        assert helpers.post_message(tenant.api, ticket["id"], body=BIG).status_code == 201
    ws = stalled(patient_server, ticket["id"], tenant.key)  # its socket's thread is stuck sending
    frame = json.dumps({"type": "typing"})

    def flood() -> bool:
        try:
            for _ in range(10):
                ws.send(frame)
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
            return True
        return False

    helpers.wait_until(flood, "the flooding client to be cut off", timeout=30, every=0)
    assert helpers.post_message(tenant.api, ticket["id"], body="the ticket is fine").status_code == 201


def test_a_frame_over_the_size_limit_is_answered_1009_not_a_reset(tenant, server_a):
    """The server stops reading at the limit; closed with the rest of the frame unread, the connection
    was reset, and the client got that instead of the close frame."""
    ticket = helpers.new_ticket(tenant.api)
    ws = server_a.connect(ticket["id"], key=tenant.key)
    ws.send(json.dumps({"type": "message", "body": "x" * 900_000}))
    assert helpers.close_code(ws, timeout=10) == 1009
    assert tenant.api.get(f"/api/v1/tickets/{ticket['id']}/messages").get_json()["items"] == []


def test_the_waiting_frames_are_bounded_by_count_and_by_size():
    cuts = []
    frames = WaitingFrames(lambda: cuts.append(1), ["early"])
    for _ in range(MAX_WAITING_FRAMES - 1):
        frames.append("x")
    assert len(frames) == MAX_WAITING_FRAMES and not cuts
    frames.append("one too many")
    assert len(frames) == MAX_WAITING_FRAMES and cuts == [1]
    assert frames.pop(0) == "early" and frames.size == MAX_WAITING_FRAMES - 1

    big = WaitingFrames(lambda: cuts.append(2), [])
    big.append("a" * (MAX_WAITING_SIZE - 1))
    big.append(b"bc")
    assert cuts == [1, 2] and len(big) == 1


def test_a_ping_is_skipped_only_while_the_client_has_lately_taken_bytes_and_has_more_waiting():
    class Socket:  # what OneWriter reads of simple-websocket's connection
        ping_interval = 0.3
        pong_received = False

    ping = b"\x89\x00"
    with socket.create_server(("127.0.0.1", 0)) as listening:
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(listening.getsockname())
        server, _ = listening.accept()
        with client, server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            ws = Socket()
            writer = OneWriter(server, ws)
            writer.send(b"x" * 200_000)  # more than the client's window: most of it waits
            time.sleep(0.2)  # the client's kernel fills its window
            waiting = bytes_unacknowledged(server)
            assert waiting > 100_000

            writer.send(ping)  # the client's kernel took a window's worth since the writer began
            assert ws.pong_received and bytes_unacknowledged(server) == waiting
            ws.pong_received = False
            writer.send(ping)  # right after: judged by what the last ping saw
            assert ws.pong_received and bytes_unacknowledged(server) == waiting

            time.sleep(0.4)  # a ping interval with nothing taken: the ping goes out behind the backlog
            ws.pong_received = False
            writer.send(ping)
            assert not ws.pong_received and bytes_unacknowledged(server) == waiting + len(ping)

            taken = client.recv(65536)  # the client reads again
            helpers.wait_until(lambda: bytes_unacknowledged(server) < waiting, "the client's reading to be seen")
            writer.send(ping)
            assert ws.pong_received

            client.settimeout(10)
            while len(taken) < 200_000 + len(ping):  # all of it, then an idle line: pings go out
                taken += client.recv(65536)
            helpers.wait_until(lambda: bytes_unacknowledged(server) == 0, "everything to be acknowledged")
            ws.pong_received = False
            writer.send(ping)
            assert not ws.pong_received and client.recv(16) == ping


def test_a_send_first_looked_at_after_its_timeout_counts_the_bytes_taken_since_it_began():
    """The watchdog looks every second or two; a send it first sees late is judged from its beginning."""
    with socket.create_server(("127.0.0.1", 0)) as listening:
        client = socket.create_connection(listening.getsockname())
        server, _ = listening.accept()
        with client, server:
            def sent_and_taken(size: int) -> None:
                before = bytes_acked(server)
                server.sendall(b"x" * size)
                assert len(client.recv(size, socket.MSG_WAITALL)) == size
                helpers.wait_until(lambda: bytes_acked(server) == before + size, "the bytes to be acknowledged")

            sent_and_taken(1000)
            sending = Sending(server)
            sending.begin(1.0)
            sent_and_taken(1000)  # taken during the send, before the watchdog's first look
            now = time.monotonic()
            assert not sending.stuck(now + 5)
            assert sending.stuck(now + 10)  # nothing taken since that look
            sending.end()
            assert not sending.stuck(now + 20)

            sending.begin(1.0)  # a send whose client takes nothing is cut once its timeout is past
            now = time.monotonic()
            assert not sending.stuck(now) and sending.stuck(now + 5)


def test_a_revocation_stops_a_catch_up_in_flight(tenant, patient_server):
    ticket = helpers.new_ticket(tenant.api)
    agent = tenant.user("agent")
    created = tenant.api.post("/api/v1/api-keys", json={"name": "laptop", "role": "agent",
                                                        "user_id": agent["id"]}).get_json()
    for n in range(2 * CATCH_UP_PAGE + 10):  # the first page is enough to stall on; two more follow
        body = BIG if n < 20 else f"note {n}"
        assert helpers.post_message(tenant.api, ticket["id"], body=body, internal=True).status_code == 201
    ws = stalled(patient_server, ticket["id"], created["key"])
    first = ws.recv_data(control_frame=True)  # the catch-up has begun: the first page is on its way
    assert first[0] == websocket.ABNF.OPCODE_TEXT
    assert tenant.api.delete(f"/api/v1/api-keys/{created['id']}").status_code == 204
    helpers.wait_until(lambda: helpers.refused_status(patient_server, ticket["id"], key=created["key"]) == 401,
                       "the revocation to be in force", timeout=10)

    events, code = read_to_the_end(ws)
    seqs = [e["message"]["seq"] for e in events if e["type"] == "message.created"]
    assert code == 1008
    assert seqs and max(seqs) <= CATCH_UP_PAGE  # nothing read from the database after the revocation


@pytest.mark.parametrize("headers", [
    {"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="},
    {"Sec-WebSocket-Version": "13"},
    {"Sec-WebSocket-Version": "8", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="},
    {"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "short"},
    {"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==\n"},
    {"Sec-WebSocket-Version": "13\x00", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="},
])
def test_a_malformed_handshake_is_400_not_500(tenant, server_a, headers):
    ticket = helpers.new_ticket(tenant.api)
    lines = [f"GET /api/v1/tickets/{ticket['id']}/stream HTTP/1.1", f"Host: 127.0.0.1:{server_a.port}",
             "Upgrade: websocket", "Connection: Upgrade", f"Authorization: Bearer {tenant.key}",
             *(f"{name}: {value}" for name, value in headers.items())]
    with socket.create_connection(("127.0.0.1", server_a.port), timeout=10) as raw:
        raw.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while b"\r\n\r\n" not in answer and (chunk := raw.recv(4096)):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    assert status == 400, answer[:300]


GOOD_HANDSHAKE = {b"Upgrade": b"websocket", b"Connection": b"Upgrade", b"Sec-WebSocket-Version": b"13",
                  b"Sec-WebSocket-Key": b"dGhlIHNhbXBsZSBub25jZQ=="}
UNREADABLE_HANDSHAKES = {
    "host not IDNA": {b"Host": b"xn--zz"},
    "host not ASCII": {b"Host": b"\xff"},
    "connection not ASCII": {b"Connection": b"Upgrade, \xff"},
    "protocol not ASCII": {b"Sec-WebSocket-Protocol": b"\xff"},
    "protocol in UTF-8": {b"Sec-WebSocket-Protocol": b"\xc3\xa9"},
    "window bits not a number": {b"Sec-WebSocket-Extensions": b"permessage-deflate; server_max_window_bits=abc"},
    "window bits empty": {b"Sec-WebSocket-Extensions": b"permessage-deflate; server_max_window_bits="},
    "client window bits not a number": {b"Sec-WebSocket-Extensions": b"permessage-deflate; client_max_window_bits=abc"},
    "extensions not ASCII": {b"Sec-WebSocket-Extensions": b"\xff"},
}


@pytest.mark.parametrize("changed", UNREADABLE_HANDSHAKES.values(), ids=UNREADABLE_HANDSHAKES.keys())
def test_a_handshake_the_websocket_library_cannot_read_is_400_not_500(tenant, server_a, changed):
    """flask-sock hands every header to wsproto and h11, which raise on what they cannot read (a Host that
    is not IDNA, bytes that are not ASCII, a window size that is no number): that was a 500."""
    ticket = helpers.new_ticket(tenant.api)
    headers = {b"Host": f"127.0.0.1:{server_a.port}".encode(), **GOOD_HANDSHAKE,
               b"Authorization": f"Bearer {tenant.key}".encode(), **changed}
    raw_request = (f"GET /api/v1/tickets/{ticket['id']}/stream HTTP/1.1\r\n".encode()
                   + b"".join(name + b": " + value + b"\r\n" for name, value in headers.items()) + b"\r\n")
    with socket.create_connection(("127.0.0.1", server_a.port), timeout=10) as raw:
        raw.sendall(raw_request)
        answer = b""
        while b"\r\n\r\n" not in answer and (chunk := raw.recv(65536)):
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 "), answer[:300]
        length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
        while len(body) < length and (chunk := raw.recv(65536)):
            body += chunk
    assert json.loads(body)["code"] == 400
    ws = server_a.connect(ticket["id"], key=tenant.key)  # and its slot was given back
    ws.close()


def test_a_server_fault_before_the_handshake_is_a_logged_500_not_the_clients_400(app, tenant, monkeypatch, caplog):
    """Only what wsproto and h11 raise on the handshake is the client's: a ValueError of the server's own,
    before it, is a fault to log (it was answered 400, with its text)."""
    from app.conversation import stream

    def broken() -> None:
        raise ValueError("the server's own bug")

    monkeypatch.setattr(stream, "check_handshake", broken)
    ticket = helpers.new_ticket(tenant.api)
    response = app.test_client().get(f"/api/v1/tickets/{ticket['id']}/stream", headers={
        "Authorization": f"Bearer {tenant.key}", **{k.decode(): v.decode() for k, v in GOOD_HANDSHAKE.items()}})
    assert response.status_code == 500
    assert "the server's own bug" not in response.get_data(as_text=True)
    assert any("stream failed" in record.getMessage() for record in caplog.records)


def test_after_seq_past_the_tickets_last_message_is_refused(tenant, server_a):
    ticket = helpers.new_ticket(tenant.api)
    helpers.post_message(tenant.api, ticket["id"], body="one")
    assert helpers.refused_status(server_a, ticket["id"], key=tenant.key, after_seq=2) == 422
    assert helpers.refused_status(server_a, ticket["id"], key=tenant.key, after_seq=2**31 - 1) == 422
    ws = server_a.connect(ticket["id"], key=tenant.key, after_seq=1)
    helpers.send(ws, type="message", body="mine", ref="r1")
    echo = helpers.next_event(ws, "message.created")
    assert echo["message"]["seq"] == 2 and echo["ref"] == "r1"


def test_the_senders_echo_keeps_its_ref_when_another_message_came_first(app, tenant, server_a):
    ticket = helpers.new_ticket(tenant.api)
    ws = server_a.connect(ticket["id"], key=tenant.key)
    helpers.post_message(tenant.api, ticket["id"], body="seen")
    assert helpers.next_event(ws, "message.created")["message"]["seq"] == 1
    with app.app_context(), tenant_context(active_tenant(tenant.slug).ref()):
        services.post_message(Actor(user_id=uuid.UUID(tenant.admin_id), role="admin"),
                              uuid.UUID(ticket["id"]), body="not heard live")
        db.session.info[unit_of_work.PENDING].pop(LIVE_EVENTS)  # stored as seq 2; this socket never hears of it
        db.session.commit()
    helpers.send(ws, type="message", body="mine", ref="r1")
    missed, echo = helpers.next_event(ws, "message.created"), helpers.next_event(ws, "message.created")
    assert (missed["message"]["seq"], missed["message"]["body"], "ref" in missed) == (2, "not heard live", False)
    assert (echo["message"]["seq"], echo["message"]["body"], echo.get("ref")) == (3, "mine", "r1")


def created(seq: int) -> tuple[dict, str]:
    event = {"type": "message.created", "message": {"seq": seq}}
    return event, json.dumps(event)


def other(kind: str, n: int) -> tuple[dict, str]:
    event = {"type": kind, "message": {"id": str(n)}}
    return event, json.dumps(event)


def test_a_socket_far_behind_keeps_the_events_a_catch_up_cannot_replay():
    listener = Listener(threading.Event())
    listener.offer(*other("message.deleted", 0))
    for seq in range(1, MAX_QUEUED):
        listener.offer(*created(seq))
    listener.offer(*other("message.updated", 1))  # the queue is full: new messages are dropped
    listener.offer(*created(MAX_QUEUED))
    kept = [event["type"] for event, _ in listener.drain()]
    assert kept == ["message.deleted", "message.updated"]
    assert listener.resync and not listener.overflowed  # the messages come back by seq


def test_a_socket_whose_other_events_alone_fill_its_queue_is_closed():
    listener = Listener(threading.Event())
    for n in range(MAX_QUEUED + 1):
        listener.offer(*other("message.updated", n))
    assert listener.overflowed and listener.drain() == []
