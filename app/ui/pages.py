"""What every page shares: parsing through the API's schemas, the one mapping of refusals to words.

Pages parse a form or query string with the same marshmallow schema the API uses (so a page
accepts exactly what the API accepts, under the same field names), call the same service, and
present. A service refuses with a domain error; `refusals()` turns it into a `Refusal`: the
HTTP status a page answers with, a sentence for people, and messages per field to show beside
the inputs. That is the only place where page wording for refusals lives, as `app.http_errors`
is for the API; anything a view does not catch reaches the error page through `http_errors`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from flask import Response, g, jsonify, request
from marshmallow import Schema, ValidationError
from werkzeug.http import HTTP_STATUS_CODES

from app.errors import DomainError, Invalid, Stale
from app.extensions import db
from app.http_errors import http_error
from app.input_guard import check_query

# The service's sentence speaks of versions and If-Match; a person needs to hear what happened.
STALE_MESSAGE = ("Someone else changed this ticket while you were editing it, so nothing was saved. "
                 "The form now shows their changes; make yours again.")


@dataclass
class Refusal:
    """A refused request, in a page's terms: status, a sentence, and messages beside fields."""

    status: int
    message: str
    fields: dict[str, list[str]] = field(default_factory=dict)
    keep_input: bool = True  # show what was typed again (not when it is what went stale)

    def about(self, name: str) -> list[str]:
        return self.fields.get(name, [])


def refusal_of(error: DomainError) -> Refusal:
    """Return how a page words a domain error (the one mapping for pages).

    The error's headers (Retry-After on a 503) go on the page that answers (`refusal_headers`).
    """
    http = http_error(error)
    status = http.code or 500
    g.refusal_headers = dict(http.data.get("headers") or {})
    if isinstance(error, Stale):
        return Refusal(status, STALE_MESSAGE, keep_input=False)
    fields = {name.split(".")[0]: list(messages) for name, messages in (error.errors or {}).items()}
    return Refusal(status, error.message, fields)


def refusal_headers(response: Response) -> Response:
    """Give a refused page the headers its error carries (an after-request hook)."""
    headers = g.pop("refusal_headers", None)
    if headers and response.status_code >= 400:
        response.headers.update(headers)
    return response


def wants_json() -> bool:
    """Tell whether the page's own script sent this form and asked for JSON instead of a page."""
    return request.accept_mimetypes.best == "application/json"


def refusal_json(refused: Refusal) -> tuple[Response, int]:
    """Return a refusal as the API words it, for a page's script: message, status, errors per field."""
    body: dict[str, Any] = {"code": refused.status, "status": HTTP_STATUS_CODES.get(refused.status, "Error"),
                            "message": refused.message}
    if refused.fields:
        body["errors"] = refused.fields
    return jsonify(body), refused.status


class refusals:
    """Run a service call; if it refuses, roll back and keep the refusal instead of raising.

        with refusals() as refused:
            ticket = services.update_ticket(...)
            db.session.commit()
        if refused:
            return render_page(refused)
    """

    def __init__(self) -> None:
        self.refusal: Refusal | None = None

    def __enter__(self) -> refusals:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 _tb: TracebackType | None) -> bool:
        if isinstance(error, DomainError):
            db.session.rollback()  # nothing the refused change queued may commit or be announced
            self.refusal = refusal_of(error)
            return True
        return False

    def __bool__(self) -> bool:
        return self.refusal is not None


def read_form(schema: Schema, *, checkboxes: Iterable[str] = (), only: Iterable[str] | None = None,
              form: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Load the submitted form through an API schema: the same rules and field names as the API.

    An empty text box is "not given", or null for a field that may be null (an empty `category`
    clears it); a checkbox is true when sent. (The input guard has checked every field's text before
    the view ran, or the view read a streamed form with `form`.) Raises Invalid with messages per field.
    """
    submitted = request.form if form is None else form
    names = set(only) if only is not None else set(schema.load_fields)
    boxes = set(checkboxes)
    raw: dict[str, Any] = {}
    blank: dict[str, list[str]] = {}
    for name in names:
        loader = schema.load_fields.get(name)
        if loader is None:
            continue
        if name in boxes:
            raw[name] = name in submitted
            continue
        if name not in submitted:
            continue
        value = submitted[name]
        if value.strip() == "":
            if loader.allow_none:
                raw[name] = None
            elif loader.required:
                blank[name] = ["This is required."]
            continue  # not given: the schema's default applies
        raw[name] = value
    try:
        loaded = schema.load(raw)
    except ValidationError as err:
        raise Invalid("Please fix the fields marked below.", {**field_messages(err.messages), **blank}) from None
    if blank:
        raise Invalid("Please fix the fields marked below.", blank)
    return loaded


def read_query(schema: Schema, names: Iterable[str]) -> dict[str, Any]:
    """Load the query string's `names` through an API schema (others are the page's own); raise Invalid."""
    check_query()
    raw = {n: request.args.get(n) for n in names if request.args.get(n, "") != ""}
    try:
        return schema.load(raw)
    except ValidationError as err:
        raise Invalid("Please fix the filters marked below.", field_messages(err.messages)) from None


def field_messages(messages: dict) -> dict[str, list[str]]:
    """Return marshmallow's messages by form field, in plain words (a list field's, all of its items')."""
    out: dict[str, list[str]] = {}
    for name, value in messages.items():
        if isinstance(value, dict):  # a list field's messages by index
            value = [m for sub in value.values() for m in (sub if isinstance(sub, list) else [sub])]
        out[str(name)] = [_plain(m) for m in (value if isinstance(value, list) else [value])]
    return out


def _plain(message: str) -> str:
    """Say marshmallow's stock messages in plain words."""
    return {"Missing data for required field.": "This is required.",
            "Shorter than minimum length 1.": "This is required.",
            "Field may not be null.": "This is required."}.get(message, message)
