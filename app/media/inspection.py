"""Decide what a stored file is and whether it may be served: type, structure, antivirus, images.

The order matters. The type comes first, from the bytes (libmagic), refined for ZIPs by what
is inside them, and must be on the tenant's list and agree with what the file claimed to be.
Archives are checked for bombs and hostile names before anything else reads into them. Then
the antivirus looks at the bytes as uploaded. Images are re-encoded last, so what is served is
never the uploaded file itself. Only `ScannerError` escapes (no verdict: the caller retries or
records `scan_failed`); every other outcome is a `Verdict`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import magic

from app.media import types
from app.media.archives import ArchiveLimits, ArchiveRefused, inspect_archive
from app.media.clamd import Clamd
from app.media.images import CleanImage, ImageRefused, check_pixels, reencode

SNIFF_BYTES = 64 * 1024
UNDECIDED = frozenset({"application/octet-stream"})


@dataclass(frozen=True)
class Checks:
    """What the scan checks against: the tenant's allowed types and the instance's limits."""

    allowed: frozenset[str]
    max_pixels: int
    archive: ArchiveLimits


@dataclass(frozen=True)
class Verdict:
    status: str  # clean, rejected or infected
    reason: str | None = None
    content_type: str | None = None
    antivirus: str | None = None  # "clamav", "off", or None when no antivirus looked
    image: CleanImage | None = None


ANTIVIRUS_OFF = "off"


def sniff(head: bytes) -> str:
    """Return libmagic's type for the first bytes of a file."""
    return types.canonical(magic.from_buffer(head, mime=True))


def plainly_not_allowed(sniffed: str, allowed: frozenset[str]) -> bool:
    """Tell whether a file's first bytes already show a type outside `allowed`.

    Undecided bytes pass, and so does anything that may still become an allowed type once the
    whole file is seen (a ZIP may be a DOCX; a text may be a CSV).
    """
    if sniffed in UNDECIDED or sniffed in allowed:
        return False
    if sniffed in types.ZIP_FAMILY:
        return not (allowed & types.ZIP_FAMILY)
    if sniffed in types.TEXT_FAMILY:
        return not (allowed & types.TEXT_FAMILY)
    return True


def detect(path: Path) -> str:
    """Return the real type of a file from its bytes, ZIPs refined into DOCX or XLSX by content later."""
    return types.canonical(magic.from_file(str(path), mime=True))


def inspect(path: Path, size: int, claim: str | None, checks: Checks, antivirus: Clamd | str,
            work_dir: Path) -> Verdict:
    """Return the verdict on a file; raise ScannerError when the antivirus gives none."""
    detected = detect(path)
    if detected in types.ZIP_FAMILY:
        try:
            detected = inspect_archive(path, checks.archive)
        except ArchiveRefused as exc:
            return Verdict("rejected", str(exc), detected)
    media_type = types.BY_TYPE.get(detected)
    if media_type is None:
        return Verdict("rejected", f"The content is {detected}, which is not an allowed type.", detected)
    if not types.compatible(claim, detected):
        return Verdict("rejected", f"The content is {media_type.name} but the file claims to be {claim}.", detected)
    if claim in types.TEXT_FAMILY:
        detected = claim  # a CSV's bytes are plain text; the name says which the person meant
    if detected not in checks.allowed:
        return Verdict("rejected", f"{types.BY_TYPE[detected].name} files are not allowed here.", detected)
    if media_type.is_image:
        try:
            check_pixels(path, detected, checks.max_pixels)  # before clamd, which would inflate a bomb
        except ImageRefused as exc:
            return Verdict("rejected", str(exc), detected)
    if antivirus == ANTIVIRUS_OFF:
        scanner = ANTIVIRUS_OFF
    else:
        with open(path, "rb") as stream:
            signature = antivirus.scan(stream, size)
        if signature is not None:
            return Verdict("infected", f"The antivirus found {signature}.", detected, "clamav")
        scanner = "clamav"
    image = None
    if media_type.is_image:
        try:
            image = reencode(path, detected, work_dir, checks.max_pixels)
        except ImageRefused as exc:
            return Verdict("rejected", str(exc), detected, scanner)
    return Verdict("clean", None, detected, scanner, image)
