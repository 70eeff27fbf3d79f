"""Ticket Management System: a multi-tenant help desk."""

from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app import converters
from app.config import Config, engine_options


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: configuration, then each subsystem's `init_app`, like a table of contents."""
    app = Flask(__name__, template_folder="../templates")
    converters.init_app(app)
    app.config.from_object(Config())
    if config:
        app.config.update(config)
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", engine_options(app.config))
    if not app.config.get("SECRET_KEY"):
        raise RuntimeError("SECRET_KEY is not set: every process must share one, or sessions and signed "
                           "cursors from one are refused by the next. `make run` keeps one in DATA_DIR.")
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        raise RuntimeError("DATABASE_URL is not set. `make run` writes the URLs of its servers to DATA_DIR/env "
                           "for commands run beside it (README, Tenants CLI).")
    from tenants import check_shards

    check_shards(app.config["SQLALCHEMY_DATABASE_URI"], app.config.get("SQLALCHEMY_BINDS") or {},
                 app.config["SHARD_MAX_TENANTS"])

    from app import (
        docs_assets,
        extensions,
        health,
        http_errors,
        input_guard,
        openapi,
        outbox,
        realtime,
        security_headers,
        seed,
        unit_of_work,
    )
    from app.admin import ui as admin_ui
    from app.api_keys import api as api_keys_api
    from app.assignment import api as assignment_api
    from app.assignment import handlers as assignment_handlers
    from app.audit import api as audit_api
    from app.auth import request_auth
    from app.auth import ui as auth_ui
    from app.conversation import api as conversation_api
    from app.conversation import stream
    from app.conversation import ui as conversation_ui
    from app.dashboard import api as dashboard_api
    from app.events import api as events_api
    from app.media import api as media_api
    from app.media import cli as media_cli
    from app.media import handlers as media_handlers
    from app.media import services as media_services
    from app.media import storage as media_storage
    from app.media import ui as media_ui
    from app.outbox import cli as outbox_cli
    from app.outbox import dispatch as outbox_dispatch
    from app.people import api as people_api
    from app.people import ui as people_ui
    from app.signup import api as signup_api
    from app.signup import cli as signup_cli
    from app.signup import ui as signup_ui
    from app.tickets import api as tickets_api
    from app.tickets import ui as tickets_ui
    from app.ui import layout as ui_layout
    from app.ui import once as ui_once
    from app.ui import views as ui_views
    from app.webhooks import api as webhooks_api
    from app.webhooks import delivery as webhook_delivery
    from tenants import TenantPathMiddleware, init_cli, init_engines

    # Infrastructure
    extensions.db.init_app(app)
    with app.app_context():
        init_engines(guard=app.config["POOL_CHECKOUT_GUARD"],
                     max_tenants_per_connection=app.config["DB_CONNECTION_MAX_TENANTS"])
    extensions.api.init_app(app)
    openapi.init_app(extensions.api)
    app.session_interface = extensions.PageSessions()
    extensions.sock.init_app(app)
    extensions.login.init_app(app)
    input_guard.keep_form_bodies(app)  # before CSRF's check, which reads (and uses up) a form's body
    extensions.csrf.init_app(app)
    unit_of_work.init_app(app)
    http_errors.init_app(app)
    request_auth.init_app(app)
    input_guard.init_app(app)
    security_headers.init_app(app)
    health.init_app(app)
    media_storage.check_config(app)
    docs_assets.init_app(app)
    # Work after commit: live events, outbox rows to RQ, and the outbox handlers jobs run
    realtime.init_app(app)
    outbox.init_app(app)
    outbox_dispatch.init_app(app)
    assignment_handlers.init_app(app)
    media_services.init_app(app)
    media_handlers.init_app(app)
    webhook_delivery.init_app(app)
    # The API
    signup_api.register(extensions.api)
    people_api.register(extensions.api)
    api_keys_api.register(extensions.api)
    tickets_api.register(extensions.api)
    conversation_api.register(extensions.api)
    assignment_api.register(extensions.api)
    audit_api.register(extensions.api)
    dashboard_api.register(extensions.api)
    media_api.register(extensions.api)
    webhooks_api.register(extensions.api)
    events_api.register(extensions.api)
    stream.init_app(app)
    openapi.finish(extensions.api)
    # Pages: the shared layout, then each area's pages
    ui_layout.init_app(app)
    ui_once.init_app(app)
    auth_ui.init_app(app)
    signup_ui.init_app(app)
    ui_views.init_app(app)
    tickets_ui.init_app(app)
    conversation_ui.init_app(app)
    people_ui.init_app(app)
    media_ui.init_app(app)
    admin_ui.init_app(app)
    # Commands
    init_cli(app)
    signup_cli.init_app(app)
    outbox_cli.init_app(app)
    media_cli.init_app(app)
    seed.init_app(app)

    app.wsgi_app = TenantPathMiddleware(app.wsgi_app, app.config["SERVER_NAME_FOR_TENANTS"])
    if app.config["TRUSTED_PROXIES"]:
        # The client address and scheme come from that many X-Forwarded-* hops, and no more.
        hops = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)
    return app
