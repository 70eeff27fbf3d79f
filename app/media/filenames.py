"""Make a client's file name safe to store and show; it never becomes part of a storage key.

Unicode is normalised (NFKC, so look-alike full-width slashes and dots become plain ones before
paths are cut off), only the last path segment is kept, control and format characters (NUL,
line breaks, right-to-left overrides, zero-width joiners) are dropped, characters Windows
forbids are replaced, and the result is capped at 200 characters with its extension kept.
"""

from __future__ import annotations

import re
import unicodedata

MAX_LENGTH = 200
FALLBACK = "attachment"
# Characters Windows refuses in names; a download named with them fails or is renamed.
_RESERVED = re.compile(r'[<>:"|?*]')
_SPACES = re.compile(r"\s+")
_WINDOWS_DEVICES = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$", re.IGNORECASE)


def sanitize_filename(raw: str | None) -> str:
    """Return a display name for an uploaded file that holds no path and no invisible characters."""
    name = unicodedata.normalize("NFKC", raw or "")
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] not in ("C", "Z") or c == " ")
    name = _RESERVED.sub("_", _SPACES.sub(" ", name)).strip(" .")
    if _WINDOWS_DEVICES.match(name):
        name = f"_{name}"
    if len(name) > MAX_LENGTH:
        stem, dot, ext = name.rpartition(".")
        if dot and stem and 0 < len(ext) <= 16:
            name = f"{stem[:MAX_LENGTH - len(ext) - 1].rstrip(' .')}.{ext}"
        else:
            name = name[:MAX_LENGTH].rstrip(" .")
    return name or FALLBACK
