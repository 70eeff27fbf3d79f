"""URLs of one spelling: converters that read a value one way only, as the API's fields do, and no
merging of repeated slashes."""

from __future__ import annotations

from flask import Flask
from werkzeug.routing import IntegerConverter


class AsciiInteger(IntegerConverter):
    """`<int:...>` of ASCII digits: Werkzeug's `\\d+` also matches other scripts' digits (fullwidth,
    Arabic-Indic), which `int()` reads, so `/tickets/by-number/` with a fullwidth 1 would be ticket 1."""

    regex = r"[0-9]+"


def init_app(app: Flask) -> None:
    """Install the converters; call before any route is added (a rule binds its converter when added).

    Werkzeug answers a path with doubled slashes (`/api/v1//tickets`) with a redirect to the
    merged one, an HTML 308 where the API promises JSON; such a path is simply not found.
    """
    app.url_map.converters["int"] = AsciiInteger
    app.url_map.merge_slashes = False
