"""A minimal asyncio WebSocket client on wsproto: one event loop drives hundreds of sockets.

Thread-per-socket clients would spend the shared 2 cores on the GIL and skew the latencies the
benchmark is after; this client costs one coroutine per socket.
"""

from __future__ import annotations

import asyncio

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)


class Refused(Exception):
    """The server answered the handshake with an HTTP status instead of 101."""

    def __init__(self, status: int) -> None:
        super().__init__(f"refused with {status}")
        self.status = status


class Closed(Exception):
    """The connection is closed."""


class AsyncWebSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ws: WSConnection) -> None:
        self.reader = reader
        self.writer = writer
        self.ws = ws
        self.pending: list[str] = []
        self.partial = ""

    @classmethod
    async def connect(cls, host: str, port: int, path: str, headers: dict[str, str] | None = None,
                      timeout: float = 30.0) -> AsyncWebSocket:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        ws = WSConnection(ConnectionType.CLIENT)
        extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        writer.write(ws.send(Request(host=f"{host}:{port}", target=path, extra_headers=extra)))
        client = cls(reader, writer, ws)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            data = await asyncio.wait_for(reader.read(65536), max(deadline - asyncio.get_running_loop().time(), 0.01))
            if not data:
                raise Closed("closed during handshake")
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    client._absorb(ws.events())
                    return client
                if isinstance(event, (RejectConnection, RejectData)):
                    writer.close()
                    raise Refused(getattr(event, "status_code", 0))

    def _absorb(self, events) -> None:
        for event in events:
            if isinstance(event, TextMessage):
                self.partial += event.data
                if event.message_finished:
                    self.pending.append(self.partial)
                    self.partial = ""
            elif isinstance(event, BytesMessage):
                continue
            elif isinstance(event, Ping):
                self.writer.write(self.ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                raise Closed(f"closed by server: {event.code}")

    async def recv(self) -> str:
        """Return the next text frame, answering pings on the way."""
        while not self.pending:
            data = await self.reader.read(65536)
            if not data:
                raise Closed("connection lost")
            self.ws.receive_data(data)
            self._absorb(self.ws.events())
        return self.pending.pop(0)

    def send(self, text: str) -> None:
        self.writer.write(self.ws.send(TextMessage(data=text)))

    async def close(self) -> None:
        try:
            self.writer.write(self.ws.send(CloseConnection(code=1000)))
            await self.writer.drain()
        except (OSError, ConnectionError):  # the socket may already be gone
            pass
        self.writer.close()
