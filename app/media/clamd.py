"""A small client of clamd's INSTREAM command, strict about what counts as a verdict.

Only `stream: OK` after every byte was sent is clean, and only `stream: <name> FOUND` is a hit.
Everything else raises `ScannerError`, so the caller records `scan_failed` (after its retries)
and never `clean`: a timeout, a reset (clamd drops a stream longer than its `StreamMaxLength`),
an `... ERROR` answer, or a `Heuristics.Limits.Exceeded.*` "hit", which is how clamd with
`AlertExceedsMax yes` says it did not read all of a file (without that setting it answers OK for
a file over `MaxFileSize`; the shipped clamd configuration sets it, and the README asks the same
of production). clamd down or refusing the connection raises `ScannerUnreachable`, its subclass:
an outage says nothing about the file, so the caller waits for clamd instead of counting a try.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass
from typing import BinaryIO

CHUNK = 256 * 1024
LIMITS_EXCEEDED = "Heuristics.Limits.Exceeded"


class ScannerError(Exception):
    """clamd gave no verdict on the whole file."""


class ScannerUnreachable(ScannerError):
    """clamd could not be reached at all: an outage, which says nothing about the file."""


@dataclass(frozen=True)
class Clamd:
    """Where clamd listens (a unix socket, or host and port) and how long a scan may take."""

    socket_path: str = ""
    host: str = ""
    port: int = 3310
    timeout: float = 60.0

    def _connect(self) -> socket.socket:
        try:
            if self.socket_path:
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                conn.settimeout(min(self.timeout, 10))
                conn.connect(self.socket_path)
            else:
                conn = socket.create_connection((self.host, self.port), timeout=min(self.timeout, 10))
        except OSError as exc:
            raise ScannerUnreachable(f"clamd is not reachable: {exc}") from exc
        conn.settimeout(self.timeout)
        return conn

    def ping(self) -> bool:
        """Tell whether clamd answers PING."""
        try:
            with self._connect() as conn:
                conn.sendall(b"zPING\0")
                return _read_reply(conn, time.monotonic() + self.timeout) == "PONG"
        except (ScannerError, OSError):
            return False

    def scan(self, stream: BinaryIO, expected_size: int) -> str | None:
        """Scan a file's bytes; return the signature found, or None when clean.

        Raises ScannerError whenever clamd did not give a verdict on all `expected_size` bytes.
        """
        deadline = time.monotonic() + self.timeout
        sent = 0
        with self._connect() as conn:
            try:
                conn.sendall(b"zINSTREAM\0")
                while chunk := stream.read(CHUNK):
                    if time.monotonic() > deadline:
                        raise ScannerError(f"clamd took longer than {self.timeout:g} s")
                    conn.sendall(struct.pack(">I", len(chunk)) + chunk)
                    sent += len(chunk)
                conn.sendall(struct.pack(">I", 0))
            except TimeoutError as exc:
                raise ScannerError(f"clamd took longer than {self.timeout:g} s") from exc
            except OSError as exc:
                # clamd closes a stream over StreamMaxLength; its reason may be waiting to be read
                reply = _try_read_reply(conn)
                raise ScannerError(f"clamd stopped reading after {sent} bytes: {reply or exc}") from exc
            reply = _read_reply(conn, deadline)
        return _verdict(reply, sent, expected_size)


def _verdict(reply: str, sent: int, expected_size: int) -> str | None:
    if sent != expected_size:
        raise ScannerError(f"only {sent} of {expected_size} bytes could be read for scanning")
    if reply == "stream: OK":
        return None
    if reply.startswith("stream: ") and reply.endswith(" FOUND"):
        name = reply[len("stream: "):-len(" FOUND")].strip()
        if name.startswith(LIMITS_EXCEEDED):
            raise ScannerError(f"clamd could not scan the whole file ({name})")
        return name or "unnamed signature"
    raise ScannerError(f"clamd answered {reply[:200]!r}")


def _read_reply(conn: socket.socket, deadline: float) -> str:
    answer = b""
    try:
        while not answer.endswith(b"\0"):
            conn.settimeout(max(deadline - time.monotonic(), 0.001))
            received = conn.recv(4096)
            if not received:
                break
            answer += received
            if len(answer) > 64 * 1024:
                break
    except TimeoutError as exc:
        raise ScannerError("clamd gave no answer in time") from exc
    except OSError as exc:
        raise ScannerError(f"clamd closed the connection: {exc}") from exc
    if not answer.endswith(b"\0"):
        raise ScannerError(f"clamd closed the connection without a verdict ({answer[:200]!r})")
    return answer.rstrip(b"\0").decode("utf-8", "replace").strip()


def _try_read_reply(conn: socket.socket) -> str:
    try:
        conn.settimeout(1)
        return conn.recv(4096).rstrip(b"\0").decode("utf-8", "replace").strip()
    except OSError:
        return ""
