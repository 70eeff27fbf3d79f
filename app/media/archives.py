"""Check ZIP archives (and DOCX and XLSX, which are ZIPs) for bombs, hostile names and macros.

The central directory is read first and judged: entry count, total uncompressed size, the
ratio of each sizeable entry, encrypted entries (nothing can scan inside them), and names that
would escape the folder they are unpacked into (`../`, absolute paths, drive letters,
backslashes). Then every entry is decompressed once, counted as it goes: `zipfile` stops at
each entry's declared size and checks its CRC, so a directory that lies about sizes is caught
without ever inflating more than the declared total. What is inside decides between DOCX, XLSX
and plain ZIP; macro-enabled Office files are refused.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from app.media.types import DOCX, XLSX

RATIO_FLOOR = 1024 * 1024  # entries smaller than this may compress as well as they like
_DRIVE = re.compile(r"^[A-Za-z]:")


class ArchiveRefused(Exception):
    """The archive is unsafe or unreadable; the message says why."""


@dataclass(frozen=True)
class ArchiveLimits:
    max_entries: int
    max_uncompressed: int
    max_ratio: int


def inspect_archive(path: Path, limits: ArchiveLimits) -> str:
    """Return the archive's real type (ZIP, DOCX or XLSX), or raise ArchiveRefused."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            _check_directory(entries, limits)
            _inflate_all(archive, entries, limits)
            names = {e.filename for e in entries}
            return _office_type(archive, names)
    except ArchiveRefused:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError,
            RuntimeError, UnicodeDecodeError) as exc:
        raise ArchiveRefused(f"The archive cannot be read: {exc}") from exc


def unsafe_name(name: str) -> bool:
    """Tell whether an entry name would land outside the folder it is unpacked into."""
    if not name or "\x00" in name or "\\" in name or name.startswith("/") or _DRIVE.match(name):
        return True
    return any(part == ".." for part in name.split("/"))


def _check_directory(entries: list[zipfile.ZipInfo], limits: ArchiveLimits) -> None:
    if len(entries) > limits.max_entries:
        raise ArchiveRefused(f"The archive has {len(entries)} entries, more than the {limits.max_entries} allowed.")
    total = 0
    for entry in entries:
        if unsafe_name(entry.filename):
            raise ArchiveRefused(f"The archive has an entry that escapes its folder: {entry.filename[:200]!r}.")
        if entry.flag_bits & 0x1:
            raise ArchiveRefused("The archive is encrypted, so it cannot be checked for viruses.")
        total += entry.file_size
        if entry.file_size > RATIO_FLOOR and entry.file_size > limits.max_ratio * max(entry.compress_size, 1):
            raise ArchiveRefused(f"An entry expands {entry.file_size // max(entry.compress_size, 1)} times "
                                 f"(more than {limits.max_ratio}): a decompression bomb.")
    if total > limits.max_uncompressed:
        raise ArchiveRefused(f"The archive expands to {total} bytes, more than the {limits.max_uncompressed} "
                             f"allowed: a decompression bomb.")


def _inflate_all(archive: zipfile.ZipFile, entries: list[zipfile.ZipInfo], limits: ArchiveLimits) -> None:
    inflated = 0
    for entry in entries:
        if entry.is_dir():
            continue
        with archive.open(entry) as member:
            while chunk := member.read(1024 * 1024):
                inflated += len(chunk)
                if inflated > limits.max_uncompressed:
                    raise ArchiveRefused("The archive expands beyond the size allowed: a decompression bomb.")


def _office_type(archive: zipfile.ZipFile, names: set[str]) -> str:
    if "[Content_Types].xml" not in names:
        return "application/zip"
    with archive.open("[Content_Types].xml") as member:
        content_types = member.read(1024 * 1024).lower()
    if b"macroenabled" in content_types or any(n.lower().endswith("vbaproject.bin") for n in names):
        raise ArchiveRefused("Macro-enabled Office documents are not allowed.")
    if "word/document.xml" in names:
        return DOCX
    if "xl/workbook.xml" in names:
        return XLSX
    return "application/zip"
