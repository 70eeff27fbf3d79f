"""Errors in the contract's shape: `{"code", "status", "message", "errors"?}`, for every API path.

Domain errors (`app.errors`) are mapped to HTTP here, once: `http_error` for the API and pages.

Validation errors from webargs arrive nested by location (`{"json": {"title": [...]}}`); the
contract names fields directly, so locations are folded away. HTML pages get an HTML error page.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify, render_template, request
from flask.globals import request_ctx
from gunicorn.http.errors import NoMoreData, ParseException
from sqlalchemy.exc import (
    DataError,
    IntegrityError,
    InterfaceError,
    InternalError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import (
    BadRequest,
    ClientDisconnected,
    HTTPException,
    InternalServerError,
    RequestedRangeNotSatisfiable,
    RequestTimeout,
    UnprocessableEntity,
    default_exceptions,
)

from app.errors import (
    MAX_FIELD_ERRORS,
    Conflict,
    DomainError,
    Forbidden,
    Gone,
    Invalid,
    Malformed,
    NotFound,
    Stale,
    TooLarge,
    Unavailable,
    UnsupportedType,
    being_moved,
)
from app.gunicorn_worker import ReadDeadlinePassed
from app.health import PROBES

log = logging.getLogger(__name__)
STATUS = {NotFound: 404, Forbidden: 403, Conflict: 409, Invalid: 422, Stale: 412, Unavailable: 503, Gone: 410,
          Malformed: 400, TooLarge: 413, UnsupportedType: 415}
RACES = {"23505", "23503"}  # unique_violation, foreign_key_violation
CONCURRENT_CHANGE = {"40P01", "40001"}  # deadlock_detected, serialization_failure: Postgres picked this one to undo
LOCATIONS = ("json", "query", "querystring", "headers", "form", "files", "view_args", "path", "cookies")


def _flatten(errors: dict) -> dict:
    flat: dict = {}
    for key, value in errors.items():
        if key in LOCATIONS and isinstance(value, dict):
            flat.update(_flatten(value))
        elif isinstance(value, dict):
            for sub, messages in _flatten(value).items():
                flat[f"{key}.{sub}"] = messages
        else:
            flat[key] = value if isinstance(value, list) else [value]
    return flat


def http_error(error: DomainError) -> HTTPException:
    """Return the HTTP error that answers a domain error, with its message, fields and headers."""
    from app.input_guard import BadInput

    if isinstance(error, BadInput):
        status = error.status
    else:
        status = next(code for kind, code in STATUS.items() if isinstance(error, kind))
    headers = {}
    if isinstance(error, Stale):
        headers["ETag"] = f'"{error.current}"'
    if isinstance(error, Unavailable):
        headers["Retry-After"] = str(error.retry_after)
    http = default_exceptions[status]()
    http.data = {"message": error.message, "errors": error.errors or None, "headers": headers}
    return http


def _headers(error: HTTPException) -> dict[str, str]:
    """Return the headers an error answers with, JSON or page: its own (Retry-After, ETag), `Allow` on
    405, and on 416 `Content-Range` with the file's size (RFC 9110)."""
    data = getattr(error, "data", None) or {}
    headers = dict(data.get("headers") or {})
    if error.code == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods)
    if isinstance(error, RequestedRangeNotSatisfiable) and error.length is not None:
        headers["Content-Range"] = f"{error.units} */{error.length}"
    return headers


def api_error_response(error: HTTPException):
    """Return the JSON error body for an HTTP error."""
    data = getattr(error, "data", None) or {}
    payload = {"code": error.code, "status": error.name}
    errors = data.get("messages") or data.get("errors")
    # The contract keeps `errors` for validation failures (a field refused: 400, 413, 415, 422); a
    # conflict (409: a taken slug) is about the state of things, told by its message.
    if errors and error.code != 409:
        payload["errors"] = dict(list(_flatten(errors).items())[:MAX_FIELD_ERRORS])
    message = data.get("message")
    if message is None:
        if errors:
            message = "The request has invalid fields."
        elif isinstance(error, BadRequest) and error.description and "JSON" in str(error.description):
            message = "The body is not valid JSON."
        else:
            message = error.description or error.name
    payload["message"] = message
    response = jsonify(payload)
    response.status_code = error.code or 500
    response.headers.update(_headers(error))
    return response


def html_error_response(error: HTTPException):
    """Answer an error on a UI path with the error's headers (Retry-After, ETag).

    An HTML page, or plain text when the Host header could not be read: the page's links need it.
    """
    data = getattr(error, "data", None) or {}
    headers = _headers(error)
    message = data.get("message")
    if request_ctx.url_adapter is None:  # the Host header could not even be read: no page can link anywhere
        headers["Content-Type"] = "text/plain; charset=utf-8"
        return f"{error.code} {error.name}: {message or error.description}\n", error.code or 500, headers
    if (error.code or 500) >= 500:
        # The database may be what failed (down, or the tenant's schema mid-move): the page must not
        # ask it who is signed in, so it shows no one (the session itself is kept).
        current_app.login_manager._update_request_context_with_user()
    return render_template("error.html", error=error, message=message), error.code or 500, headers


