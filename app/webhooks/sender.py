"""Send one signed webhook POST, defensively: the receiver is a stranger's server.

- The target is checked again right here (`targets.check`), and the connection goes to one of
  the addresses that check approved, never to a second resolution of the name (DNS rebinding).
  TLS still verifies the certificate against the host name (SNI and hostname check).
- Short timeouts: `WEBHOOK_CONNECT_TIMEOUT` to connect, `WEBHOOK_READ_TIMEOUT` for each read, and
  `WEBHOOK_TOTAL_TIMEOUT` for the whole exchange, enforced by a watchdog that shuts the socket, so
  a receiver trickling a byte at a time cannot hold a worker. A 2xx status delivers the event even
  if its body then stalls: the receiver took it.
- Redirects are not followed (a 3xx is a failed attempt): a redirect is how a public URL would
  point us at a private one.
- At most `RESPONSE_CAP` bytes of the response are read, and less is kept. What is kept is text
  Postgres can store: a NUL anywhere in the answer (body, headers, a status line that is not
  HTTP) becomes U+FFFD, or recording the attempt would fail and the delivery would be sent again.

Signing: `X-Signature: sha256=<hex HMAC-SHA256 of "<X-Webhook-Timestamp>.<raw body>">`. During a
secret rotation's grace period the header carries one signature per secret, comma separated,
the new secret's first.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from flask import current_app

from app.webhooks.targets import RefusedTarget, Target, check

USER_AGENT = "TicketManagementSystem-Webhooks/1"
RESPONSE_CAP = 64 * 1024
KEPT_BODY = 4096
KEPT_HEADERS = 30
KEPT_HEADER_TEXT = 4096  # characters of the kept headers' names and values, in all


@dataclass(frozen=True)
class Outcome:
    """What happened to one attempt."""

    ok: bool
    status: int | None
    headers: dict[str, str] | None
    body: str | None
    error: str | None
    latency_ms: int


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Return `sha256=<hex>` for a timestamp and raw body."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def signed_headers(secrets: Iterable[str], body: bytes, event_id: str, event_type: str,
                   timestamp: int | None = None) -> dict[str, str]:
    """Return the headers of a delivery of `body`, signed with each secret."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Webhook-Id": event_id,
        "X-Webhook-Event": event_type,
        "X-Webhook-Timestamp": stamp,
        "X-Signature": ",".join(signature(s, stamp, body) for s in secrets),
    }


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to one of the target's already checked addresses.

    Each is tried in turn, within `connect_timeout` in all (an address the worker has no route to,
    an IPv6 one on a host without IPv6, say, is refused at once and the next is tried); each try
    gets the time left shared among the addresses left.
    """

    def __init__(self, target: Target, connect_timeout: float, read_timeout: float) -> None:
        super().__init__(str(target.addresses[0]), target.port, timeout=connect_timeout)
        self.target = target
        self.read_timeout = read_timeout

    def connect(self) -> None:
        deadline = time.monotonic() + self.timeout
        addresses = [str(a) for a in self.target.addresses]
        for i, address in enumerate(addresses):
            left = deadline - time.monotonic()
            try:
                self.sock = socket.create_connection((address, self.port), max(left / (len(addresses) - i), 0.001))
                break
            except OSError:
                if i == len(addresses) - 1 or time.monotonic() >= deadline:
                    raise
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(self.read_timeout)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    """An HTTPS connection to a checked address whose certificate must match the URL's host name."""

    def __init__(self, target: Target, connect_timeout: float, read_timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(target, connect_timeout, read_timeout)
        self.context = context

    def connect(self) -> None:
        super().connect()
        self.sock = self.context.wrap_socket(self.sock, server_hostname=self.target.host)


def _storable(text: str | None) -> str | None:
    """Return `text` without NULs, which Postgres refuses in text and JSONB."""
    return None if text is None else text.replace("\x00", "\ufffd")


def _kept_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    """Return the receiver's first headers as the log keeps them: at most `KEPT_HEADERS`, and
    `KEPT_HEADER_TEXT` characters in all, the last value cut short. A header line may be 64 KiB,
    so a receiver could otherwise make every attempt it answers store megabytes."""
    kept: dict[str, str] = {}
    room = KEPT_HEADER_TEXT
    for name, value in headers[:KEPT_HEADERS]:
        if len(name) >= room:
            break
        kept[name] = value[:room - len(name)]
        room -= len(name) + len(kept[name])
    return kept


def send(url: str, body: bytes, headers: dict[str, str]) -> Outcome:
    """POST `body` to `url` with `headers`; never raises for anything the receiver or network does."""
    config = current_app.config
    started = time.monotonic()

    def outcome(ok: bool = False, status: int | None = None, response_headers: dict[str, str] | None = None,
                text: str | None = None, error: str | None = None) -> Outcome:
        kept = None if response_headers is None else {_storable(k): _storable(v) for k, v in response_headers.items()}
        return Outcome(ok, status, kept, _storable(text), _storable(error), int((time.monotonic() - started) * 1000))

    try:
        target = check(url)
    except RefusedTarget as refused:
        return outcome(error=f"Refused before connecting: {refused.message}")
    if time.monotonic() - started > config["WEBHOOK_CONNECT_TIMEOUT"]:
        # The watchdog below bounds the exchange, not the lookup: a POST started this late could end
        # after the delivery's lease, when another worker may be sending the same attempt.
        return outcome(error=f"Resolving {target.host} took longer than the connect timeout.")
    if target.scheme == "https":
        conn: _PinnedHTTPConnection = _PinnedHTTPSConnection(
            target, config["WEBHOOK_CONNECT_TIMEOUT"], config["WEBHOOK_READ_TIMEOUT"], ssl.create_default_context())
    else:
        conn = _PinnedHTTPConnection(target, config["WEBHOOK_CONNECT_TIMEOUT"], config["WEBHOOK_READ_TIMEOUT"])
    timed_out = threading.Event()

    def watchdog() -> None:
        timed_out.set()
        sock = conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(config["WEBHOOK_TOTAL_TIMEOUT"], watchdog)
    timer.daemon = True
    timer.start()
    try:
        conn.putrequest("POST", target.path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", target.host_header)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        # A 2xx status, its headers read before the watchdog: the receiver took the event, and sending it
        # again would give it a duplicate, whatever its body then does. (A receiver that hangs up in its
        # own headers is taken at its word too; only the watchdog's cut is no answer.)
        taken = 200 <= response.status < 300 and not timed_out.is_set()
        status = response.status
        kept_headers = _kept_headers(response.getheaders())
        try:
            data = response.read(RESPONSE_CAP)
        except (OSError, http.client.HTTPException):
            if not taken:
                raise
            data = b""
        text = data[:KEPT_BODY].decode("utf-8", "replace")
        if taken:
            return outcome(True, status, kept_headers, text)
        if timed_out.is_set():
            return outcome(error=f"Timed out after {config['WEBHOOK_TOTAL_TIMEOUT']:g} s.")
        if 300 <= status < 400:
            where = response.getheader("Location", "")[:200]
            return outcome(False, status, kept_headers, text,
                           f"HTTP {status}: redirects are not followed (Location: {where}).")
        return outcome(False, status, kept_headers, text, f"HTTP {status}.")
    except TimeoutError:
        return outcome(error="Timed out waiting for the receiver.")
    except ssl.SSLError as exc:
        return outcome(error=f"TLS failed: {exc.reason or exc}.")
    except (OSError, http.client.HTTPException) as exc:
        if timed_out.is_set():
            return outcome(error=f"Timed out after {config['WEBHOOK_TOTAL_TIMEOUT']:g} s.")
        return outcome(error=f"{type(exc).__name__}: {exc}"[:500])
    finally:
        timer.cancel()
        conn.close()
