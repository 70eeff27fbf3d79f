"""The layout every page shares: navigation by role, asset URLs, and the helpers templates use.

Sections register themselves with the roles that may open them (`add_section`); the navigation
shows the signed-in user only those. A later area (the admin dashboard, settings) adds its own
sections from its `init_app` and reuses `templates/base.html`, `templates/ui/macros.html` and
`app/static/app.css` as they are.

Assets are served by the app itself (no CDN: the product works offline) with a content hash in
the URL, so a browser may keep them while they are unchanged and fetches them again when they
change.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

from flask import Flask, Response, current_app, g, request, url_for
from flask_login import current_user
from markupsafe import Markup

from app.markdown import message_markup, render_markup
from app.people.models import ROLES, STAFF_ROLES
from app.ui.pages import refusal_headers

EVERYONE = ROLES
STAFF = STAFF_ROLES
SECTIONS = "tms_ui_sections"


@dataclass(frozen=True)
class Section:
    """A place in the navigation: its label, where it goes, who sees it, and which pages belong to it."""

    label: str
    endpoint: str
    roles: tuple[str, ...]
    pages: tuple[str, ...] = ()

    def is_current(self) -> bool:
        return request.endpoint in (self.endpoint, *self.pages)


def init_app(app: Flask) -> None:
    app.extensions.setdefault(SECTIONS, [])
    app.context_processor(_layout_context)
    app.jinja_env.filters.update(markdown=render_markup, message_html=message_markup, ago=ago, when=when, iso=iso,
                                 pairs=pairs, filesize=filesize)
    app.jinja_env.globals.update(asset=asset, first_page_url=first_page_url, next_page_url=next_page_url)
    app.after_request(_cache_assets)
    app.after_request(refusal_headers)


def first_page_url() -> str:
    """Return this page's URL without its cursor (the first page of the same filters)."""
    params = [(k, v) for k, v in request.args.items(multi=True) if k != "cursor"]
    return request.script_root + request.path + (f"?{urlencode(params)}" if params else "")


def next_page_url(cursor: str) -> str:
    """Return this page's URL with the same filters, at `cursor`."""
    params = [(k, v) for k, v in request.args.items(multi=True) if k != "cursor"] + [("cursor", cursor)]
    return f"{request.script_root}{request.path}?{urlencode(params)}"


def add_section(app: Flask, section: Section) -> None:
    """Show `section` in the navigation of users whose role is in `section.roles`."""
    app.extensions.setdefault(SECTIONS, []).append(section)


def sections_for(role: str) -> list[Section]:
    return [s for s in current_app.extensions.get(SECTIONS, []) if role in s.roles]


def _layout_context() -> dict:
    organization = g.get("organization")
    if not current_user or not current_user.is_authenticated:
        return {"nav_sections": [], "organization": organization}
    return {"nav_sections": sections_for(current_user.role), "organization": organization}


_digests: dict[Path, str] = {}


def asset(filename: str) -> str:
    """Return the URL of a static file, with its content hash so browsers refetch it when it changes."""
    path = Path(current_app.static_folder or "") / filename
    digest = _digests.get(path)
    if digest is None or current_app.debug:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        _digests[path] = digest
    return url_for("static", filename=filename, v=digest)


def _cache_assets(response: Response) -> Response:
    # Pages are `no-store` (app/security_headers.py); an asset URL changes with its content.
    if request.endpoint == "static" and "v" in request.args and response.status_code == 200:
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


def ago(moment: datetime | None, now: datetime | None = None) -> str:
    """Say how long ago `moment` was, the way a queue's age column does: "4 min", "3 h", "2 d"."""
    if moment is None:
        return ""
    seconds = max(((now or datetime.now(UTC)) - moment).total_seconds(), 0)
    if seconds < 60:
        return "just now"
    for size, unit in ((86400 * 365, "y"), (86400 * 30, "mo"), (86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return "just now"


def when(moment: datetime | None) -> str:
    """Return a moment as a short UTC date and time; the page's script shows it in local time."""
    return moment.astimezone(UTC).strftime("%b %-d, %H:%M UTC") if moment else ""


def filesize(size: int | None) -> str:
    """Say a file's size the short way: "812 B", "14 KB", "3.2 MB"."""
    if size is None:
        return ""
    for limit, unit in ((1024**3, "GB"), (1024**2, "MB"), (1024, "KB")):
        if size >= limit:
            value = size / limit
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{size} B"


def pairs(values) -> list[tuple[str, str]]:
    """Return (value, label) options for a select whose labels are its values."""
    return [(v, v) for v in values]


def iso(moment: datetime | None) -> Markup:
    return Markup(moment.isoformat()) if moment else Markup("")