def init_app(app: Flask) -> None:
    """Map domain errors once, stray database data errors to 422, lost write races to 409, crashes to a logged 500."""

    @app.errorhandler(DomainError)
    def domain_error(exc: DomainError):
        from app.extensions import db

        db.session.rollback()  # nothing the refused request queued may commit or be announced
        return respond(http_error(exc))

    @app.errorhandler(DataError)
    def data_error(exc: DataError):
        from app.extensions import db

        db.session.rollback()
        log.info("rejected by the database: %s", exc.orig)
        return respond(UnprocessableEntity("A value is out of range or malformed."))

    @app.errorhandler(IntegrityError)
    def integrity_error(exc: IntegrityError):
        """A write lost a race with another (a unique row inserted, or a referenced row deleted, in between): 409.

        Services check what they can first and say why; this answers for the moment between the
        check and the commit. Other constraint failures are bugs: 500.
        """
        if getattr(exc.orig, "sqlstate", None) not in RACES:
            return unexpected(exc)
        return lost_race(exc)

    @app.errorhandler(StaleDataError)
    def lost_race(exc: IntegrityError | StaleDataError):
        """Answer a write that lost a race with 409 to send again: the races above, and a row saved with its
        version guard that was changed meanwhile (services lock what they change; this is the safety net)."""
        from app.extensions import db

        db.session.rollback()
        log.info("a concurrent change got there first on %s %s: %s", request.method, request.path,
                 str(getattr(exc, "orig", None) or exc).splitlines()[0])
        return respond(http_error(Conflict("Another change got there first; send the request again.")))

    @app.errorhandler(PoolTimeout)
    def pool_exhausted(exc: PoolTimeout):
        from app.extensions import db

        db.session.rollback()
        log.warning("no database connection free for %s %s: %s", request.method, request.path, exc)
        return respond(http_error(Unavailable("The service is busy; try again shortly.")))

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def database_unavailable(exc: OperationalError | InterfaceError):
        """The database is down or restarting: fail fast with 503 and a hint when to retry.

        SQLAlchemy invalidates the pool on a lost connection, so once the database is back the
        next requests get fresh connections: nothing needs a restart.
        """
        from app.extensions import db

        try:
            db.session.rollback()
        except (OperationalError, InterfaceError):
            db.session.close()
        reason = str(exc.orig or exc).splitlines()[0]
        if getattr(exc.orig, "sqlstate", None) in CONCURRENT_CHANGE:  # the database is fine: another change won
            log.warning("concurrent change on %s %s: %s", request.method, request.path, reason)
            return respond(http_error(Unavailable("The request met another change made at the same moment; "
                                                  "try again.", retry_after=1)))
        log.warning("database unavailable on %s %s: %s", request.method, request.path, reason)
        return respond(http_error(Unavailable("The database is unavailable; try again shortly.", retry_after=2)))

    @app.errorhandler(ProgrammingError)
    @app.errorhandler(InternalError)
    def schema_gone(exc: ProgrammingError | InternalError):
        """A statement missed its tenant's schema: if the tenant is being moved to another shard, ask for a retry;
        if it was dropped meanwhile, answer as for any request of a tenant that is no more (404).

        Writes that waited out a move's freeze fail here, as do requests that still route to the
        old shard until every process has dropped what it cached. Anything else is a bug: 500.
        """
        from app.extensions import db
        from tenants import current_tenant_or_none, tenant_is_active, tenant_moved

        db.session.rollback()
        tenant = current_tenant_or_none()
        try:
            moved = tenant is not None and tenant_moved(tenant)
            gone = tenant is not None and not moved and not tenant_is_active(tenant.id)
        except (OperationalError, InterfaceError) as lost:  # the registry or the shard stopped answering too
            return database_unavailable(lost)
        except PoolTimeout as busy:
            return pool_exhausted(busy)
        if moved:
            log.info("%s %s met %s on the move: %s", request.method, request.path, tenant.slug,
                     str(exc.orig or exc).splitlines()[0])
            return respond(http_error(being_moved()))
        if gone:
            log.info("%s %s met %s dropped", request.method, request.path, tenant.slug)
            return respond(http_error(NotFound("No such organization.")))
        return unexpected(exc)

    @app.errorhandler(ReadDeadlinePassed)
    def body_too_slow(exc: ReadDeadlinePassed):
        """The client stopped sending the body, or sent it slower than the worker's deadline allows."""
        from app.extensions import db

        db.session.rollback()
        log.info("body too slow on %s %s", request.method, request.path)
        return respond(RequestTimeout("The request body did not arrive in time; send it again."))

    @app.errorhandler(ClientDisconnected)
    def body_cut_short(exc: ClientDisconnected):
        """Werkzeug's word for a body that stopped before its length: 408 when it was the worker's deadline."""
        if isinstance(exc.__context__, ReadDeadlinePassed):
            return body_too_slow(exc.__context__)
        return respond(exc)

    @app.errorhandler(ParseException)
    @app.errorhandler(NoMoreData)
    def unreadable_body(exc: ParseException | NoMoreData):
        """gunicorn reads a chunked body as the app reads it: a malformed chunk (or one cut off) is
        the client's, found only once a view or the input guard reads the body."""
        from app.extensions import db

        db.session.rollback()
        log.info("unreadable body on %s %s: %s", request.method, request.path, str(exc)[:200])
        return respond(BadRequest("The body's chunked transfer encoding is malformed or cut short."))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            raise exc
        log.exception("unhandled error on %s %s", request.method, request.path)
        return respond(InternalServerError())


def respond(error: HTTPException):
    """Answer an error in the contract's JSON on API paths and the health probes, else as a page."""
    if request.path == "/api" or request.path.startswith("/api/") or request.path in PROBES:
        return api_error_response(error)
    return html_error_response(error)
