"""Live gunicorn servers for socket tests (the Flask test client cannot speak WebSocket).

Two separate gunicorn masters with one worker each, on the test database and Redis, so a test
knows which process holds which socket.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
import websocket

from tests.servers import LiveServer, stop_gunicorn
from tests.servers import start_gunicorn as start_app_server

OPEN_SOCKETS: list[websocket.WebSocket] = []


@pytest.fixture(autouse=True)
def close_sockets() -> Iterator[None]:
    """Close the sockets a test opened, so servers stop promptly and tests do not pile up sockets."""
    yield
    while OPEN_SOCKETS:
        OPEN_SOCKETS.pop().close()


@dataclass
class StreamServer(LiveServer):
    """A live server whose ticket streams a test can connect to."""

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def connect(self, ticket_id: str, key: str | None = None, token: str | None = None,
                after_seq: int | None = None, **params: str) -> websocket.WebSocket:
        query = [urlencode(params)] if params else []
        if token is not None:
            query.append(f"token={token}")
        if after_seq is not None:
            query.append(f"after_seq={after_seq}")
        url = f"{self.ws_base}/api/v1/tickets/{ticket_id}/stream" + ("?" + "&".join(query) if query else "")
        header = [f"Authorization: Bearer {key}"] if key else []
        ws = websocket.create_connection(url, header=header, timeout=5)
        OPEN_SOCKETS.append(ws)
        return ws


def start_gunicorn(services, **env_overrides: str) -> StreamServer:
    """Start the app in gunicorn (tests/servers.py) with ticket streams to connect to."""
    return start_app_server(services, StreamServer, **env_overrides)


@pytest.fixture(scope="session")
def live_servers(app, services) -> Iterator[list[StreamServer]]:
    servers = [start_gunicorn(services), start_gunicorn(services)]
    yield servers
    for server in servers:
        stop_gunicorn(server)


@pytest.fixture
def server_a(live_servers) -> StreamServer:
    return live_servers[0]


@pytest.fixture
def server_b(live_servers) -> StreamServer:
    return live_servers[1]


@pytest.fixture(scope="module")
def impatient_server(app, services) -> Iterator[StreamServer]:
    """A server that pings, re-checks access and catches up every half second (and rarely relays typing)."""
    server = start_gunicorn(services, STREAM_PING_INTERVAL="0.5", STREAM_RESYNC_INTERVAL="0.5",
                            STREAM_TYPING_INTERVAL="600")
    yield server
    stop_gunicorn(server)


@pytest.fixture(scope="module")
def capped_server(app, services) -> Iterator[StreamServer]:
    """A server that lets a key hold 2 open streams, a user 3 and an organization 4."""
    server = start_gunicorn(services, STREAM_MAX_SOCKETS_PER_KEY="2", STREAM_MAX_SOCKETS_PER_USER="3",
                            STREAM_MAX_SOCKETS_PER_TENANT="4")
    yield server
    stop_gunicorn(server)
