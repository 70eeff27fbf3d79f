"""REST endpoints of media: upload to a ticket, metadata, downloads, allowed types and settings."""

from __future__ import annotations

import logging
import uuid

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Api

from app.api_common import api_blueprint
from app.auth.actor import admin_only, current_actor
from app.errors import Gone
from app.extensions import db
from app.idempotency import idempotent_upload
from app.media import services
from app.media.schemas import AttachmentSchema, MediaSettingsChangeSchema, MediaSettingsSchema, MediaTypesSchema
from app.media.storage import ObjectMissing, storage

log = logging.getLogger(__name__)

blp = api_blueprint("media", "Files in ticket conversations: upload, scan state, download, allowed types.",
                    tag="Media")

UPLOAD_BODY = {
    "required": True,
    "content": {"multipart/form-data": {
        "schema": {"type": "object", "required": ["file"],
                   "properties": {"file": {"type": "string", "format": "binary", "minLength": 1,
                                           "description": "The file's bytes (an empty file answers 422)."}}},
    }},
}
# Served files may not be rendered as pages of ours: no sniffing, no scripts, no framing.
SERVED_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Referrer-Policy": "no-referrer",
}
FILE_RESPONSES = {
    "200": {"description": "The file's bytes (local storage).",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
    "206": {"description": "The bytes of the `Range` asked for (local storage).",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
    "302": {"description": "A redirect to a short-lived signed URL of the file (S3 storage)."},
    "304": {"description": "Not modified: the file's ETag is one sent in If-None-Match (local storage)."},
}
RANGE = {"in": "header", "name": "Range", "required": False, "schema": {"type": "string"},
         "description": "`bytes=first-last` for part of the file (local storage; S3 honours it at the signed URL)."}
IF_NONE_MATCH = {"in": "header", "name": "If-None-Match", "required": False, "schema": {"type": "string"},
                 "description": "ETags you hold; `304` with no body if the file's is one of them (local storage)."}


def register(api: Api) -> None:
    api.register_blueprint(blp)


@blp.route("/tickets/<uuid:ticket_id>/attachments")
class TicketAttachments(MethodView):
    streams_body = True  # the upload reads its multipart body itself (`app.input_guard.streams_body`)

    @idempotent_upload("filename", "content_type", "size", "sha256")
    @blp.doc(requestBody=UPLOAD_BODY)
    @blp.response(202, AttachmentSchema)
    @blp.alt_response(400, response="DEFAULT_ERROR", description="The multipart body is malformed or truncated.")
    @blp.alt_response(409, response="DEFAULT_ERROR", description="A requester's file on their closed ticket.")
    @blp.alt_response(413, response="DEFAULT_ERROR", description="Over the size limit, or the storage quota is full.")
    @blp.alt_response(415, response="DEFAULT_ERROR", description="Not an allowed type, or not multipart/form-data.")
    @blp.alt_response(422, response="DEFAULT_ERROR", description="No part named file, or an empty file.")
    @blp.alt_response(503, response="DEFAULT_ERROR",
                      description="The storage cannot take the file now; send it again after `Retry-After` seconds.")
    def post(self, ticket_id: uuid.UUID):
        """Upload a file to a ticket (multipart/form-data, part `file`); it is scanned before it is served.

        Answers 202 with `status: pending`; scanning moves it to `clean`, `rejected`, `infected`
        or `scan_failed` (watch `attachment.updated` on the ticket's stream, or poll). Send its id in
        a message's `attachment_ids` to show it in the conversation. The body is streamed: over
        the size limit answers 413 and a type that is plainly not allowed (by name, declared type,
        or first bytes) 415, both before the rest is read. An `Idempotency-Key` is checked against
        the file's name, type, size and SHA-256, once the body has been read.
        """
        # The app's MAX_CONTENT_LENGTH is sized for JSON; an upload may be as large as the media limit
        # (the tenant's own, smaller limit is checked by the service as the bytes arrive).
        request.max_content_length = services.upload_request_limit()
        return services.upload_attachment(current_actor(), ticket_id, request.stream, request.content_type,
                                          request.content_length)


@blp.route("/attachments/<uuid:attachment_id>")
class AttachmentById(MethodView):
    @blp.response(200, AttachmentSchema)
    def get(self, attachment_id: uuid.UUID):
        """Get an attachment's name, type, size and scan state."""
        return services.attachment_for(current_actor(), attachment_id)

    @blp.response(204)
    @blp.alt_response(403, response="DEFAULT_ERROR", description="Neither its uploader nor an admin.")
    @blp.alt_response(409, response="DEFAULT_ERROR",
                      description="A requester's file sent on their closed ticket: reopen it to change it.")
    def delete(self, attachment_id: uuid.UUID):
        """Delete a file: its uploader (sent or not yet), or an admin; its bytes leave the storage quota.

        A requester's file sent on their closed ticket stays until they reopen it (409).

        It leaves its message at once (`attachment.deleted` on the ticket's stream and to webhooks)
        and its stored file soon after; the audit log keeps its name, size and SHA-256.
        """
        services.delete_attachment(current_actor(), attachment_id)
        db.session.commit()


def serve(attachment_id: uuid.UUID, thumbnail: bool) -> Response:
    """Serve a clean file (or its thumbnail) to the current actor, sandboxed; the API and the pages both use it."""
    found = services.download(current_actor(), attachment_id, thumbnail=thumbnail)
    db.session.rollback()
    try:
        response = storage().send(found.key, found.content_type, found.filename, found.as_attachment)
    except ObjectMissing:
        log.error("attachment %s is clean but its file %s is missing from storage", attachment_id, found.key)
        raise Gone("The file is no longer in storage.") from None
    response.headers.update(SERVED_HEADERS)
    # Never kept by a browser or a shared cache, as pages and S3's presigned answers are not: a
    # tenant's files must not outlive a sign-out on a shared computer. (send_file's own header
    # kept the file in the browser's cache.)
    response.headers["Cache-Control"] = "private, no-store"
    return response


@blp.route("/attachments/<uuid:attachment_id>/download")
class AttachmentDownload(MethodView):
    @blp.doc(responses=FILE_RESPONSES, parameters=[RANGE, IF_NONE_MATCH])
    @blp.alt_response(409, response="DEFAULT_ERROR", description="Still being scanned.")
    @blp.alt_response(410, response="DEFAULT_ERROR", description="Rejected, infected, or not scanned.")
    @blp.alt_response(416, response="DEFAULT_ERROR", description="The `Range` lies outside the file.")
    def get(self, attachment_id: uuid.UUID):
        """Download a clean file: its bytes, or a 302 to a short-lived signed URL.

        Images are served inline (re-encoded, without metadata); everything else as an attachment.
        """
        return serve(attachment_id, thumbnail=False)


@blp.route("/attachments/<uuid:attachment_id>/thumbnail")
class AttachmentThumbnail(MethodView):
    @blp.doc(responses=FILE_RESPONSES, parameters=[RANGE, IF_NONE_MATCH])
    @blp.alt_response(409, response="DEFAULT_ERROR", description="Still being scanned.")
    @blp.alt_response(410, response="DEFAULT_ERROR", description="Rejected, infected, or not scanned.")
    @blp.alt_response(416, response="DEFAULT_ERROR", description="The `Range` lies outside the file.")
    def get(self, attachment_id: uuid.UUID):
        """Download a clean image's PNG thumbnail (at most 256 x 256); other files have none (404)."""
        return serve(attachment_id, thumbnail=True)


@blp.route("/media/types")
class MediaTypes(MethodView):
    @blp.response(200, MediaTypesSchema)
    def get(self):
        """List the file types this organization accepts, its size limit and its storage quota."""
        return services.media_types()


@blp.route("/media/settings")
class MediaSettings(MethodView):
    @admin_only
    @blp.response(200, MediaSettingsSchema)
    def get(self):
        """Get the organization's own media settings (null: the instance's)."""
        return services.settings_json()

    @admin_only
    @blp.arguments(MediaSettingsChangeSchema, required=False)
    @blp.response(200, MediaSettingsSchema)
    def patch(self, changes):
        """Narrow the allowed types or the size limit (null restores the instance's)."""
        body = services.update_settings(changes)
        db.session.commit()
        return body
