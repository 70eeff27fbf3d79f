"""Unbound extension singletons, bound to the app in `create_app`, and our few subclasses.

`db` is defined by `tenants` (its session class scopes every query to a tenant) and re-exported here.
"""

from __future__ import annotations

import threading

import redis
from apispec import BasePlugin
from flask import current_app, request
from flask_login import LoginManager
from flask_smorest import Api as SmorestApi
from flask_smorest import Blueprint as SmorestBlueprint
from flask_sock import Sock
from flask_wtf import CSRFProtect
from webargs.core import missing
from webargs.flaskparser import FlaskParser, is_json_request

from tenants import db as db  # re-exported: the app binds it like any extension

sock = Sock()
login = LoginManager()
csrf = CSRFProtect()


class CommonErrorsPlugin(BasePlugin):
    """Document on every authenticated operation the errors any of them can answer."""

    PUBLIC_PATHS = ("/api/v1/signup",)
    CODES = ("401", "403", "429")  # bad or revoked key, role may not, over the rate limit

    def operation_helper(self, path=None, operations=None, **kwargs):
        if not path or not path.startswith("/api/v1/") or path in self.PUBLIC_PATHS:
            return
        codes = (*self.CODES, "404") if "{" in path else self.CODES  # an unknown or other tenant's id
        for operation in (operations or {}).values():
            responses = operation.setdefault("responses", {})
            for code in codes:
                responses.setdefault(code, "DEFAULT_ERROR")


class Api(SmorestApi):
    """flask-smorest's Api, with errors in the contract's shape for API paths and HTML elsewhere."""

    def handle_http_exception(self, error):
        from app.http_errors import api_error_response, html_error_response

        if request.path.startswith("/api/") or request.blueprint in self._api_blueprints():
            return api_error_response(error)
        return html_error_response(error)

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


class GuardedParser(FlaskParser):
    """Read a JSON body as `app.input_guard` decoded and checked it, instead of parsing it again."""

    def _raw_load_json(self, req):
        from app.input_guard import json_body

        return json_body() if is_json_request(req) else missing


class Blueprint(SmorestBlueprint):
    """flask-smorest's Blueprint, reading arguments through the guarded parser."""

    ARGUMENTS_PARSER = GuardedParser()


_redis_lock = threading.Lock()


def redis_client() -> redis.Redis:
    """Return the app's Redis client (one connection pool per process, made once even under threads)."""
    client = current_app.extensions.get("tms_redis")
    if client is None:
        with _redis_lock:
            client = current_app.extensions.get("tms_redis")
            if client is None:
                client = redis.Redis.from_url(
                    current_app.config["REDIS_URL"], socket_timeout=5, socket_connect_timeout=2,
                    health_check_interval=30,
                )
                current_app.extensions["tms_redis"] = client
    return client
