"""Reading the admin pages' forms and query strings through the API's own schemas.

A form's text is what a person typed; the API's schemas take JSON types. This turns the text into
those types the way a person means it (a comma-separated list is a list, a number box an integer,
a checkbox a boolean, an empty optional box null or nothing), then loads it through the same
schema as the API, so a page accepts exactly what the API accepts, refused in the same words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from flask import request
from marshmallow import Schema, ValidationError

from app.errors import Invalid
from app.input_guard import check_query
from app.ui.pages import field_messages

_INTEGER = re.compile(r"[+-]?[0-9]{1,12}")  # ASCII digits only: int() also reads fullwidth ones
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def split_list(text: str) -> list[str]:
    """Return the items of a comma-separated list, trimmed, without empties."""
    return [item.strip() for item in text.split(",") if item.strip()]


def read_fields(schema: Schema, form: Mapping | None = None, *, text: Iterable[str] = (),
                numbers: Iterable[str] = (), lists: Iterable[str] = (), checkboxes: Iterable[str] = (),
                choices: Iterable[str] = (), partial: bool = False) -> dict[str, Any]:
    """Load the submitted form's fields through `schema`; raise Invalid with messages beside each field.

    `partial`: fields left out are not required (a change of some fields of a thing), and left as they are.
    """
    form = request.form if form is None else form
    raw: dict[str, Any] = {}
    for name in text:
        if name in form:
            value = form[name]
            if value.strip():
                raw[name] = value
            elif schema.fields[name].allow_none:
                raw[name] = None
    for name in numbers:
        value = form.get(name, "").strip()
        if value:
            raw[name] = int(value) if _INTEGER.fullmatch(value) else value
        elif name in form and schema.fields[name].allow_none:
            raw[name] = None
    for name in lists:
        if name in form:
            raw[name] = split_list(form[name])
    shown = set(form.getlist("shown")) if hasattr(form, "getlist") else set()
    for name in checkboxes:
        # A browser leaves an unticked box out: in a change of some fields, only a box the form says it
        # shows (`checkbox` in the pages' macros) reads as unticked; one a script left out stays as it is.
        if name in form or not partial or name in shown:
            raw[name] = name in form
    for name in choices:  # boxes too: read as checkboxes are
        if name in form or not partial or name in shown:
            raw[name] = [v for v in form.getlist(name) if v]
    try:
        return schema.load(raw, partial=partial)
    except ValidationError as err:
        raise Invalid("Please fix the fields marked below.", field_messages(err.messages)) from None


def query_values(names: Iterable[str], multi: Iterable[str] = (), days: Iterable[str] = ()) -> dict[str, str]:
    """Return the query string's `names` as the API would get them: `multi` joined by commas, `days`
    (a date box's YYYY-MM-DD) as midnight UTC; empty values left out."""
    check_query()
    raw: dict[str, str] = {}
    multi, days = set(multi), set(days)
    for name in names:
        if name in multi:
            values = [v for value in request.args.getlist(name) for v in value.split(",") if v]
            if values:
                raw[name] = ",".join(values)
            continue
        value = request.args.get(name, "").strip()
        if not value:
            continue
        raw[name] = f"{value}T00:00:00Z" if name in days and _DAY.fullmatch(value) else value
    return raw


def load_query(schema: Schema, raw: dict[str, str]) -> dict[str, Any]:
    """Load query values through an API schema; raise Invalid naming the filters to fix."""
    try:
        return schema.load(raw)
    except ValidationError as err:
        raise Invalid("Please fix the filters marked below.", field_messages(err.messages)) from None
