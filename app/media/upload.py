"""Read the `file` part of a multipart/form-data body as it arrives, never the whole body at once.

Werkzeug's form parser would spool the body to a temporary file before the view sees any of it;
its sans-IO decoder instead turns each chunk read from the socket into events, so the caller
can check limits and write to storage chunk by chunk, and stop reading (413, 415) the moment a
limit is crossed. Memory stays at one read chunk plus the decoder's small look-behind buffer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, TypeVar

from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.http import parse_options_header
from werkzeug.sansio.multipart import NEED_DATA, Data, Epilogue, Field, File, MultipartDecoder

from app.errors import Invalid, Malformed, TooLarge, UnsupportedType
from app.gunicorn_worker import ReadDeadlinePassed

READ_SIZE = 256 * 1024
FIELD = "file"
MAX_PARTS = 20
MAX_OTHER_BYTES = 64 * 1024  # form fields besides the file are read and dropped, up to this much
MAX_DECODER_BUFFER = 2 * READ_SIZE + 64 * 1024
TRUNCATED = "The upload ended before the file was complete."
T = TypeVar("T")
# Old browsers send the whole Windows path, unescaped; a quoted-string parser reads its
# backslashes as escapes and glues the folders onto the name.
_WINDOWS_PATH = re.compile(r'filename="((?:[A-Za-z]:\\|\\\\)[^"]*)"')


@dataclass(frozen=True)
class FilePart:
    filename: str | None
    content_type: str | None


class MultipartStream:
    """A multipart/form-data body decoded as it is read: events, one read chunk at a time."""

    def __init__(self, stream: BinaryIO, content_type: str | None, max_parts: int = MAX_PARTS) -> None:
        mimetype, options = parse_options_header(content_type or "")
        boundary = options.get("boundary", "")
        if mimetype.lower() != "multipart/form-data":  # media types are case-insensitive
            raise UnsupportedType("Send the file as multipart/form-data, in a part named file.")
        if not boundary or len(boundary) > 200 or not boundary.isascii():
            raise Malformed("The multipart body has no usable boundary.")
        self._stream = stream
        self._decoder = MultipartDecoder(boundary.encode(), max_form_memory_size=MAX_DECODER_BUFFER,
                                         max_parts=max_parts)
        self._events = self._read_events()

    def _read_events(self) -> Iterator[object]:
        ended = False
        while True:
            try:
                event = self._decoder.next_event()
            except (ValueError, TypeError, AttributeError, UnicodeDecodeError, RequestEntityTooLarge) as exc:
                raise Malformed(TRUNCATED if ended else "The multipart body is malformed.") from exc
            if event is NEED_DATA:
                if ended:
                    raise Malformed(TRUNCATED)
                try:
                    chunk = self._stream.read(READ_SIZE)
                except ClientDisconnected as exc:
                    if isinstance(exc.__context__, ReadDeadlinePassed):
                        raise  # a client that stopped sending: 408 (`app.http_errors`), to send again
                    raise Malformed(TRUNCATED) from exc
                ended = not chunk
                try:
                    self._decoder.receive_data(chunk or None)
                except RequestEntityTooLarge as exc:
                    raise Malformed("The multipart body is malformed.") from exc
                continue
            yield event
            if isinstance(event, Epilogue):
                return

    def chunks(self) -> Iterator[bytes]:
        """Yield the current part's bytes as they arrive; raise Malformed if the body ends before the part does."""
        for event in self._events:
            if not isinstance(event, Data):
                raise Malformed(TRUNCATED)
            if event.data:
                yield event.data
            if not event.more_data:
                return
        raise Malformed(TRUNCATED)


class MultipartFile(MultipartStream):
    """The `file` part of one multipart body: `part` once its headers are read, then `chunks()`."""

    def __init__(self, stream: BinaryIO, content_type: str | None) -> None:
        super().__init__(stream, content_type)
        self.part = self._find_file()

    def _find_file(self) -> FilePart:
        other = 0
        in_other_part = False
        for event in self._events:
            if isinstance(event, File) and event.name == FIELD:
                windows = _WINDOWS_PATH.search(event.headers.get("Content-Disposition", ""))
                filename = windows.group(1).rsplit("\\", 1)[-1] if windows else event.filename
                return FilePart(filename, event.headers.get("Content-Type"))
            if isinstance(event, File | Field):
                in_other_part = True
            elif isinstance(event, Data) and in_other_part:
                other += len(event.data)
                if other > MAX_OTHER_BYTES:
                    raise Malformed("Only a part named file may carry data.")
        raise Invalid.field(FIELD, "Missing data for required field.", "Send the file in a part named file.")

    def finish(self) -> None:
        """Read the rest of the body once the file's bytes are taken: another file in it is refused
        (one file a request; a second one was dropped without a word), other fields are read and dropped,
        and so is a file input left empty (a part with no name and no bytes)."""
        other = 0
        in_file = False
        for event in self._events:
            if isinstance(event, File | Field):
                in_file = isinstance(event, File)
            elif isinstance(event, Data):
                if in_file and event.data:
                    raise Invalid.field(FIELD, "Send one file per request.")
                other += len(event.data)
                if other > MAX_OTHER_BYTES:
                    raise Malformed("Only a part named file may carry data.")


MAX_FORM_PARTS = 64
MAX_FIELD_BYTES = 512 * 1024  # a page form's text fields together (a message body is at most 64 Ki characters)


class StreamedForm(MultipartStream):
    """A page's multipart form: its text fields read whole, its files handed on part by part as they arrive.

    Browsers send a form's parts in the order of its inputs, the CSRF token first; `before_files`
    runs once, with the fields read so far, before the first file's bytes are taken, so a forged
    post stores nothing. An empty file input (no file chosen) is skipped.
    """

    def __init__(self, stream: BinaryIO, content_type: str | None) -> None:
        super().__init__(stream, content_type, max_parts=MAX_FORM_PARTS)
        self.fields: MultiDict = MultiDict()  # what has been read so far, even if reading stops early

    def read(self, take: Callable[[FilePart, Iterator[bytes]], T],
             before_files: Callable[[MultiDict], None]) -> tuple[MultiDict, list[T]]:
        """Read the whole body; return its text fields and what `take` returned for each file."""
        fields = self.fields
        taken: list[T] = []
        text_bytes = 0
        checked = False
        for event in self._events:
            if isinstance(event, Field | File) and not event.name:
                raise Malformed("A part of the form has no name.")
            if isinstance(event, Field):
                raw = bytearray()
                for chunk in self.chunks():
                    text_bytes += len(chunk)
                    if text_bytes > MAX_FIELD_BYTES:
                        raise TooLarge(f"The form's text is larger than {MAX_FIELD_BYTES // 1024} KiB.")
                    raw += chunk
                try:
                    fields.add(event.name, raw.decode("utf-8"))
                except UnicodeDecodeError:
                    raise Malformed("The form's text is not UTF-8.") from None
            elif isinstance(event, File):
                if event.name != FIELD:
                    raise Invalid.field(event.name, "Only the file field may carry files.")
                windows = _WINDOWS_PATH.search(event.headers.get("Content-Disposition", ""))
                filename = windows.group(1).rsplit("\\", 1)[-1] if windows else event.filename
                if not filename:  # the input was left empty: the browser sends a nameless, empty part
                    if any(self.chunks()):
                        raise Invalid.field(FIELD, "A file without a name cannot be stored.")
                    continue
                if not checked:
                    before_files(fields)
                    checked = True
                taken.append(take(FilePart(filename, event.headers.get("Content-Type")), self.chunks()))
        if not checked:
            before_files(fields)
        return fields, taken
