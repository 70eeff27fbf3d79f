"""Make the OpenAPI document say exactly what the server does, in one place.

Most of the document comes from the marshmallow schemas and views; this module adds what they
cannot say themselves, for every operation at once, so no view can forget it:

- text fields refuse control characters (`app.input_guard`): each string a client sends gets
  the same `pattern`; an id, the one canonical spelling the server accepts;
- the rate-limit headers on every authenticated answer, and `Retry-After` on 429;
- `414` from the HTTP server (gunicorn, which answers it as HTML) when a request line passes
  `MAX_REQUEST_LINE`, on operations with query parameters: `tests/test_openapi.py` checks that
  the documented maxima of every operation's query fit in it;
- every content type an operation serves, where one view serves several;
- limits that are the instance's settings (the largest upload an organization may allow).
"""

from __future__ import annotations

from typing import Any

from flask_smorest import Api
from marshmallow import fields, validate

from app.schemas import OVERRIDES, UUID_PATTERN, VISIBLE_CHARACTER, Uuid

# app.input_guard refuses these in every string (NUL and C0/C1 controls but tab, LF and CR).
NO_CONTROL_CHARACTERS = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$"
# ...and a text that must not be blank holds at least one character a reader sees: neither a control
# character, white space, nor a zero-width or format character (`schemas.shows_something`).
_CONTROLS = "\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f"
NOT_BLANK = f"^[^{_CONTROLS}]*{VISIBLE_CHARACTER}[^{_CONTROLS}]*$"
# ...and a line read as a label (a ticket's title, its category) holds no override either
# (`schemas.shown_line`).
SHOWN_LINE = f"^[^{_CONTROLS}{OVERRIDES}]*{VISIBLE_CHARACTER}[^{_CONTROLS}{OVERRIDES}]*$"
MAX_REQUEST_LINE = 8190  # gunicorn's limit_request_line (gunicorn.conf.py)
RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": {"description": "Requests this key may make per minute.", "schema": {"type": "integer"}},
    "X-RateLimit-Remaining": {"description": "Requests left in the current minute.", "schema": {"type": "integer"}},
    "X-RateLimit-Reset": {"description": "Unix time when the minute ends.", "schema": {"type": "integer"}},
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}}}
URI_TOO_LONG = {"description": "The request line is longer than 8190 bytes; answered by the HTTP server, as HTML.",
                "content": {"text/html": {"schema": {"type": "string"}}}}
EXTRA_CONTENT_TYPES = {
    ("/api/v1/tickets/export", "get"): {
        "text/csv": {"type": "string", "description": "A header row, then one row per ticket."},
        "application/json": {"type": "array", "items": {"$ref": "#/components/schemas/Ticket"}},
        "application/x-ndjson": {"type": "string", "description": "One ticket (JSON) per line."},
    },
}
_installed: set[int] = set()


def text_pattern(self, field: fields.Field, **_kwargs: Any) -> dict[str, Any]:
    """Give each string a client may send the pattern the server enforces: an id's, else the input guard's."""
    if isinstance(field, Uuid) and not field.dump_only:
        return {"pattern": UUID_PATTERN}
    if not isinstance(field, fields.String) or isinstance(field, fields.UUID | fields.Email) or field.dump_only:
        return {}
    if any(isinstance(v, validate.Regexp | validate.OneOf) for v in _validators(field)):
        return {}
    if field.metadata.get("pattern"):
        return {}
    return {"pattern": NO_CONTROL_CHARACTERS}


def _validators(field: fields.Field) -> list:
    return list(field.validators) if field.validators else []


def init_app(api: Api) -> None:
    """Teach the schema converter the input guard's pattern (once per converter)."""
    converter = api.ma_plugin.converter
    if id(converter) not in _installed:
        converter.add_attribute_function(text_pattern)
        _installed.add(id(converter))


def finish(api: Api) -> None:
    """Add to every registered operation what applies to all of them."""
    spec = api.spec
    for path, operations in spec._paths.items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            public = operation.get("security") == []
            parameters = [p for p in (*operations.get("parameters", []), *operation.get("parameters", []))
                          if isinstance(p, dict)]
            if any(p.get("in") == "query" for p in parameters):
                responses.setdefault("414", URI_TOO_LONG)
            for parameter in parameters:  # Flask's `<uuid:...>` converter matches only this spelling
                if parameter.get("in") == "path" and parameter.get("schema", {}).get("format") == "uuid":
                    parameter["schema"]["pattern"] = UUID_PATTERN
            for code, response in list(responses.items()):
                if not isinstance(response, dict) or "$ref" in response:
                    continue
                if not public and code[0] in "2":
                    response.setdefault("headers", {}).update(RATE_LIMIT_HEADERS)
            for content_type, schema in EXTRA_CONTENT_TYPES.get((path, method), {}).items():
                responses["200"].setdefault("content", {})[content_type] = {"schema": schema}
    rule = spec.components.schemas.get("Rule")
    if rule is not None:  # a skills rule names its skills (app.assignment.services._check_rule)
        rule["anyOf"] = [
            {"properties": {"strategy": {"enum": ["round_robin", "least_loaded"]}}},
            {"properties": {"strategy": {"enum": ["skills"]}, "required_skills": {"minItems": 1}},
             "required": ["required_skills"]},
        ]
    settings = spec.components.schemas.get("MediaSettingsChange")
    if settings is not None:  # the instance's limit, which app.media.services.update_settings enforces
        settings["properties"]["max_size"]["maximum"] = api._app.config["MEDIA_MAX_SIZE"]
    errors = spec.components.responses
    for name in ("DEFAULT_ERROR", "UNPROCESSABLE_ENTITY"):
        if name in errors:
            errors[name].setdefault("headers", {}).update({**RATE_LIMIT_HEADERS, **RETRY_AFTER})
