"""Unbound extension singletons, bound to the app in `create_app`, and our few subclasses.

`db` is defined by `tenants` (its session class scopes every query to a tenant) and re-exported here.
"""

from __future__ import annotations

import threading
import uuid
from datetime import date, datetime
from typing import Any

import redis
from apispec import BasePlugin
from flask import current_app, request
from flask.sessions import SecureCookieSessionInterface
from flask_login import LoginManager
from flask_smorest import Api as SmorestApi
from flask_smorest import Blueprint as SmorestBlueprint
from flask_sock import Sock
from flask_wtf import CSRFProtect
from marshmallow import RAISE, Schema, ValidationError
from webargs.core import missing
from webargs.flaskparser import FlaskParser, is_json_request

from tenants import db as db  # re-exported: the app binds it like any extension


def is_api_path(path: str) -> bool:
    """Tell whether a path is the API's, which authenticates by key and never by cookie."""
    return path.startswith("/api/v1/") or path == "/api/v1"


def is_api_request() -> bool:
    return is_api_path(request.path)


class PageSessions(SecureCookieSessionInterface):
    """Cookie sessions for pages only: an API request neither reads nor writes the cookie."""

    def open_session(self, app, request):
        if is_api_path(request.path):
            return None  # Flask gives the request a null session, and never saves it
        return super().open_session(app, request)


class PageLogins(LoginManager):
    """flask-login for pages; API requests have no session to refresh a remember cookie from."""

    def _update_remember_cookie(self, response):
        return response if is_api_request() else super()._update_remember_cookie(response)


class PageCsrf(CSRFProtect):
    """CSRF checks for pages; API calls carry a key, not a cookie a third site could ride on."""

    def protect(self, apply_exemptions: bool = False) -> None:
        if apply_exemptions and is_api_request():
            return None
        return super().protect(apply_exemptions)


sock = Sock()
login = PageLogins()
csrf = PageCsrf()


class CommonErrorsPlugin(BasePlugin):
    """Document on every operation the errors any of them can answer: on authenticated ones 401, 403
    and 429, and 404 when the path names an id (unknown, or another tenant's); on those taking a JSON
    body, 415 for a body sent as anything else."""

    PUBLIC_PATHS = ("/api/v1/signup",)
    CODES = ("401", "403", "429")  # bad or revoked key, role may not, over the rate limit

    def operation_helper(self, path=None, operations=None, **kwargs):
        if not path or not path.startswith("/api/v1/"):
            return
        codes = () if path in self.PUBLIC_PATHS else (*self.CODES, "404") if "{" in path else self.CODES
        for operation in (operations or {}).values():
            responses = operation.setdefault("responses", {})
            json_body = "application/json" in operation.get("requestBody", {}).get("content", {})
            # Any request's query string that is not UTF-8, or a body that is not JSON: 400
            # (app.input_guard); a body over MAX_CONTENT_LENGTH: 413; not sent as JSON: 415.
            extra = ("400", "413", "415") if json_body else ("400",)
            for code in (*codes, *extra):
                responses.setdefault(code, "DEFAULT_ERROR")


class Api(SmorestApi):
    """flask-smorest's Api, with errors in the contract's shape for API paths and HTML elsewhere."""

    def handle_http_exception(self, error):
        from app.http_errors import api_error_response, respond

        if request.blueprint in self._api_blueprints():
            return api_error_response(error)
        return respond(error)

    def register_blueprint(self, blp, *, parameters=None, **options):
        """Register an API blueprint, documented under its human tag (`Tickets`, not `api_tickets`).

        API calls authenticate by key, so they need no CSRF token.
        """
        csrf.exempt(blp)
        name = options.get("name", blp.name)
        tag = getattr(blp, "tag", name)
        self._app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
        self._app.register_blueprint(blp, **options)
        blp.register_views_in_doc(self, self._app, self.spec, name=name, parameters=parameters)
        for operations in self.spec._paths.values():
            for operation in operations.values():
                if isinstance(operation, dict) and operation.get("tags") == [name]:
                    operation["tags"] = [tag]
        if tag not in {t["name"] for t in self.spec._tags}:
            self.spec.tag({"name": tag, "description": blp.description})

    def _api_blueprints(self) -> set[str]:
        return {name for name in current_app.blueprints if name.startswith("api_")}


