"""What keeps one client from holding a socket's thread or memory at will, below the stream's logic.

- `ReaderThread` is simple-websocket's reader thread (`SOCK_SERVER_OPTIONS["thread_class"]`),
  made to give the socket a bounded inbox (`WaitingFrames`) before it reads the first frame: a
  client that keeps sending while its socket's thread is busy is cut off past the bounds. It also
  gives the socket one lock for writing (`OneWriter`): simple-websocket's reader thread sends pings
  while the socket's thread may be in the middle of a frame, and with a slow client the two
  interleaved, a ping landing inside a frame. A ping that would wait behind a backlog the client
  is still taking is not sent and counts as answered: simple-websocket closes a socket whose pong
  has not come by the next ping, and a ping queued behind megabytes that a slow link takes half
  a minute to carry would close a client that is reading all along.
- `Sending` is a socket's send under watch: the process hub's thread (`hub.Hub`) cuts off a
  socket whose client has taken no byte for `STREAM_SEND_TIMEOUT` while a send is blocked on it
  (its window stayed shut). Progress is read from the kernel (`TCP_INFO`'s bytes acknowledged),
  so a slow client that keeps reading is never cut mid-frame; without it (not Linux, not TCP)
  a send that lasts the timeout is cut.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import socket
import struct
import sys
import termios
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# Frames a client may have waiting while its socket's thread is busy (sending, or in the database).
MAX_WAITING_FRAMES = 100
MAX_WAITING_SIZE = 4 * 1024 * 1024  # characters of text frames, bytes of binary ones
# `struct tcp_info` (linux/tcp.h): `tcpi_bytes_acked`, a u64 at byte 120 (Linux 4.1 and later).
BYTES_ACKED = slice(120, 128)
TCP_INFO_SIZE = 256
LINGER_SECONDS = 2.0  # how long a closing connection reads what its client still sends (`OneWriter.close`)
LINGER_BYTES = 16 * 1024 * 1024
PING = b"\x89"  # the first byte of a server's ping frame: FIN and opcode 9 (RFC 6455, 5.2), never masked


def shut(sock: socket.socket) -> None:
    """Drop a connection at once, from any thread: a send blocked on it fails, and its reader stops."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def bytes_unacknowledged(sock: socket.socket) -> int:
    """Return how many bytes written to this connection the peer has not acknowledged yet (0 if unknown)."""
    try:  # SIOCOUTQ, which Linux numbers as TIOCOUTQ: bytes in the send queue, sent or not
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, bytes(4)))[0]
    except (OSError, AttributeError, ValueError):
        return 0


