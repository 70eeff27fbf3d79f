"""Unbound extension singletons, bound to the app in `create_app`, and our few subclasses."""

from __future__ import annotations

import threading

import redis
from flask import current_app, request
from flask_login import LoginManager
from flask_smorest import Api as SmorestApi
from flask_sock import Sock
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData

from tenants.context import TenantSession

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING), session_options={"class_": TenantSession})
sock = Sock()
login = LoginManager()
csrf = CSRFProtect()


class Api(SmorestApi):
    """flask-smorest's Api, with errors in the contract's shape for API paths and HTML elsewhere."""

    def handle_http_exception(self, error):
        from app.errors import api_error_response, html_error_response

        if request.path.startswith("/api/") or request.blueprint in self._api_blueprints():
            return api_error_response(error)
        return html_error_response(error)

    def register_blueprint(self, blp, **options):
        """Register an API blueprint; API calls authenticate by key, so they need no CSRF token."""
        csrf.exempt(blp)
        return super().register_blueprint(blp, **options)

    def _api_blueprints(self) -> set[str]:
        return {name for name in current_app.blueprints if name.startswith("api_")}


api = Api()


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
