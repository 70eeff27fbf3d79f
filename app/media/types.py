"""The file types a conversation accepts, and what a file claims to be by its name or header.

The list is fixed by the contract; a tenant may only narrow it. What a file *is* comes from its
bytes (libmagic, in `app.media.inspection`); what it *claims* to be comes from its name's
extension, or, without a known extension, from the Content-Type its client declared. The
extension wins because browsers derive the declared type from the operating system's table
(a CSV from Windows arrives as `application/vnd.ms-excel`), while the name is what a person
downloading the file will open it by. A claim outside the list is refused at upload (415); a
claim that the bytes contradict is `rejected` by the scan.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True)
class MediaType:
    content_type: str
    name: str
    extensions: tuple[str, ...]
    kind: str  # "image", "document", "text" or "archive": which checks the scan runs

    @property
    def is_image(self) -> bool:
        return self.kind == "image"


ALLOWED = (
    MediaType("image/png", "PNG image", (".png",), "image"),
    MediaType("image/jpeg", "JPEG image", (".jpg", ".jpeg", ".jpe", ".jfif"), "image"),
    MediaType("image/gif", "GIF image", (".gif",), "image"),
    MediaType("image/webp", "WebP image", (".webp",), "image"),
    MediaType("application/pdf", "PDF document", (".pdf",), "document"),
    MediaType("text/plain", "Plain text", (".txt", ".text", ".log"), "text"),
    MediaType("text/csv", "CSV table", (".csv",), "text"),
    MediaType(DOCX, "Word document (DOCX)", (".docx",), "archive"),
    MediaType(XLSX, "Excel workbook (XLSX)", (".xlsx",), "archive"),
    MediaType("application/zip", "ZIP archive", (".zip",), "archive"),
)
BY_TYPE = {t.content_type: t for t in ALLOWED}
BY_EXTENSION = {ext: t.content_type for t in ALLOWED for ext in t.extensions}
ALL_TYPES = tuple(BY_TYPE)
ZIP_FAMILY = frozenset({"application/zip", DOCX, XLSX})
TEXT_FAMILY = frozenset({"text/plain", "text/csv"})

# Names that run code when opened, or are rendered as active content by a browser. Python's
# own table calls many of them application/octet-stream, which would make them claim nothing.
EXECUTABLE_EXTENSIONS = frozenset({
    ".exe", ".dll", ".com", ".bat", ".cmd", ".msi", ".msp", ".scr", ".pif", ".cpl", ".msc", ".lnk",
    ".vbs", ".vbe", ".js", ".jse", ".mjs", ".wsf", ".wsh", ".hta", ".ps1", ".psm1", ".reg", ".sh",
    ".bash", ".zsh", ".csh", ".command", ".app", ".jar", ".apk", ".deb", ".rpm", ".dmg", ".pkg",
    ".iso", ".img", ".elf", ".so", ".dylib", ".bin", ".run", ".php", ".phtml", ".py", ".pl", ".rb",
    ".html", ".htm", ".xhtml", ".shtml", ".svg", ".svgz", ".xml", ".swf", ".docm", ".xlsm", ".pptm",
    ".dotm", ".xltm",
})
EXECUTABLE = "application/x-executable"
# What clients declare for "some bytes": no claim at all.
GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream", "application/unknown",
                           "application/x-download", "application/download", "application/force-download"})
# Other names clients use for allowed types.
ALIASES = {
    "image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png",
    "application/x-zip-compressed": "application/zip", "application/x-zip": "application/zip",
    "application/zip-compressed": "application/zip", "multipart/x-zip": "application/zip",
    "text/comma-separated-values": "text/csv", "application/csv": "text/csv",
    "application/x-pdf": "application/pdf",
}
# Only Python's built-in table, never the machine's /etc/mime.types: the same answer everywhere.
_BUILTIN = mimetypes.MimeTypes(filenames=())


# Text that a browser would render as active content, or a document format in text clothing:
# never "plain text", whatever libmagic's text/ prefix says. Other text/* (a log libmagic calls
# C source, a shell script) is plain text to a help desk, served as text/plain.
NOT_PLAIN_TEXT = frozenset({"text/html", "text/xml", "text/javascript", "text/ecmascript", "text/rtf",
                            "text/x-sgml", "text/vnd.wap.wml"})


def canonical(content_type: str) -> str:
    """Return the allowed type a content type amounts to (text/x-c is plain text), else it unchanged."""
    content_type = ALIASES.get(content_type, content_type)
    if content_type.startswith("text/") and content_type not in TEXT_FAMILY and content_type not in NOT_PLAIN_TEXT:
        return "text/plain"
    return content_type


def normalise_declared(value: str | None) -> str | None:
    """Return a client's declared Content-Type as a bare lower-case type, or None if it says nothing."""
    if not value:
        return None
    bare = value.split(";", 1)[0].strip().lower()
    if "/" not in bare or len(bare) > 100 or not bare.isascii() or any(c.isspace() for c in bare):
        return None
    return None if bare in GENERIC_TYPES else canonical(bare)


def extension_of(filename: str) -> str:
    """Return the lower-case last extension of a (sanitised) name, with its dot, or ""."""
    stem, dot, ext = filename.rpartition(".")
    return f".{ext.lower()}" if dot and stem and ext else ""


def type_of_extension(extension: str) -> str | None:
    """Return the type a name's extension claims, or None for an extension that claims nothing."""
    if not extension:
        return None
    if extension in BY_EXTENSION:
        return BY_EXTENSION[extension]
    if extension in EXECUTABLE_EXTENSIONS:
        return EXECUTABLE
    guessed, _ = _BUILTIN.guess_type(f"x{extension}", strict=False)
    return normalise_declared(guessed)


def claimed_type(filename: str, declared: str | None) -> str | None:
    """Return the type a file claims: by its name's extension, else by its declared type."""
    return type_of_extension(extension_of(filename)) or declared


def compatible(claim: str | None, detected: str) -> bool:
    """Tell whether bytes of type `detected` honour the claim (text and CSV are both plain text)."""
    if claim is None or claim == detected:
        return True
    return claim in TEXT_FAMILY and detected in TEXT_FAMILY


def download_name(filename: str, content_type: str) -> str:
    """Return the name to download a file by: its own, with the right extension added if it lacks one."""
    media_type = BY_TYPE.get(content_type)
    if media_type is None or extension_of(filename) in media_type.extensions:
        return filename
    if content_type in TEXT_FAMILY and extension_of(filename) in ("", *BY_TYPE["text/plain"].extensions,
                                                                     *BY_TYPE["text/csv"].extensions):
        return filename
    return f"{filename}{media_type.extensions[0]}"