def bytes_acked(sock: socket.socket) -> int | None:
    """Return how many bytes the peer has acknowledged on this connection, or None where the kernel does not say."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_SIZE)
    except (OSError, AttributeError):  # not Linux, or not a TCP socket (a Unix socket behind a proxy)
        return None
    if len(info) < BYTES_ACKED.stop:
        return None
    return int.from_bytes(info[BYTES_ACKED], sys.byteorder)


class WaitingFrames(list):
    """A socket's frames received but not handled yet, bounded: past the bounds the connection is cut.

    simple-websocket's reader thread appends every frame a client sends, whatever the socket's
    own thread is doing; a client sending while its socket is blocked would grow it without end.
    """

    def __init__(self, cut: Callable[[], None], waiting: list) -> None:
        super().__init__(waiting)
        self.cut = cut
        self.size = sum(len(frame) for frame in waiting)
        self.lock = threading.Lock()  # the reader thread appends, the socket's thread pops

    def append(self, frame: str | bytes) -> None:
        with self.lock:
            if len(self) >= MAX_WAITING_FRAMES or self.size + len(frame) > MAX_WAITING_SIZE:
                log.info("a socket's client sent %d frames it has not waited for; cut off", len(self) + 1)
                self.cut()
                return
            self.size += len(frame)
            super().append(frame)

    def pop(self, index: int = -1) -> str | bytes:
        with self.lock:
            frame = super().pop(index)
            self.size -= len(frame)
            return frame


class OneWriter:
    """A connection whose writes go out whole and one at a time (`sendall` under a lock); the rest is the socket's.

    A ping that would wait behind a backlog the client is taking is skipped (`_draining`), and the
    connection is closed lingering (`close`).
    """

    def __init__(self, sock: socket.socket, ws: Any) -> None:
        self._sock = sock
        self._ws = ws
        self._lock = threading.Lock()
        self._acked = bytes_acked(sock)  # as of the last ping
        self._took_at = -math.inf  # when a ping last found that the client had taken bytes

    def send(self, data: bytes) -> int:
        with self._lock:
            if data[:1] != PING or not self._draining():
                self._sock.sendall(data)
        return len(data)

    def _draining(self) -> bool:
        """Tell whether the client has taken bytes within the last ping interval and has more waiting.

        If so it is alive (a dead client's window stays shut), and the ping counts as answered
        instead of being sent. Progress is looked at only here, so a ping that had to wait for a
        frame and comes right after another is judged by what the one before it saw.
        """
        now, acked = time.monotonic(), bytes_acked(self._sock)
        if acked is None:
            return False
        if self._acked is not None and acked > self._acked:
            self._took_at = now
        self._acked = acked
        if now - self._took_at >= self._ws.ping_interval or not bytes_unacknowledged(self._sock):
            return False
        self._ws.pong_received = True  # simple-websocket set it false just before sending the ping
        return True

    def close(self) -> None:
        """Close once the client has had our last frame: send FIN, then read and drop what it still
        sends, for at most `LINGER_SECONDS` and `LINGER_BYTES` (simple-websocket's reader thread calls
        this as it ends). Closed with bytes unread, the connection is reset, and a reset can discard
        the close frame before the client reads it: one sending a frame over the size limit got a
        reset, not 1009."""
        with contextlib.suppress(OSError, ValueError):
            self._sock.shutdown(socket.SHUT_WR)
            deadline, dropped = time.monotonic() + LINGER_SECONDS, 0
            while dropped < LINGER_BYTES and (left := deadline - time.monotonic()) > 0:
                self._sock.settimeout(left)
                chunk = self._sock.recv(65536)
                if not chunk:
                    break
                dropped += len(chunk)
        self._sock.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class ReaderThread(threading.Thread):
    """simple-websocket's reader thread, which first gives its socket a bounded inbox and one writer.

    simple-websocket creates it once the handshake is done and before it reads any frame, with
    the connection's bound `_thread` as its target: no frame can slip past the bounds, and no
    write happens beside another.
    """

    def __init__(self, target: Callable[[], Any], **kwargs: Any) -> None:
        ws = target.__self__  # type: ignore[attr-defined]
        ws.sock = OneWriter(ws.sock, ws)
        ws.input_buffer = WaitingFrames(lambda: shut(ws.sock), ws.input_buffer)
        super().__init__(target=target, **kwargs)


class Sending:
    """A socket's send in progress, as the hub's watchdog sees it (written by the socket's thread)."""

    def __init__(self, sock: socket.socket | None) -> None:
        self.sock = sock
        self.since: float | None = None  # when the send in progress began; None between sends
        self.timeout = 0.0
        self.moved = 0.0  # when the client last took bytes during this send
        self.acked: int | None = None

    def begin(self, timeout: float) -> None:
        """Mark a send as begun, with the bytes acknowledged so far as its baseline (the socket's thread).

        Without the baseline, the watchdog's first look would only record the count, and a send it
        first looked at later than the timeout would be cut though the client had taken bytes all along.
        """
        self.timeout = timeout
        self.acked = bytes_acked(self.sock) if self.sock is not None else None
        self.moved = self.since = time.monotonic()

    def end(self) -> None:
        self.since = None

    def stuck(self, now: float) -> bool:
        """Tell whether the send in progress has seen the client take nothing for its timeout (the hub's thread)."""
        if self.since is None:
            return False
        acked = bytes_acked(self.sock) if self.sock is not None else None
        if acked is not None and acked != self.acked:
            self.moved, self.acked = now, acked
        return self.since is not None and now - self.moved > self.timeout

    def cut(self) -> None:
        if self.sock is not None:
            shut(self.sock)


def finish(ws: Any) -> None:
    """End a socket's connection and wait, at most a little longer than a linger, for its reader thread.

    Call it as the socket's handler returns: the server closes the connection then, and should do
    so only once the close frame has gone out and the client's last bytes were read (`OneWriter.close`).
    """
    if ws.connected:
        with contextlib.suppress(Exception):  # the peer may be gone already
            ws.close()
    ws.thread.join(LINGER_SECONDS + 1)
