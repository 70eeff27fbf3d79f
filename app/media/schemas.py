"""Schemas of the media area: one attachment shape for REST, messages and live events alike."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from app.media.types import ALL_TYPES
from app.schemas import BoundedList, Uuid, WholeNumber

API = "/api/v1"


class AttachmentSchema(Schema):
    id = Uuid(dump_only=True)
    ticket_id = Uuid(dump_only=True)
    message_id = Uuid(dump_only=True, allow_none=True,
                      metadata={"description": "The message it was sent with; null until then."})
    uploader_id = Uuid(dump_only=True, allow_none=True)
    filename = fields.String(dump_only=True, metadata={"description": "The uploaded name, made safe."})
    content_type = fields.String(dump_only=True, metadata={
        "description": "What the file is: claimed while pending, detected from the bytes once scanned."})
    size = fields.Integer(dump_only=True, metadata={
        "description": "Bytes served (an image's re-encoded copy once clean; the upload's size before)."})
    sha256 = fields.String(dump_only=True, metadata={"description": "SHA-256 of the uploaded bytes."})
    status = fields.String(dump_only=True, metadata={
        "description": "pending, then clean, rejected (not an allowed type, or not what it claims to be), "
                       "infected, or scan_failed (no verdict after the scanner's retries; never served)."})
    status_reason = fields.String(dump_only=True, allow_none=True, metadata={"description": "Why it was refused."})
    antivirus = fields.String(dump_only=True, allow_none=True, metadata={
        "description": "clamav when ClamAV looked at it, off when the operator turned antivirus off, null "
                       "when no antivirus gave a verdict."})
    internal = fields.Boolean(dump_only=True, metadata={
        "description": "Hidden from requesters: a file of an internal note, or a staff upload not yet sent."})
    thumbnail_url = fields.Method("dump_thumbnail_url", dump_only=True, allow_none=True, metadata={
        "type": "string", "description": "Where a clean image's thumbnail is served; null for other files."})
    download_url = fields.Method("dump_download_url", dump_only=True, metadata={
        "type": "string", "description": "Where the file is served once clean."})
    created_at = fields.DateTime(dump_only=True)
    scanned_at = fields.DateTime(dump_only=True, allow_none=True)

    def dump_thumbnail_url(self, attachment) -> str | None:
        if attachment.status != "clean" or not attachment.has_thumbnail:
            return None
        return f"{API}/attachments/{attachment.id}/thumbnail"

    def dump_download_url(self, attachment) -> str:
        return f"{API}/attachments/{attachment.id}/download"


class MediaTypeSchema(Schema):
    content_type = fields.String()
    name = fields.String()
    extensions = fields.List(fields.String())


class MediaTypesSchema(Schema):
    types = fields.List(fields.Nested(MediaTypeSchema), metadata={"description": "Types this organization accepts."})
    max_size = fields.Integer(metadata={"description": "Largest file this organization accepts, in bytes."})
    instance_max_size = fields.Integer(metadata={"description": "The instance's limit, which no organization exceeds."})
    quota_bytes = fields.Integer(metadata={"description": "Storage this organization may use, in bytes."})
    used_bytes = fields.Integer(metadata={"description": "Storage in use, in bytes."})
    antivirus = fields.String(metadata={
        "description": "clamav, off (the operator turned antivirus off), or not_configured (nothing is "
                       "reported clean until an antivirus is configured or turned off)."})


class MediaSettingsChangeSchema(Schema):
    """What an admin may change. `max_size`'s maximum is the instance's `MEDIA_MAX_SIZE`, which the
    served document states (`app.openapi`)."""

    allowed_types = BoundedList(fields.String(validate=validate.OneOf(ALL_TYPES)), allow_none=True,
                                 validate=validate.Length(max=20), metadata={
                                     "description": "The types this organization accepts, a subset of the "
                                                    "instance's; null for all of them."})
    max_size = WholeNumber(allow_none=True, validate=validate.Range(min=1), metadata={
        "description": "Largest file in bytes, at most instance_max_size; null for the instance's limit."})


class MediaSettingsSchema(MediaSettingsChangeSchema):
    instance_max_size = fields.Integer(dump_only=True)
    quota_bytes = fields.Integer(dump_only=True)
    used_bytes = fields.Integer(dump_only=True)
