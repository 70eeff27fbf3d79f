"""The gunicorn worker the product is served by (`gunicorn.conf.py`): gthread, with a deadline on
reading each request, one answer per request, and gunicorn's own refusals in the API's error shape.

- **Deadlines.** gthread waits for a new connection's first bytes off its threads, but from then
  on reads the request line, headers and body on a request thread with no timeout: a client that
  sent `GET / HTTP/1.1` and nothing more held a thread for good, and a few thousand such sockets
  held every thread of every worker. Here a request's head must arrive within `HEAD_SECONDS`, and
  its body (as the app reads it) within `BODY_SECONDS`; each `MIN_RATE` bytes that arrive buy one
  more second, so a slow link is served and a trickle is not (the head up to `HEAD_MOST_SECONDS`).
  These are Apache's `mod_reqtimeout` defaults (`REQUEST_READ_SECONDS`). A head that runs out
  closes the connection; a body raises `ReadDeadlinePassed` in the app, which answers 408
  (`app.http_errors`). A WebSocket reads its socket itself, so an open stream has no deadline.
- **Closing off the loop.** gthread closes a connection on the thread that accepts and dispatches
  every other, waiting up to 2 s for the peer to close its side: a peer that sent
  `Connection: close` and never closed stopped the whole worker for 2 s. Here the request's own
  thread closes it.
- **A deadline on each write of a response** (`RESPONSE_SEND_SECONDS`, kept by the kernel as
  `SO_SNDTIMEO`, and by the socket's timeout while a file is sent): a client that asked for a large
  answer and never read it held a thread for good.
- **One answer per request.** Once a response has gone, gthread drains a body the app did not
  read; one that is malformed there made gunicorn write a 400 after the response, which the
  client took as the answer to its next request. Such a connection now just closes.
- **Refusals as JSON.** What gunicorn refuses before the app sees it (a request line or header
  over its limit, a raw non-ASCII byte in the path, a length beside chunks) went out as an HTML
  page, through `util.write_error`, which has no setting; `write_error` below takes its place.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import socket
import struct
import threading
import time
from http import HTTPStatus
from typing import Any

from gunicorn import util
from gunicorn.http.errors import NoMoreData, ParseException
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.gthread import TConn, ThreadWorker

# The first budget of a request's head, and of its body (REQUEST_READ_SECONDS); a head never gets more than twice it.
HEAD_SECONDS = BODY_SECONDS = float(os.environ.get("REQUEST_READ_SECONDS", "20"))
HEAD_MOST_SECONDS = 2 * HEAD_SECONDS
BODY_MOST_SECONDS = 3600.0  # a body of the largest upload (25 MiB) must come at 7 KiB/s or more
# The most one write of a response may take (RESPONSE_SEND_SECONDS): a client that stops reading lets it go.
SEND_SECONDS = float(os.environ.get("RESPONSE_SEND_SECONDS", "60"))
MIN_RATE = 500  # bytes a second that extend a deadline by one second
ERROR_MESSAGE_CHARS = 200
CLOSED = object()  # what `Worker.handle` answers for a connection it closed itself
LINGER_SECONDS = 1.0  # how long a closing connection waits for the peer to close its side (RFC 9112 9.6)


class ReadDeadlinePassed(NoMoreData, TimeoutError):
    """The client stopped sending its request (or sent it slower than `MIN_RATE`) past its deadline.

    A `NoMoreData` to gunicorn, which treats the client as gone; a `TimeoutError` to a drain,
    which closes the connection."""

    def __init__(self) -> None:
        super().__init__("the request did not arrive in time")


class DeadlineUnreader(SocketUnreader):
    """gunicorn's reader of a request off its socket, waiting no longer than the request's deadline."""

    def __init__(self, sock: Any) -> None:
        super().__init__(sock)
        self._poll = select.poll()
        self._poll.register(sock, select.POLLIN)
        self._deadline = self._most = self._seconds = 0.0
        self.begin(HEAD_SECONDS, HEAD_MOST_SECONDS)

    def begin(self, seconds: float, most: float) -> None:
        """Start a deadline `seconds` from now, extended as bytes arrive up to `most` seconds from now."""
        now = time.monotonic()
        self._deadline, self._most, self._seconds = now + min(seconds, most), now + most, seconds

    def chunk(self, size_hint: int | None = None) -> bytes:
        size = self.mxchunk if not size_hint or size_hint <= self.mxchunk else min(size_hint, self.max_body_chunk)
        # Bytes already here are taken at once, even past the deadline: it bounds waiting for the client,
        # and the app may have been slow to read what the client sent in time. One call, as gthread's
        # own read: each call lets go of the GIL, which a busy process may take 5 ms to give back.
        try:
            data = self.sock.recv(size, socket.MSG_DONTWAIT)
        except BlockingIOError:
            remaining = max(self._deadline - time.monotonic(), 0.0)
            if not self._poll.poll(remaining * 1000):
                raise ReadDeadlinePassed from None
            data = self.sock.recv(size)
        # Bytes buy time, but never more than one first budget ahead: a burst does not pay for a long silence.
        now = time.monotonic()
        self._deadline = min(self._deadline + len(data) / MIN_RATE, now + self._seconds, self._most)
        return data


class DeadlineConn(TConn):
    """A connection whose requests are read by a `DeadlineUnreader`."""

    def init(self) -> None:
        fresh = not self.initialized
        super().init()
        # Not over TLS: a TLS socket may hold decrypted bytes that `poll` does not see.
        if fresh and not self.cfg.is_ssl and not self.is_http2 and type(self.parser.unreader) is SocketUnreader:
            self.parser.unreader = DeadlineUnreader(self.sock)
            # The kernel bounds each send: the socket stays blocking, so a write is one call (a Python
            # timeout would poll before each send and split large writes into more).
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, send_timeout(SEND_SECONDS))


class Worker(ThreadWorker):
    """gthread, with request deadlines and one answer per request (see the module's docstring)."""

    def init_process(self) -> None:
        util.write_error = write_error  # gunicorn has no setting for its error pages
        self._serving = threading.local()  # the request each thread is serving
        super().init_process()

    def accept(self, listener: Any) -> None:
        """gthread's `accept`, making a `DeadlineConn` (gunicorn 27.0.1)."""
        try:
            client_sock, client_addr = listener.accept()
            self.nr_conns += 1
            client_sock.setblocking(True)
            self.enqueue_req(DeadlineConn(self.cfg, client_sock, client_addr, listener.getsockname()))
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise

    def handle(self, conn: TConn) -> Any:
        unreader = getattr(conn.parser, "unreader", None)
        if isinstance(unreader, DeadlineUnreader):  # a kept-alive connection's next request
            unreader.begin(HEAD_SECONDS, HEAD_MOST_SECONDS)
        kept = super().handle(conn)
        if kept is False:
            # Closed here, on the request's thread: gthread closes it on the thread that accepts and
            # dispatches every connection, lingering up to 2 s for the peer to close its side.
            util.close_graceful(conn.sock, timeout=LINGER_SECONDS)
            return CLOSED
        return kept

    def finish_request(self, conn: TConn, fs: Any) -> None:
        if not fs.cancelled() and fs.exception() is None and fs.result() is CLOSED:
            self.nr_conns -= 1  # counted out once, as gthread counts out a connection it closes
            return
        super().finish_request(conn, fs)

    def handle_request(self, req: Any, conn: TConn) -> Any:
        unreader = getattr(conn.parser, "unreader", None)
        if isinstance(unreader, DeadlineUnreader):  # the head is read: the body's own deadline starts
            unreader.begin(BODY_SECONDS, BODY_MOST_SECONDS)
        self._serving.req = req
        try:
            return super().handle_request(req, conn)
        except (BlockingIOError, TimeoutError):  # a send ran out of time: a client gone quiet, as one gone away
            self.log.debug("Closing connection: the client stopped reading its response.")
            return False

    def load_wsgi(self) -> None:
        super().load_wsgi()
        app = self.wsgi

        def served(environ: dict[str, Any], start_response: Any) -> Any:
            """The app's answer, told how it goes out: closing after a body that failed, a file with a deadline."""
            body = app(environ, start_response)
            req = getattr(self._serving, "req", None)
            if req is not None and getattr(environ.get("wsgi.input"), "failed", False):
                # Reading the body raised (a malformed chunk, or its deadline passed): where the next request
                # would start is unknown, so the connection closes after this answer, which says so.
                req.must_close = True
            if isinstance(body, environ["wsgi.file_wrapper"]):
                # gunicorn sends a file with `socket.sendfile`, which waits for a socket that takes
                # nothing for as long as the socket's own timeout: with none, for good.
                environ["gunicorn.socket"].settimeout(SEND_SECONDS)
            return body

        self.wsgi = served

    def _keepalive_after(self, conn: TConn, keepalive: bool) -> bool:
        try:
            return super()._keepalive_after(conn, keepalive)
        except (ParseException, NoMoreData):  # the response has gone out: close, with no second answer
            return False


def send_timeout(seconds: float) -> bytes:
    """`SO_SNDTIMEO`'s value for `seconds` (0: sends wait for good, as a WebSocket's must)."""
    whole = int(seconds)
    return struct.pack("ll", whole, int((seconds - whole) * 1_000_000))


def write_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """Answer a request gunicorn refused before the app saw it in the API's error shape, not HTML.

    Its message may quote the request's own bytes: they come back escaped in ASCII and cut short.
    The status's own phrase is used (gunicorn says "Bad Request" for its 501).
    """
    with contextlib.suppress(ValueError):
        reason = HTTPStatus(status_int).phrase
    message = (mesg or reason)[:ERROR_MESSAGE_CHARS]
    body = json.dumps({"code": status_int, "status": reason, "message": message}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nDate: {util.http_date()}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)

