"""One guarded decoder for untrusted JSON and text: API bodies, query strings and socket frames.

Everything behind it sees well-formed values only. It refuses, in the contract's error shape:
- a body over `JSON_MAX_BYTES` (413), bytes that are not UTF-8 or text that is not JSON, including
  `NaN`/`Infinity` and numbers too long to read (400);
- numbers too large for a float (`1e999`, which Python reads as infinity and would echo back as
  `Infinity`, which is not JSON), wherever they are nested (400, naming the field);
- strings holding a lone UTF-16 surrogate (`"\\ud800"`), which Python decodes but no encoder or
  PostgreSQL will take (400: it is not Unicode text);
- nesting deeper than `MAX_DEPTH` (422);
- NUL and other control characters (except tab, line feed and carriage return) in any string,
  key or query value (422, naming each field): PostgreSQL text cannot hold NUL, and control
  characters in names and titles are how terminal and log injection starts.

The API's request parser reads the body this module decoded (see `app.extensions.Blueprint`), so
a body is decoded once, here. Pages' form fields pass the same text checks.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any
from urllib.parse import unquote_to_bytes

from flask import Flask, current_app, request
from webargs.core import is_json, missing

from app.errors import MAX_FIELD_ERRORS, DomainError
from app.extensions import is_api_request

MAX_DEPTH = 32
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
NUL_MESSAGE = "NUL characters are not allowed."
NOT_FINITE = "The number is too large to represent."
CONTROL_MESSAGE = "Control characters are not allowed."
CACHED = "tms.json_body"
NOT_UTF8_FORM = "The form is not UTF-8 text."
PAGE_FORM_TYPES = "A page's form is sent as application/x-www-form-urlencoded or multipart/form-data, not JSON."
NAMELESS_FIELD = "Every field of a form needs a name."


class BadInput(DomainError):
    """Input that cannot be decoded safely; `status` is the HTTP code that refuses it."""

    def __init__(self, status: int, message: str, errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message, errors)
        self.status = status


def init_app(app: Flask) -> None:
    app.before_request(guard_request)


def keep_form_bodies(app: Flask) -> None:
    """Keep a page's URL-encoded form body as it came, for `check_form`; call it before anything that
    reads the form (CSRF's check does), as Werkzeug parses it from that copy then, not the stream."""

    @app.before_request
    def keep_form_body() -> None:
        if (request.mimetype == "application/x-www-form-urlencoded" and not is_api_request()
                and request.method not in ("GET", "HEAD", "OPTIONS")):
            request.get_data(cache=True)


class _TwiceGiven(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build a JSON object, refusing a key given twice: the last would win here, where a proxy or
    filter in front may have read the first."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        raise _TwiceGiven(next(key for key, _ in pairs if key in seen or seen.add(key)))
    return value


def decode_json(raw: bytes | str, max_bytes: int) -> Any:
    """Return the JSON value in `raw`, or raise BadInput saying what is wrong with it."""
    value = parse_json(raw, max_bytes)
    check_value(value)
    return value


def parse_json(raw: bytes | str, max_bytes: int) -> Any:
    """Return the JSON value in `raw` before `check_value` has looked at its text and numbers, or raise
    BadInput if it is too large or not JSON."""
    if len(raw) > max_bytes:
        raise BadInput(413, f"The body is larger than {max_bytes} bytes.")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput(400, "The body is not UTF-8 text.") from None
    try:
        value = json.loads(raw, parse_constant=_no_constant, object_pairs_hook=_object)
    except RecursionError:
        raise BadInput(422, f"The JSON is nested more than {MAX_DEPTH} levels deep.") from None
    except _TwiceGiven as exc:
        raise BadInput(400, f"The body gives the key {exc.key[:64]!r} twice in one object.") from None
    except ValueError:
        raise BadInput(400, "The body is not valid JSON.") from None
    return value


def check_value(value: Any) -> None:
    """Raise BadInput if a decoded JSON value is too deep, holds text we refuse or a number that is
    not finite (iteratively)."""
    bad: dict[str, list[str]] = {}
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack and len(bad) < MAX_FIELD_ERRORS:
        item, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadInput(422, f"The JSON is nested more than {MAX_DEPTH} levels deep.")
        if isinstance(item, str):
            _check_text(item, path or "body", bad)
        elif isinstance(item, float) and not math.isfinite(item):
            raise BadInput(400, NOT_FINITE, {path or "body": [NOT_FINITE]})
        elif isinstance(item, dict):
            for key, child in item.items():
                name = f"{path}.{key}" if path else str(key)
                if _check_text(key, name, bad):
                    stack.append((child, name, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{path}.{i}" if path else str(i), depth + 1) for i, child in enumerate(item))
    if bad:
        raise BadInput(422, next(iter(bad.values()))[0], bad)


def check_query() -> None:
    """Raise BadInput if the query string is not UTF-8, or a parameter's name or value holds text we refuse.

    (Werkzeug would replace bytes that are not UTF-8 with U+FFFD and carry on.)
    """
    try:
        unquote_to_bytes(request.query_string.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(400, "The query string is not UTF-8.") from None
    bad: dict[str, list[str]] = {}
    for name, value in request.args.items(multi=True):
        if _check_text(name, name or "query", bad):
            _check_text(value, name, bad)
    if bad:
        raise BadInput(422, next(iter(bad.values()))[0], bad)


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def guard_request() -> None:
    """Decode and check an API request's query and JSON body once, or a page's form fields."""
    if not is_api_request():
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return
        if is_json(request.mimetype):  # Flask-WTF would read it as the form's fields, of any type and shape
            raise BadInput(415, PAGE_FORM_TYPES)
        if request.mimetype in FORM_TYPES and not streams_body(request.endpoint):
            check_form()
        return
    if request.query_string:
        check_query()
    if request.method in ("GET", "HEAD", "OPTIONS", "DELETE"):
        return
    if not is_json(request.mimetype):
        if has_body() and not streams_body(request.endpoint):  # ignored, it would read as "no changes"
            raise BadInput(415, "The body must be JSON, sent with Content-Type: application/json.")
        return
    limit = current_app.config["JSON_MAX_BYTES"]
    if request.content_length is not None and request.content_length > limit:
        raise BadInput(413, f"The body is larger than {limit} bytes.")
    raw = _read_body(limit + 1)  # a chunked body has no length: read one byte past the limit
    # Only an empty body is no body: white space alone is no JSON text (RFC 8259), so it is refused as one.
    request.environ[CACHED] = decode_json(raw, limit) if raw else missing
    request._cached_data = raw


def _read_body(most: int) -> bytes:
    """Read the body up to `most` bytes. The request's own limit is raised to `most` first: at the
    limit (`MAX_CONTENT_LENGTH`, the JSON limit) a chunked body over it was cut off there, to be read
    as whole (a padded one was taken). And one read may return less than asked, so read until done."""
    request.max_content_length = most
    stream, chunks, size = request.stream, [], 0
    while size < most and (chunk := stream.read(most - size)):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def has_body() -> bool:
    """Tell whether the request carries a body (a length above 0, or chunks)."""
    return bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def streams_body(endpoint: str | None) -> bool:
    """Tell whether a view reads its body itself, as it arrives: a page's multipart form
    (`app.media.page_forms`), or an API upload (a view class with `streams_body = True`).

    Such a page view checks its fields with `check_fields` and its CSRF token itself: parsing
    `request.form` here would read (and spool) the whole body, files included, first.
    """
    view = current_app.view_functions.get(endpoint or "")
    view_class = getattr(view, "view_class", None)
    return bool(getattr(view, "streams_body", False) or getattr(view_class, "streams_body", False))


def check_form() -> None:
    """Raise BadInput if a page's form is not UTF-8, or a field holds text we refuse (as the API would).

    Werkzeug would re-quote escapes that are not UTF-8 in a URL-encoded form (`%FF` stays those
    three characters) and put U+FFFD for such bytes in a multipart field, then carry on. The first
    are found in the raw body (`keep_form_bodies`; Werkzeug reads all of it anyway); in a multipart
    form, which no page sends but a file's, U+FFFD is taken to be such a byte.
    """
    if request.mimetype == "application/x-www-form-urlencoded":
        try:
            unquote_to_bytes(request.get_data(cache=True).replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            raise BadInput(400, NOT_UTF8_FORM) from None
    else:
        if None in request.form:  # Werkzeug files a multipart part that has no name under the key None
            raise BadInput(400, NAMELESS_FIELD)
        if any("\ufffd" in name or "\ufffd" in value for name, value in request.form.items(multi=True)):
            raise BadInput(400, NOT_UTF8_FORM)
    check_fields(request.form)


def check_fields(form) -> None:
    """Raise BadInput if a field of a form (a MultiDict) holds text we refuse."""
    bad: dict[str, list[str]] = {}
    for name, value in form.items(multi=True):
        if _check_text(name, name or "form", bad):
            _check_text(value, name, bad)
    if bad:
        raise BadInput(422, next(iter(bad.values()))[0], bad)


def json_body() -> Any:
    """Return the body `guard_request` decoded (`webargs.missing` when there was none)."""
    return request.environ.get(CACHED, missing)


def _check_text(text: str, name: str, bad: dict[str, list[str]]) -> bool:
    if _SURROGATE.search(text):
        raise BadInput(400, "The text is not valid Unicode (it holds a lone surrogate).",
                       {name: ["Not valid Unicode."]})
    found = _CONTROL.search(text)
    if found is None:
        return True
    bad.setdefault(name, []).append(NUL_MESSAGE if found.group() == "\x00" else CONTROL_MESSAGE)
    return False


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")
