"""A minimal asyncio HTTP/1.1 keep-alive client: one event loop drives hundreds of API clients.

Like wsclient.py, it keeps the load generator's share of the 2 cores small: a request is one
write, a response two reads (the head, then exactly Content-Length bytes), and nothing else is
built per request. The product answers every API call with Content-Length, so a response
without it (or any other framing surprise) raises ProtocolError rather than being guessed at.
A request is never retried here: the caller decides what a failure means.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any


class ProtocolError(Exception):
    """The server answered something this client does not read (no Content-Length, a bad head)."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HttpConnection:
    """One keep-alive connection to the server, used by one client at a time."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host = host
        self.port = port
        self.base_head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": f"{host}:{port}", **headers}.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
                      timeout: float = 30.0) -> Response:
        """Send one request (a JSON body if given) and return the whole response.

        On any failure the connection is dropped, so the next request starts on a fresh one.
        """
        try:
            async with asyncio.timeout(timeout):
                return await self._exchange(method, path, body, headers)
        except BaseException:
            self.close()
            raise

    async def _exchange(self, method: str, path: str, body: Any, headers: dict[str, str] | None) -> Response:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        payload = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\n{self.base_head}"
        if headers:
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + payload)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            raise ProtocolError(f"bad status line {lines[0]!r}") from None
        response_headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                response_headers[name.strip().lower()] = value.strip()
        length = response_headers.get("content-length")
        if length is None and status not in (204, 304):
            raise ProtocolError(f"{status} without Content-Length")
        data = await self.reader.readexactly(int(length or 0))
        if response_headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status, response_headers, data)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None
