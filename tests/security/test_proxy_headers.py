"""Headers a client sends never rewrite the request's path or scheme, whoever connects.

gunicorn maps `SCRIPT_NAME` and `PATH_INFO` request headers into the WSGI environment, and takes
the scheme from `X-Forwarded-Proto` and the like, when the connection comes from an address it
trusts as a proxy (127.0.0.1 by default, where a reverse proxy usually sits and passes client
headers on). With that, any client could move the app under a prefix of its choosing (a
`SCRIPT_NAME` the path does not start with answered 500, as HTML), have a different path routed
than the one requested, or claim https while `TRUSTED_PROXIES` is 0. `gunicorn.conf.py` trusts
no address: proxy headers are judged by the app alone.
"""

from __future__ import annotations

import http.client
import json

import pytest

from tests.helpers import new_ticket

FORGED = [
    {"SCRIPT_NAME": ")r%'E'Q"},
    {"SCRIPT_NAME": "/api"},
    {"SCRIPT_NAME": "/prefix"},
    {"PATH_INFO": "/api/v1/openapi.json"},
    {"PATH_INFO": "/healthz", "SCRIPT_NAME": "/api/v1/tickets"},
    {"REMOTE_USER": "admin"},
]


def _get(port: int, path: str, headers: dict[str, str]) -> tuple[int, str, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        content_type, data = resp.getheader("Content-Type", ""), resp.read()
        return resp.status, content_type, json.loads(data) if content_type == "application/json" else data
    finally:
        conn.close()


@pytest.mark.parametrize("forged", FORGED, ids=lambda h: ",".join(f"{k}={v}" for k, v in h.items()))
def test_path_headers_from_a_client_are_ignored(live_server, tenant, forged):
    ticket = new_ticket(tenant.api, "Routed as asked")
    auth = {"Authorization": f"Bearer {tenant.key}"}
    path = "/api/v1/tickets?limit=1"
    expected = _get(live_server.port, path, auth)
    status, content_type, body = _get(live_server.port, path, {**auth, **forged})
    assert (status, content_type) == (200, "application/json")
    assert body == expected[2] and body["items"][0]["id"] == ticket["id"]


@pytest.mark.parametrize("forged", [{"X-Forwarded-Proto": "https"}, {"X-Forwarded-Ssl": "on"},
                                    {"X-Forwarded-Protocol": "ssl"}], ids=lambda h: next(iter(h)))
def test_the_scheme_is_not_taken_from_a_client_unless_proxies_are_trusted(live_server, forged):
    """TRUSTED_PROXIES (0 here) alone decides whose X-Forwarded-* headers count, not gunicorn's own list."""
    conn = http.client.HTTPConnection("127.0.0.1", live_server.port, timeout=10)
    try:
        conn.request("GET", "/healthz", headers=forged)
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200 and resp.getheader("Strict-Transport-Security") is None  # still plain http
    finally:
        conn.close()
