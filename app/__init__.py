"""Ticket Management System: a multi-tenant help desk."""

from __future__ import annotations

import importlib
from typing import Any

from flask import Flask

from app.config import Config

# Modules whose `@subscribe` handlers run outbox events in workers.
OUTBOX_HANDLERS: tuple[str, ...] = ("app.assignment.handlers",)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: configuration, then each subsystem's `init_app`, like a table of contents."""
    app = Flask(__name__, template_folder="../templates", static_folder="../static")
    app.config.from_object(Config())
    if config:
        app.config.update(config)

    from app import docs_assets, errors, extensions, health, input_guard, realtime
    from app.api_keys import api as api_keys_api
    from app.assignment import api as assignment_api
    from app.auth import request_auth
    from app.auth import ui as auth_ui
    from app.conversation import api as conversation_api
    from app.conversation import stream
    from app.outbox import cli as outbox_cli
    from app.people import api as people_api
    from app.signup import api as signup_api
    from app.signup import ui as signup_ui
    from app.tickets import api as tickets_api
    from app.ui import views as ui_views
    from tenants import cli as tenants_cli
    from tenants.resolution import TenantPathMiddleware

    extensions.db.init_app(app)
    extensions.api.init_app(app)
    extensions.sock.init_app(app)
    extensions.login.init_app(app)
    extensions.csrf.init_app(app)
    errors.init_app(app)
    request_auth.init_app(app)
    input_guard.init_app(app)
    health.init_app(app)
    docs_assets.init_app(app)
    realtime.init_app(app)

    for module in (signup_api, people_api, api_keys_api, tickets_api, conversation_api, assignment_api):
        module.register(extensions.api)
    stream.init_app(app)
    for module in (auth_ui, signup_ui, ui_views):
        module.init_app(app)
    tenants_cli.init_app(app)
    outbox_cli.init_app(app)
    for handlers in OUTBOX_HANDLERS:
        importlib.import_module(handlers)

    app.wsgi_app = TenantPathMiddleware(app.wsgi_app, app.config["SERVER_NAME_FOR_TENANTS"])
    return app
