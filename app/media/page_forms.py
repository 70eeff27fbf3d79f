"""Page forms that carry files: read as they arrive, never parsed whole.

Flask-WTF's CSRFProtect and the input guard read `request.form` before a view runs; on a
multipart post that parses the whole body, spooling every file to a temporary file, before the
view sees a byte (and the app's 1 MiB request limit refuses any real file). Views marked
`@streams_body` are exempt from both hooks and do the same checks themselves, in order:

- a form posted url-encoded (no files) goes through `csrf.protect()` and the guard's text checks
  exactly as before;
- a multipart form is read part by part (`StreamedForm`): text fields whole (bounded), the CSRF
  token checked and the fields' text guarded before the first file byte is stored, then each file
  streamed into storage with the API's checks (size limit 413, type 415, quota), no database
  connection held meanwhile. The view then records the files on a ticket in the same transaction
  as the ticket or message they belong to, so a refused form leaves nothing behind: files already
  stored are deleted again.

The page's script uploads one file at a time to `POST /tickets/<number>/attachments`, which takes
its CSRF token from the `X-CSRFToken` header (or a `csrf_token` query parameter) and answers JSON.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, g, request
from flask_wtf.csrf import CSRFError, same_origin, validate_csrf
from werkzeug.datastructures import MultiDict
from wtforms import ValidationError

from app import unit_of_work
from app.errors import Invalid, TooLarge, UnsupportedType
from app.extensions import csrf, db
from app.input_guard import check_fields, check_form
from app.media import services
from app.media.services import MAX_PER_MESSAGE, MULTIPART_OVERHEAD, Received
from app.media.upload import StreamedForm
from app.schemas import parse_uuid

FIELDS_READ = "tms.page_form_fields"
DRAIN_LIMIT = 64 * 1024 * 1024  # read at most this much of a refused body, so the browser sees the answer


def streams_body(view: Callable) -> Callable:
    """Mark a page view that reads its own body: no CSRF or form hook parses it first (see above)."""
    view.streams_body = True  # type: ignore[attr-defined]
    csrf.exempt(view)
    return view


def check_csrf(token: str | None) -> None:
    """Refuse the request (CSRFError, 400) unless `token` is this session's CSRF token: CSRFProtect's checks."""
    if not current_app.config["WTF_CSRF_ENABLED"]:
        return
    try:
        validate_csrf(token)
    except ValidationError as exc:
        raise CSRFError(exc.args[0]) from None
    if request.is_secure and current_app.config["WTF_CSRF_SSL_STRICT"]:
        if not request.referrer:
            raise CSRFError("The referrer header is missing.")
        if not same_origin(request.referrer, f"https://{request.host}/"):
            raise CSRFError("The referrer does not match the host.")
    g.csrf_valid = True


@dataclass
class PageForm:
    """A submitted page form: its text fields, and the files it carried (stored, not yet recorded)."""

    fields: MultiDict
    files: list[Received] = field(default_factory=list)

    def ids(self, name: str) -> list[uuid.UUID]:
        """Return the UUIDs a repeated field carries (`attachment_ids`), or raise Invalid."""
        try:
            return [parse_uuid(value) for value in self.fields.getlist(name) if value.strip()]
        except ValueError:
            raise Invalid.field(name, "Not a valid UUID.") from None


def upload_limit() -> int:
    """Return the most a streamed page request may carry: every file of one message at the instance's limit."""
    return current_app.config["MEDIA_MAX_SIZE"] * MAX_PER_MESSAGE + MULTIPART_OVERHEAD


def read_page_form() -> PageForm:
    """Read the form posted to a `@streams_body` view: CSRF, the guard's text checks, files streamed to storage.

    Raises CSRFError, BadInput or a domain error (TooLarge, UnsupportedType, Invalid, Unavailable when
    the storage cannot take a file); files stored before a refusal are deleted (best effort: a failed
    delete must not turn the refusal into a 500). Stored files are deleted too if the view's
    transaction does not commit.
    """
    if request.mimetype != "multipart/form-data":
        if current_app.config["WTF_CSRF_ENABLED"]:
            csrf.protect()
        check_form()
        return PageForm(request.form)
    request.max_content_length = upload_limit()
    found = services.limits()
    db.session.rollback()  # hold no connection while the body streams in
    received: list[Received] = []
    reader = StreamedForm(request.stream, request.content_type)
    request.environ[FIELDS_READ] = reader.fields

    def take(part, chunks) -> Received:
        if len(received) >= MAX_PER_MESSAGE:
            raise Invalid.field("file", f"At most {MAX_PER_MESSAGE} files at once.")
        try:
            file = services.receive_file(part, chunks, found, used=sum(r.size for r in received))
        except (TooLarge, UnsupportedType) as exc:  # said beside the file field
            raise type(exc)(exc.message, {"file": [exc.message]}) from None
        received.append(file)
        return file

    def before_files(fields: MultiDict) -> None:
        check_csrf(fields.get("csrf_token"))
        check_fields(fields)

    try:
        fields, _ = reader.read(take, before_files)
        check_fields(fields)  # again, whole: a field may come after a file part
    except BaseException:
        services.discard_received(received)
        raise
    if received:
        unit_of_work.after_rollback(services.DISCARD, [r.key for r in received])
    return PageForm(fields, received)


def submitted_values() -> MultiDict | Any:
    """Return what the refused form carried, to show it again: a streamed form's fields read so far."""
    if request.mimetype == "multipart/form-data":
        return request.environ.get(FIELDS_READ) or MultiDict()
    return request.form


def drain() -> None:
    """Read what is left of a refused body (up to a bound), so the browser gets our answer, not a reset."""
    if request.mimetype != "multipart/form-data":
        return
    left = DRAIN_LIMIT
    stream = request.stream
    while left > 0:
        chunk = stream.read(min(256 * 1024, left))
        if not chunk:
            return
        left -= len(chunk)
