"""URL converters that read one spelling of a value only, as the API's fields do."""

from __future__ import annotations

from flask import Flask
from werkzeug.routing import IntegerConverter


class AsciiInteger(IntegerConverter):
    """`<int:...>` of ASCII digits: Werkzeug's `\\d+` also matches other scripts' digits (fullwidth,
    Arabic-Indic), which `int()` reads, so `/tickets/by-number/` with a fullwidth 1 would be ticket 1."""

    regex = r"[0-9]+"


def init_app(app: Flask) -> None:
    """Install the converters; call before any route is added (a rule binds its converter when added)."""
    app.url_map.converters["int"] = AsciiInteger