api = Api(spec_kwargs={"extra_plugins": [CommonErrorsPlugin()]})


REPEATED = "Give this parameter once; where it takes several values, separate them with commas."
QUERY_LOCATIONS = ("query", "querystring")
MAX_QUERIES = 1024  # query strings remembered per process; a crawler of every combination only clears it
# Longer ones are parsed each time, so what is remembered stays small whatever a query's schema
# loads: a thousand 8 KiB query strings and their values would hold tens of MiB. Everyday filters are
# well under this.
MAX_QUERY_REMEMBERED = 256
# What a query schema loads to: values nothing downstream can change (lists are copied on the way out).
_IMMUTABLE = (str, int, float, bool, uuid.UUID, datetime, date, type(None))


class GuardedParser(FlaskParser):
    """Read a JSON body as `app.input_guard` decoded and checked it, instead of parsing it again; refuse
    query parameters that are unknown (a misspelt filter must answer 422, not silently widen the result)
    or repeated."""

    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": RAISE, "querystring": RAISE}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._parsed: dict[tuple, dict[str, Any]] = {}

    def parse(self, argmap: Any, req: Any = None, **kwargs: Any) -> Any:
        """Parse as webargs does; a query string this schema loaded before is answered from memory.

        Loading a query schema is a function of the query string alone (no schema here reads the
        time, the request or the caller), and on a plain ticket page it was a tenth of the
        request's time, the same `limit=50` every time. Only successful loads are kept, so every
        refusal still comes from marshmallow.
        """
        location = kwargs.get("location")
        if location not in QUERY_LOCATIONS or kwargs.get("validate") is not None or not isinstance(argmap, Schema):
            return super().parse(argmap, req, **kwargs)
        req = req if req is not None else self.get_default_request()
        if len(req.query_string) > MAX_QUERY_REMEMBERED:
            return super().parse(argmap, req, **kwargs)
        memo = (argmap, location, kwargs.get("unknown"), req.query_string)
        loaded = self._parsed.get(memo)
        if loaded is None:
            loaded = super().parse(argmap, req, **kwargs)
            if not isinstance(loaded, dict) or not all(
                    type(v) in _IMMUTABLE or (type(v) is list and all(type(i) in _IMMUTABLE for i in v))
                    for v in loaded.values()):
                return loaded
            if len(self._parsed) >= MAX_QUERIES:
                self._parsed.clear()
            self._parsed[memo] = loaded
        return {name: list(value) if type(value) is list else value for name, value in loaded.items()}

    def _raw_load_json(self, req):
        from app.input_guard import json_body

        return json_body() if is_json_request(req) else missing

    def load_querystring(self, req, schema):
        """Read the query string, refusing a single-valued parameter given more than once (422 naming it).

        webargs reads the first of `status=new&status=closed` or `limit=1&limit=500` and drops the
        rest, so the caller would get another answer than the one they asked for. Lists are
        spelled with commas (`status=new,open`), as the OpenAPI document says (`explode: false`).
        """
        proxy = self._makeproxy(req.args, schema)
        repeated = {name: [REPEATED] for name, values in req.args.lists()
                    if len(values) > 1 and name not in proxy.multiple_keys}
        if repeated:
            raise ValidationError(repeated)
        return proxy


parser = GuardedParser()


class Blueprint(SmorestBlueprint):
    """flask-smorest's Blueprint, reading arguments through the guarded parser."""

    ARGUMENTS_PARSER = parser


_redis_lock = threading.Lock()


def redis_client() -> redis.Redis:
    """Return the app's Redis client (one connection pool per process, made once even under threads).

    The pool blocks: a thread that finds every connection in use waits for one. redis-py's default
    pool refuses past 100 connections at once, and a gthread worker runs up to 1,100 threads, so
    under load requests failed with "Too many connections" and skipped their rate limit.
    """
    client = current_app.extensions.get("tms_redis")
    if client is None:
        with _redis_lock:
            client = current_app.extensions.get("tms_redis")
            if client is None:
                pool = redis.BlockingConnectionPool.from_url(
                    current_app.config["REDIS_URL"], max_connections=current_app.config["REDIS_MAX_CONNECTIONS"],
                    timeout=5, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30,
                )
                client = redis.Redis(connection_pool=pool)
                current_app.extensions["tms_redis"] = client
    return client
