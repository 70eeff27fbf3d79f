"""Media operations shared by the API, the conversation and the scan job.

An upload streams to storage with no database connection held (a slow client must not pin one
for minutes), checking the size limit, the quota and the first bytes' type as it goes. Only
then does one transaction take the quota under the settings row's lock, insert the attachment
and write the scan's outbox row, so a 202 means the file and its scan are both durable. If that
transaction does not commit, the stored file is deleted again (`unit_of_work.after_rollback`).
A storage that cannot take the file answers Unavailable (503 with Retry-After): nothing is
recorded and the quota is untouched.

The scan job records its attempt in a transaction of its own before it starts, so a file that
kills its worker (or clamd) still counts, and after `MEDIA_SCAN_ATTEMPTS` tries the attachment
ends `scan_failed` instead of being retried for ever; a try on which clamd gives no verdict
fails the job, which RQ retries on the queue's short `RETRY` schedule (a file that crashes the
scanner is not retried for hours). An outage is not the file's fault: when clamd cannot be
reached, no antivirus is configured (an operator's slip must not lose accepted uploads), the
storage cannot be read or written, or the worker cannot write its working copy (a full temporary
folder), the attempt is given back and the job asks to be retried later (Unavailable), which
`app.worker` turns into retries with a growing wait for `MEDIA_SCAN_RETRY_BUDGET`; the file stays
`pending` however long the outage lasts. Every state change is announced on the ticket's stream as `attachment.updated`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

import sqlalchemy as sa
from flask import Flask, current_app

from app import audit, unit_of_work
from app.auth.actor import Actor
from app.errors import Conflict, Forbidden, Gone, Invalid, NotFound, TooLarge, Unavailable, UnsupportedType
from app.extensions import db
from app.media import types
from app.media.archives import ArchiveLimits
from app.media.clamd import Clamd, ScannerError, ScannerUnreachable
from app.media.filenames import sanitize_filename
from app.media.inspection import ANTIVIRUS_OFF, SNIFF_BYTES, Checks, Verdict, inspect, plainly_not_allowed, sniff
from app.media.models import REFUSED_STATUSES, Attachment, MediaSettings
from app.media.schemas import AttachmentSchema
from app.media.storage import VARIANTS, ObjectMissing, StorageError, attachment_in_key, object_key, storage
from app.media.upload import FilePart, MultipartFile
from app.outbox import emit
from app.outbox.dispatch import Chore, add_chore
from app.realtime import publish_after_commit
from app.tickets.models import Ticket
from app.tickets.services import check_open_for, hold_open_for, ticket_for, visibility
from tenants import current_tenant, on_drop

log = logging.getLogger(__name__)
UPLOADED = "attachment.uploaded"
UPDATED = "attachment.updated"
DELETED = "attachment.deleted"
DISCARD = "media_discard"  # what a failed upload stored, deleted after its rollback
DISCARDED = "attachment.discarded"  # internal: a verdict's objects to delete, by an outbox job
MAX_PER_MESSAGE = 20
# A multipart body carries a little more than the file: boundaries and the part's headers.
MULTIPART_OVERHEAD = 64 * 1024
# Seconds a client is asked to wait before sending a file again when the storage cannot take it.
STORAGE_RETRY_AFTER = 30
_dump = AttachmentSchema().dump


def init_app(app: Flask) -> None:
    unit_of_work.handle(DISCARD, _discard_objects)
    on_drop(_drop_files)
    add_chore(Chore("media leftovers swept", lambda: current_app.config["MEDIA_SWEEP_HOURS"] * 3600.0,
                    sweep_leftovers))


def _drop_files(tenant_id: str) -> None:
    """Delete every file of a tenant being dropped (`flask tenants drop`), before its schema goes and again
    once the drop has committed (a scan the drop waited for may have stored files in between)."""
    log.info("deleted %d stored files of dropped tenant %s", storage().delete_tenant(tenant_id), tenant_id)


UNFINISHED_WRITE = timedelta(days=1)  # how long a write that never finished is left before a sweep takes it


def sweep_leftovers(older_than: timedelta = timedelta(hours=1)) -> int:
    """Delete what the current tenant's storage holds for no attachment, older than `older_than`; return
    how many things went.

    A web worker killed while it streamed an upload leaves a write that never finished (a `.part`
    file, an S3 multipart upload); one killed between storing a file and committing its row leaves
    an object whose attachment never existed. No upload takes an hour between storing its file and
    committing its row, so an older object with no row is a leftover. A write that never finished
    is left a day (an S3 upload is dated by its start, and a slow client may take long). Objects of
    a row that is there are never touched (a verdict's discard or a deletion has its own outbox job).
    """
    tenant_id = current_tenant().id
    gone = 0
    keys_of: dict[uuid.UUID, list[str]] = {}
    for item in storage().stored(tenant_id):
        if item.age < (max(older_than, UNFINISHED_WRITE) if item.partial else older_than).total_seconds():
            continue
        if item.partial:
            storage().discard_partial(item)
            gone += 1
            continue
        attachment_id = attachment_in_key(item.key, tenant_id)
        if attachment_id is not None:
            keys_of.setdefault(attachment_id, []).append(item.key)
    ids = list(keys_of)
    kept: set[uuid.UUID] = set()
    for start in range(0, len(ids), 1000):
        kept.update(db.session.execute(sa.select(Attachment.id).where(
            Attachment.id.in_(ids[start:start + 1000]))).scalars())
    leftovers = [key for attachment_id, keys in keys_of.items() if attachment_id not in kept for key in keys]
    if leftovers:
        storage().delete(leftovers)
        log.warning("deleted %d stored objects of %s that no attachment has (a killed upload's)",
                    len(leftovers), tenant_id)
    return gone + len(leftovers)


def attachment_json(attachment: Attachment) -> dict[str, Any]:
    """Return the contract's JSON of an attachment (the same for REST, messages and live events)."""
    return _dump(attachment)


# --- limits and settings ---------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """What the current tenant may upload: types, size per file, and its storage quota and use."""

    allowed: tuple[str, ...]
    max_size: int
    quota: int
    used: int

    @property
    def allowed_set(self) -> frozenset[str]:
        return frozenset(self.allowed)


def _settings(lock: bool = False) -> MediaSettings:
    stmt = sa.select(MediaSettings).where(MediaSettings.id == 1)
    if lock:
        stmt = stmt.with_for_update()
    row = db.session.execute(stmt).scalar_one_or_none()
    if row is None:  # a schema from before t0005's insert, or one whose row was removed by hand
        db.session.execute(sa.dialects.postgresql.insert(MediaSettings).values(id=1).on_conflict_do_nothing())
        row = db.session.execute(stmt).scalar_one()
    return row


def limits() -> Limits:
    """Return the current tenant's upload limits (its narrowed settings within the instance's)."""
    config = current_app.config
    row = _settings()
    allowed = types.ALL_TYPES if row.allowed_types is None else tuple(
        t for t in types.ALL_TYPES if t in row.allowed_types)
    max_size = min(row.max_size or config["MEDIA_MAX_SIZE"], config["MEDIA_MAX_SIZE"])
    quota = row.quota_bytes if row.quota_bytes is not None else config["MEDIA_TENANT_QUOTA"]
    return Limits(allowed, max_size, quota, row.used_bytes)


def antivirus_state() -> str:
    """Return how uploads are scanned here: "clamav", "off" (the operator's choice) or "not_configured"."""
    config = current_app.config
    if config["MEDIA_ANTIVIRUS"] == ANTIVIRUS_OFF:
        return "off"
    return "clamav" if config["CLAMD_SOCKET"] or config["CLAMD_HOST"] else "not_configured"


def media_types() -> dict[str, Any]:
    """Return the allowed types and the limits of the current tenant, for `GET /media/types`."""
    found = limits()
    return {
        "types": [{"content_type": t, "name": types.BY_TYPE[t].name, "extensions": list(types.BY_TYPE[t].extensions)}
                  for t in found.allowed],
        "max_size": found.max_size,
        "instance_max_size": current_app.config["MEDIA_MAX_SIZE"],
        "quota_bytes": found.quota,
        "used_bytes": found.used,
        "antivirus": antivirus_state(),
    }


def settings_json() -> dict[str, Any]:
    """Return the tenant's own media settings (null: the instance's), with its quota and use."""
    row = _settings()
    found = limits()
    return {"allowed_types": row.allowed_types, "max_size": row.max_size,
            "instance_max_size": current_app.config["MEDIA_MAX_SIZE"], "quota_bytes": found.quota,
            "used_bytes": found.used}


def update_settings(changes: dict[str, Any]) -> dict[str, Any]:
    """Narrow (or widen back, with null) the tenant's allowed types and size limit."""
    instance_max = current_app.config["MEDIA_MAX_SIZE"]
    errors: dict[str, list[str]] = {}
    allowed = changes.get("allowed_types")
    if allowed is not None:
        unknown = sorted(set(allowed) - set(types.ALL_TYPES))
        if unknown:
            errors["allowed_types"] = [f"Not an allowed type: {', '.join(unknown)}. Choose from "
                                       f"{', '.join(types.ALL_TYPES)}."]
    max_size = changes.get("max_size")
    if max_size is not None and not 1 <= max_size <= instance_max:
        errors["max_size"] = [f"Must be between 1 and {instance_max} bytes (the instance's limit)."]
    if errors:
        raise Invalid("The media settings are not valid.", errors)
    row = _settings(lock=True)
    before = {"allowed_types": row.allowed_types, "max_size": row.max_size}
    if "allowed_types" in changes:
        row.allowed_types = None if allowed is None else [t for t in types.ALL_TYPES if t in set(allowed)]
    if "max_size" in changes:
        row.max_size = max_size
    after = {"allowed_types": row.allowed_types, "max_size": row.max_size}
    if before != after:
        audit.record("media_settings", uuid.UUID(current_tenant().id), "updated", before=before, after=after)
    db.session.flush()
    return settings_json()


def set_quota(quota_bytes: int | None) -> None:
    """Set the current tenant's storage quota (None: the instance's `MEDIA_TENANT_QUOTA`)."""
    _settings(lock=True).quota_bytes = quota_bytes


def _change_usage(delta: int) -> None:
    if delta:
        db.session.execute(sa.update(MediaSettings).where(MediaSettings.id == 1).values(
            used_bytes=sa.func.greatest(MediaSettings.used_bytes + delta, 0)))


def _take_quota(delta: int) -> bool:
    """Add `delta` bytes to the organization's use if it stays within the quota (a decrease always fits)."""
    if delta <= 0:
        _change_usage(delta)
        return True
    quota = current_app.config["MEDIA_TENANT_QUOTA"]
    return db.session.execute(
        sa.update(MediaSettings)
        .where(MediaSettings.id == 1,
               MediaSettings.used_bytes + delta <= sa.func.coalesce(MediaSettings.quota_bytes, quota))
        .values(used_bytes=MediaSettings.used_bytes + delta).returning(MediaSettings.used_bytes)
    ).first() is not None


# --- upload ----------------------------------------------------------------------------------


def _size_text(size: int) -> str:
    if size % (1024 * 1024) == 0:
        return f"{size // (1024 * 1024)} MiB"
    return f"{size} bytes"


def upload_attachment(actor: Actor, ticket_id: uuid.UUID, body: BinaryIO, content_type: str | None,
                      content_length: int | None) -> Attachment:
    """Store a file uploaded to a ticket the actor can see and queue its scan; the caller commits.

    Refuses with TooLarge (size limit, quota) and UnsupportedType (a type plainly not allowed)
    as soon as the bytes read so far show it, without reading the rest of the body, and a
    requester's file on their closed ticket (Conflict) before reading any.
    """
    check_open_for(actor, ticket_for(actor, ticket_id).status)
    found = limits()
    db.session.rollback()  # hold no connection while the body streams in
    if content_length is not None and content_length > found.max_size + MULTIPART_OVERHEAD:
        raise _too_big(found)
    upload = MultipartFile(body, content_type)
    received = receive_file(upload.part, upload.chunks(), found)
    unit_of_work.after_rollback(DISCARD, [received.key])
    upload.finish()
    return record_upload(actor, ticket_id, received)


@dataclass(frozen=True)
class Received:
    """A file streamed into storage and checked as it arrived, not yet recorded on a ticket."""

    attachment_id: uuid.UUID
    key: str
    filename: str
    declared: str | None
    content_type: str | None
    size: int
    sha256: str


def _too_big(found: Limits) -> TooLarge:
    return TooLarge(f"The file is larger than the limit of {_size_text(found.max_size)}.")


def receive_file(part: FilePart, chunks: Iterable[bytes], found: Limits, used: int = 0) -> Received:
    """Stream one file into storage, checking the size limit, the quota and its type as bytes arrive.

    `used` is what earlier files of the same request already take of the quota. Touches no
    database: the caller holds no connection meanwhile, and deletes the object if it records nothing.
    """
    filename = sanitize_filename(part.filename)
    declared = types.normalise_declared(part.content_type)
    claim = types.claimed_type(filename, declared)
    if claim is not None and claim not in found.allowed:
        extension = types.extension_of(filename)
        why = f"its name ends in {extension}" if types.type_of_extension(extension) else f"it is declared {claim}"
        raise _unsupported(filename, why, found)
    attachment_id = uuid.uuid4()
    key = object_key(current_tenant().id, attachment_id, "original")
    digest = hashlib.sha256()
    size = 0
    head: bytearray | None = bytearray()
    sniffed = None
    with _storing(), storage().writer(key) as out:
        for chunk in chunks:
            size += len(chunk)
            if size > found.max_size:
                raise _too_big(found)
            if found.used + used + size > found.quota:
                raise _quota_full(found)
            if head is not None:
                head += chunk
                if len(head) >= SNIFF_BYTES:
                    sniffed = _check_head(bytes(head), found, filename)
                    head = None
            digest.update(chunk)
            out.write(chunk)
        if size == 0:
            raise Invalid.field("file", f"{filename} is empty." if filename else "The file is empty.")
        if head is not None:
            sniffed = _check_head(bytes(head), found, filename)
    return Received(attachment_id, key, filename, declared, claim or sniffed, size, digest.hexdigest())


def upload_request_limit() -> int:
    """Return the most one upload request may carry: the instance's size limit and the multipart framing."""
    return current_app.config["MEDIA_MAX_SIZE"] + MULTIPART_OVERHEAD


def record_files(actor: Actor, ticket_id: uuid.UUID, received: list[Received]) -> list[Attachment]:
    """Record files a page form streamed into storage on a ticket the actor can see; the caller commits."""
    return [record_upload(actor, ticket_id, r) for r in received]


def upload_limits() -> dict[str, Any]:
    """Return what a page's file field tells people and checks before sending: types, extensions, size."""
    found = limits()
    return {"max_size": found.max_size, "max_files": MAX_PER_MESSAGE,
            "types": [types.BY_TYPE[t].name for t in found.allowed],
            "extensions": sorted({e for t in found.allowed for e in types.BY_TYPE[t].extensions}),
            "content_types": list(found.allowed), "size_text": _size_text(found.max_size)}


def discard_received(received: Iterable[Received]) -> None:
    """Delete files that were streamed into storage but will not be recorded; best effort.

    It runs while a refusal (413, 415, 503) is on its way to the client, which a storage that
    fails the delete too must not turn into a 500; the files are then left behind, and logged.
    """
    keys = [r.key for r in received]
    if not keys:
        return
    try:
        storage().delete(keys)
    except StorageError as exc:
        log.warning("refused files left in storage, to delete by hand: %s (%s)", keys, exc)


@contextlib.contextmanager
def _storing() -> Iterator[None]:
    """Turn a storage that cannot take a file into Unavailable (503): the client may send it again later."""
    try:
        yield
    except StorageError as exc:
        log.warning("an upload could not be stored: %s", exc)
        raise Unavailable("The file could not be stored right now; send it again in a moment.",
                          retry_after=STORAGE_RETRY_AFTER) from exc


def _unsupported(filename: str, why: str, found: Limits) -> UnsupportedType:
    allowed = ", ".join(types.BY_TYPE[t].name for t in found.allowed) or "none"
    return UnsupportedType(f"{filename} is not an allowed type here: {why}. Allowed: {allowed}.")


def _quota_full(found: Limits) -> TooLarge:
    return TooLarge(f"The organization's storage quota of {_size_text(found.quota)} is full; delete files "
                    f"or ask the operator for more.")


def _check_head(head: bytes, found: Limits, filename: str) -> str:
    sniffed = sniff(head)
    if plainly_not_allowed(sniffed, found.allowed_set):
        raise _unsupported(filename, f"its content is {sniffed}", found)
    return sniffed


def record_upload(actor: Actor, ticket_id: uuid.UUID, received: Received) -> Attachment:
    """Record a received file on a ticket the actor can see, take its quota and queue its scan."""
    ticket = ticket_for(actor, ticket_id)
    hold_open_for(actor, ticket_id)  # closed while the file streamed in, or being closed now
    attachment_id, filename, declared, size, sha256 = (received.attachment_id, received.filename,
                                                       received.declared, received.size, received.sha256)
    content_type = received.content_type
    if not _take_quota(size):
        raise _quota_full(limits())
    attachment = Attachment(
        id=attachment_id, ticket_id=ticket_id, uploader_id=actor.user_id, filename=filename,
        declared_type=declared, content_type=types.canonical(content_type or "application/octet-stream"),
        size=size, stored_bytes=size, sha256=sha256, status="pending", internal=ticket.requester_id != actor.user_id,
        reencoded=False, has_thumbnail=False, scan_attempts=0, created_at=datetime.now(UTC))
    db.session.add(attachment)
    audit.record("attachment", attachment_id, "uploaded",
                 after={"ticket_id": ticket_id, "filename": filename, "size": size, "sha256": sha256})
    emit(UPLOADED, {"attachment_id": str(attachment_id), "ticket_id": str(ticket_id)})
    _announce(attachment)
    db.session.flush()
    return attachment


def _announce(attachment: Attachment) -> None:
    body = attachment_json(attachment)
    publish_after_commit(attachment.ticket_id, {"type": UPDATED, "attachment": body})
    emit(UPDATED, {"attachment_id": str(attachment.id), "ticket_id": str(attachment.ticket_id),
                   "status": attachment.status}, {"attachment": body})  # public: the feed and webhooks


def _discard_objects(batches: list[list[str]]) -> None:
    storage().delete([key for keys in batches for key in keys])


def delete_objects(attachment_id: uuid.UUID, variants: Iterable[str] = VARIANTS) -> None:
    """Delete stored objects of an attachment (every one, unless `variants` names some).

    A storage that cannot delete them is an outage (Unavailable): the job is retried later, for as
    long as it lasts, and never given up as a row that keeps failing would be.
    """
    tenant_id = current_tenant().id
    try:
        storage().delete([object_key(tenant_id, attachment_id, v) for v in variants if v in VARIANTS])
    except StorageError as exc:
        raise Unavailable(f"The storage could not delete the file's objects: {exc}",
                          retry_after=STORAGE_RETRY_AFTER) from exc


# --- reading and downloading -----------------------------------------------------------------


def _visible(actor: Actor) -> sa.ColumnElement[bool]:
    """Attachments an actor may see: staff see all of a ticket's, requesters none that are internal."""
    return sa.true() if actor.is_staff else Attachment.internal.is_(False)


def attachment_for(actor: Actor, attachment_id: uuid.UUID, lock: bool = False) -> Attachment:
    """Return an attachment on a ticket the actor can see (its row locked if asked), or raise NotFound
    (never Forbidden)."""
    stmt = sa.select(Attachment).join(Ticket, Ticket.id == Attachment.ticket_id) \
        .where(Attachment.id == attachment_id, visibility(actor), _visible(actor))
    if lock:
        stmt = stmt.with_for_update(of=Attachment).execution_options(populate_existing=True)
    found = db.session.execute(stmt).scalar_one_or_none()
    if found is None:
        raise NotFound("No such attachment.")
    return found


@dataclass(frozen=True)
class Download:
    key: str
    content_type: str
    filename: str
    as_attachment: bool


def download(actor: Actor, attachment_id: uuid.UUID, thumbnail: bool = False) -> Download:
    """Return what to serve for an attachment (or its thumbnail), if its scan has cleared it."""
    attachment = attachment_for(actor, attachment_id)
    if attachment.status == "pending":
        raise Conflict("The file is still being scanned; try again in a moment.")
    if attachment.status in REFUSED_STATUSES:
        raise Gone(f"The file will not be served: its scan ended {attachment.status}. "
                   f"{attachment.status_reason or ''}".strip())
    tenant_id = current_tenant().id
    name = types.download_name(attachment.filename, attachment.content_type)
    if thumbnail:
        if not attachment.has_thumbnail:
            raise NotFound("This attachment has no thumbnail.")
        stem = name.rsplit(".", 1)[0] if "." in name else name
        return Download(object_key(tenant_id, attachment.id, "thumbnail"), "image/png", f"{stem}-thumbnail.png",
                        as_attachment=False)
    variant = "clean" if attachment.reencoded else "original"
    media_type = types.BY_TYPE.get(attachment.content_type)
    is_image = media_type is not None and media_type.is_image
    return Download(object_key(tenant_id, attachment.id, variant), attachment.content_type, name,
                    as_attachment=not is_image)


def recently_scanned(ticket_id: uuid.UUID, within: timedelta, with_internal: bool,
                     limit: int) -> tuple[list[dict[str, Any]], datetime | None]:
    """Return the JSON of the ticket's files whose scan ended within `within`, the newest `limit` last
    (for a new socket), and when the newest scan left out ended (None if none was). Internal files'
    only `with_internal`.

    A page shows a file's state as it was when the page was made; a scan that ended before the
    page's socket was listening was announced to nobody there (`attachment.updated`).
    """
    stmt = sa.select(Attachment).where(Attachment.ticket_id == ticket_id,
                                       Attachment.scanned_at >= sa.func.now() - within)
    if not with_internal:
        stmt = stmt.where(Attachment.internal.is_(False))
    rows = db.session.execute(stmt.order_by(Attachment.scanned_at.desc()).limit(limit + 1)).scalars().all()
    return [attachment_json(a) for a in reversed(rows[:limit])], rows[limit].scanned_at if len(rows) > limit else None


# --- attachments on messages -----------------------------------------------------------------


def link_attachments(actor: Actor, ticket_id: uuid.UUID, message_id: uuid.UUID, internal: bool,
                     attachment_ids: list[uuid.UUID]) -> list[Attachment]:
    """Attach the actor's own unsent uploads on this ticket to a new message, or raise Invalid."""
    if not attachment_ids:
        return []
    if len(attachment_ids) > MAX_PER_MESSAGE:
        raise Invalid.field("attachment_ids", f"At most {MAX_PER_MESSAGE} attachments per message.")
    if len(set(attachment_ids)) != len(attachment_ids):
        raise Invalid.field("attachment_ids", "An attachment is listed twice.")
    # Only the actor's own unsent uploads here are locked: a sent file is locked by a requester deleting
    # it before its ticket (`delete_attachment`), and this post holds the ticket already (deadlock).
    rows = {a.id: a for a in db.session.execute(
        sa.select(Attachment).where(Attachment.id.in_(attachment_ids), Attachment.ticket_id == ticket_id,
                                    Attachment.uploader_id == actor.user_id, Attachment.message_id.is_(None))
        .with_for_update()).scalars()}
    # Read unlocked, to say why each is refused; of a file the actor may not see (a requester, staff's
    # unsent upload or a note's file) only that it is none of theirs, as a GET of it answers 404.
    missing = [i for i in attachment_ids if i not in rows]
    refused = {a.id: a for a in db.session.execute(
        sa.select(Attachment).where(Attachment.id.in_(missing), _visible(actor))).scalars()} if missing else {}
    problems = []
    for attachment_id in attachment_ids:
        attachment = rows.get(attachment_id) or refused.get(attachment_id)
        if attachment is None or attachment.ticket_id != ticket_id:
            problems.append(f"{attachment_id} is not an upload on this ticket.")
        elif attachment.uploader_id != actor.user_id:
            problems.append(f"{attachment_id} was uploaded by someone else.")
        elif attachment.message_id is not None:
            problems.append(f"{attachment_id} is already on a message.")
    if problems:
        raise Invalid("The attachments cannot be added to this message.", {"attachment_ids": problems})
    linked = [rows[i] for i in attachment_ids]
    for attachment in linked:
        attachment.message_id = message_id
        attachment.internal = internal
    db.session.flush()
    return linked


def hide_attachments_of(message_id: uuid.UUID) -> None:
    """Hide a deleted message's attachments from requesters (staff still see them)."""
    db.session.execute(sa.update(Attachment).where(Attachment.message_id == message_id).values(internal=True))


def delete_attachment(actor: Actor, attachment_id: uuid.UUID, ticket_id: uuid.UUID | None = None) -> Attachment:
    """Delete a file its viewer may delete; the caller commits. Its quota comes back and its objects go.

    Its uploader may delete it (an upload not sent yet, or a file of their own message, as they
    may delete the message), an admin any file (a password sent by mistake); anyone else who can
    see it is refused (Forbidden). A requester's file sent on their closed ticket stays until they
    reopen it (Conflict), as their message does. The row goes with the transaction, the stored objects once it
    has committed, by a `media` job from the outbox (retried until the storage has deleted them);
    a scan still running finds the row gone and deletes what it stored itself.
    The audit log keeps its name, size and SHA-256. `ticket_id`, when given, must be its ticket.
    """
    locked = attachment_for(actor, attachment_id, lock=True)  # one delete of two at once finds it gone: 404
    if ticket_id is not None and locked.ticket_id != ticket_id:
        raise NotFound("No such attachment.")
    if locked.uploader_id != actor.user_id and actor.role != "admin":
        raise Forbidden("Only the person who uploaded a file, or an admin, may delete it.")
    if not actor.is_staff and locked.message_id is not None:
        hold_open_for(actor, locked.ticket_id)
    body = attachment_json(locked)
    _change_usage(-locked.stored_bytes)
    audit.record("attachment", attachment_id, "deleted", before={
        "ticket_id": locked.ticket_id, "message_id": locked.message_id, "filename": locked.filename,
        "size": locked.size, "sha256": locked.sha256, "status": locked.status})
    db.session.delete(locked)
    publish_after_commit(locked.ticket_id, {"type": DELETED, "attachment": body})
    emit(DELETED, {"attachment_id": str(attachment_id), "ticket_id": str(locked.ticket_id)},
         {"attachment": body})
    db.session.flush()
    return locked


# --- scanning --------------------------------------------------------------------------------


def _antivirus() -> Clamd | str | None:
    config = current_app.config
    if config["MEDIA_ANTIVIRUS"] == ANTIVIRUS_OFF:
        return ANTIVIRUS_OFF
    if config["CLAMD_SOCKET"] or config["CLAMD_HOST"]:
        return Clamd(socket_path=config["CLAMD_SOCKET"], host=config["CLAMD_HOST"], port=config["CLAMD_PORT"],
                     timeout=config["CLAMD_TIMEOUT"])
    return None


def _checks(allowed: frozenset[str]) -> Checks:
    config = current_app.config
    return Checks(allowed=allowed, max_pixels=config["MEDIA_MAX_IMAGE_PIXELS"],
                  archive=ArchiveLimits(config["MEDIA_ZIP_MAX_ENTRIES"], config["MEDIA_ZIP_MAX_UNCOMPRESSED"],
                                        config["MEDIA_ZIP_MAX_RATIO"]))


def _count_attempt(attachment_id: uuid.UUID) -> int | None:
    """Record a scan attempt in its own transaction; return its number, None if nothing is pending."""
    session = db.session.session_factory()
    try:
        attempt = session.execute(
            sa.update(Attachment).where(Attachment.id == attachment_id, Attachment.status == "pending")
            .values(scan_attempts=Attachment.scan_attempts + 1).returning(Attachment.scan_attempts)
        ).scalar_one_or_none()
        session.commit()
        return attempt
    finally:
        session.close()


def _give_back_attempt(attachment_id: uuid.UUID) -> None:
    """Take back the attempt an outage cut short, in its own transaction: it says nothing about the file."""
    session = db.session.session_factory()
    try:
        session.execute(
            sa.update(Attachment)
            .where(Attachment.id == attachment_id, Attachment.status == "pending", Attachment.scan_attempts > 0)
            .values(scan_attempts=Attachment.scan_attempts - 1))
        session.commit()
    finally:
        session.close()


def _wait_out(attachment_id: uuid.UUID, reason: str) -> NoReturn:
    """Leave the file pending, its attempt given back, and ask for the scan to be retried later."""
    _give_back_attempt(attachment_id)
    raise Unavailable(f"{reason}; the scan will be retried (an outage does not count as a try)")


def scan_attachment(attachment_id: uuid.UUID) -> str:
    """Decide a pending attachment's fate (the `media` queue's job); return its status.

    Raises Unavailable, for the job to be retried later, during an outage (clamd or the storage
    unreachable, no antivirus configured, the worker's temporary folder full): such tries do not
    count. Raises ScannerError while the antivirus gives no verdict on the file and tries are left,
    so RQ retries the job as it does one that crashed; the last such try records `scan_failed`.
    """
    attempt = _count_attempt(attachment_id)
    attachment = db.session.get(Attachment, attachment_id)
    if attachment is None:  # deleted: an earlier try may have stored copies after its objects were deleted
        delete_objects(attachment_id)
        return "gone"
    if attempt is None:
        return "not pending"
    max_attempts = current_app.config["MEDIA_SCAN_ATTEMPTS"]
    if attempt > max_attempts:
        return _decide(attachment_id, Verdict(
            "scan_failed", f"The scan did not finish after {max_attempts} tries; the file may crash the scanner."))
    antivirus = _antivirus()
    if antivirus is None:
        _wait_out(attachment_id, "No antivirus is configured (CLAMD_SOCKET or CLAMD_HOST), and the operator "
                                 "has not turned antivirus off")
    claim = types.claimed_type(attachment.filename, attachment.declared_type)
    checks = _checks(limits().allowed_set)
    tenant_id = current_tenant().id
    with tempfile.TemporaryDirectory(prefix="tms-scan-") as folder:
        work = Path(folder)
        original = work / "original"
        try:
            with open(original, "wb") as out:
                copied = storage().copy_to(object_key(tenant_id, attachment_id, "original"), out)
        except ObjectMissing:
            return _decide(attachment_id, Verdict("scan_failed", "The stored file is missing."))
        except StorageError as exc:
            _wait_out(attachment_id, f"The storage could not be read: {exc}")
        except OSError as exc:  # the worker's own disk, not the file: full, read-only
            _wait_out(attachment_id, f"The worker could not write its working copy: {exc}")
        if copied != attachment.size:
            return _decide(attachment_id, Verdict(
                "scan_failed", f"The stored file has {copied} bytes instead of {attachment.size}."))
        try:
            verdict = inspect(original, attachment.size, claim, checks, antivirus, work)
        except ScannerUnreachable as exc:
            _wait_out(attachment_id, f"The antivirus could not be reached: {exc}")
        except ScannerError as exc:
            return _retry_or_fail(attachment_id, attempt, max_attempts, f"The antivirus gave no verdict: {exc}")
        except OSError as exc:  # the worker's disk, writing an image's clean copy (see images.reencode)
            _wait_out(attachment_id, f"The worker could not write the clean copy: {exc}")
        # The file was read to a verdict without crashing anything, which is all tries are counted
        # against: whatever fails from here on (the storage, the database restarting) is no fault of it.
        _give_back_attempt(attachment_id)
        sizes = None
        if verdict.image is not None:
            sizes = (verdict.image.path.stat().st_size, verdict.image.thumbnail.stat().st_size)
            verdict = _within_limit(verdict, sizes[0], limits().max_size)
        if verdict.image is not None:
            try:
                for variant, path in (("clean", verdict.image.path), ("thumbnail", verdict.image.thumbnail)):
                    with storage().writer(object_key(tenant_id, attachment_id, variant)) as out, \
                            open(path, "rb") as f:
                        while chunk := f.read(1024 * 1024):
                            out.write(chunk)
            except StorageError as exc:
                _wait_out(attachment_id, f"The storage could not be written: {exc}")
        return _decide(attachment_id, verdict, sizes)


def _within_limit(verdict: Verdict, clean_size: int, max_size: int) -> Verdict:
    """Refuse an image whose cleaned copy outgrew the size limit the upload was held to.

    Re-encoding can grow a file (a few hundred bytes of lossless pixels, saved again, were
    hundreds of KiB), and the copy is what is stored and served.
    """
    if clean_size <= max_size:
        return verdict
    return Verdict("rejected", f"Cleaned of its metadata, the image is {clean_size} bytes, over this "
                               f"organization's limit of {_size_text(max_size)}.", verdict.content_type,
                   verdict.antivirus)


def _retry_or_fail(attachment_id: uuid.UUID, attempt: int, max_attempts: int, reason: str) -> str:
    """Fail this try (RQ retries it on the short `RETRY` schedule) or, on the last, record `scan_failed`.

    Not Unavailable: that would wait for `MEDIA_SCAN_RETRY_BUDGET`, hours for a file that crashes clamd.
    """
    if attempt < max_attempts:
        raise ScannerError(f"{reason} (try {attempt} of {max_attempts})")
    return _decide(attachment_id, Verdict("scan_failed", f"{reason} (after {attempt} tries)"))


def _decide(attachment_id: uuid.UUID, verdict: Verdict, sizes: tuple[int, int] | None = None) -> str:
    """Record a verdict on a still-pending attachment, adjust the quota's use, and announce it.

    `sizes` are those of a clean image's re-encoded copy and thumbnail, which replace the original:
    what they add to the organization's use must fit its quota, or the image is refused.
    """
    attachment = db.session.execute(
        sa.select(Attachment).where(Attachment.id == attachment_id).with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if attachment is None:  # deleted while it was scanned: what the scan stored goes too (or the job fails, to retry)
        delete_objects(attachment_id)
        return "gone"
    if attachment.status != "pending":
        return "decided already"
    before = attachment.stored_bytes
    attachment.status = verdict.status
    attachment.status_reason = verdict.reason
    attachment.antivirus = verdict.antivirus
    attachment.scanned_at = datetime.now(UTC)
    if verdict.content_type:
        attachment.content_type = verdict.content_type
    discard: list[str] = []
    if verdict.status == "clean" and sizes is not None:
        if _take_quota(sum(sizes) - before):  # the copy and its thumbnail replace the original
            attachment.reencoded = attachment.has_thumbnail = True
            attachment.size = sizes[0]
            attachment.stored_bytes = sum(sizes)
            discard.append("original")  # it still has its metadata
        else:
            attachment.status = "rejected"
            attachment.status_reason = ("Cleaned of its metadata, the image needs more room than this "
                                        "organization's storage quota has left.")
    if attachment.status in REFUSED_STATUSES:  # nothing refused is kept; `size` still tells what was uploaded
        discard = list(VARIANTS)
        _change_usage(-attachment.stored_bytes)
        attachment.stored_bytes = 0
    if discard:  # by the outbox, so a storage outage or a dead worker only delays it
        emit(DISCARDED, {"attachment_id": str(attachment_id), "variants": discard})
    audit.record("attachment", attachment_id, "scanned", after={
        "status": attachment.status, "reason": attachment.status_reason, "antivirus": verdict.antivirus})
    _announce(attachment)
    db.session.flush()
    return attachment.status

