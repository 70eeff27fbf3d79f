"""gunicorn settings for the product (and for every benchmark, so figures compare like with like).

gthread workers: each open WebSocket holds one thread for its lifetime, so `threads` is sized
for sockets, not for CPU; plain HTTP requests share the same pool. See README, "Real time".
"""

import json
import os

from gunicorn import util

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "1100"))
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "2000"))
keepalive = 5
timeout = 60
graceful_timeout = 10
accesslog = os.environ.get("ACCESS_LOG") or None
wsgi_app = "wsgi:app"
# Proxy headers are the app's to judge, in one place (TRUSTED_PROXIES, app/__init__.py). By
# default gunicorn trusts connections from 127.0.0.1, where a proxy passes client headers on:
# it would take the scheme from X-Forwarded-Proto and the path from SCRIPT_NAME and PATH_INFO
# headers, so any client could claim https, move the app under a prefix (answered 500) or route
# another path. The app is never mounted under a prefix.
forwarded_allow_ips = ""
forwarder_headers = ""
# gunicorn's control socket is one path per user (~/.gunicorn/gunicorn.ctl), shared by every
# instance (a second one stopping removed the first's); nothing here uses it.
control_socket_disable = True
limit_request_line = 8190  # the OpenAPI document promises 414 beyond this (app/openapi.py)


def post_worker_init(worker):
    """Let the worker's ticket streams close themselves when it stops, instead of waiting out the grace."""
    from app.conversation.hub import watch_server

    watch_server(lambda: worker.alive)


ERROR_MESSAGE_CHARS = 200


def write_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """Answer a request gunicorn refused before the app saw it in the API's error shape, not HTML.

    gunicorn parses the request line, the headers and a chunked body itself, and answers what it
    cannot parse (a request line over `limit_request_line`, a raw non-ASCII byte in the path, a
    length with chunks) through `util.write_error`, which has no setting; this takes its place. Its
    message may quote the request's own bytes: they come back escaped in ASCII and cut short.
    """
    message = (mesg or reason)[:ERROR_MESSAGE_CHARS]
    body = json.dumps({"code": status_int, "status": reason, "message": message}).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


util.write_error = write_error
