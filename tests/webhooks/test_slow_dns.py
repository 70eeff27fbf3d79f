"""A webhook host slower to resolve than the connect timeout is not posted to: the watchdog bounds
the exchange, not the lookup, so a POST started that late could outlast the delivery's lease and
be sent a second time by the worker the relay then hands the delivery to."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

from app.webhooks import sender, targets


def test_a_host_slower_to_resolve_than_the_connect_timeout_is_not_posted_to(app, monkeypatch):
    hits: list[str] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    resolve, delay = socket.getaddrinfo, [0.5]

    def slow(host, *args, **kwargs):
        if host == "hooks.example":
            time.sleep(delay[0])
            host = "127.0.0.1"
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(targets.socket, "getaddrinfo", slow)
    monkeypatch.setitem(app.config, "WEBHOOK_ALLOW_PRIVATE_ADDRESSES", True)
    monkeypatch.setitem(app.config, "WEBHOOK_CONNECT_TIMEOUT", 0.2)
    url = f"http://hooks.example:{server.server_address[1]}/hook"
    try:
        with app.app_context():
            late = sender.send(url, b"{}", {"Content-Type": "application/json"})
            assert not late.ok and "took longer than the connect timeout" in late.error
            assert hits == []
            delay[0] = 0
            prompt = sender.send(url, b"{}", {"Content-Type": "application/json"})
        assert prompt.ok and hits == ["/hook"]
    finally:
        server.shutdown()
