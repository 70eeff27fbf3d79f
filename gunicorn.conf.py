"""gunicorn settings for the product (and for every benchmark, so figures compare like with like).

gthread workers: each open WebSocket holds one thread for its lifetime, so `threads` is sized
for sockets, not for CPU; plain HTTP requests share the same pool. See README, "Real time".
"""

import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "app.gunicorn_worker.Worker"  # gthread, with request deadlines (see its docstring)
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

