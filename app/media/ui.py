"""Media pages: files uploaded from the new-ticket form and the composer, and downloads of the files
a signed-in user may see.

Uploads stream: the page's script sends one file at a time to `POST /tickets/<number>/attachments`
with its CSRF token in a header, and gets the attachment's JSON (or the API's refusal: 413 or 415,
worded for the field, or 503 with Retry-After when the storage cannot take the file); the forms
themselves also carry files without the script (`app.media.page_forms`). Downloads go through
the same service and checks as `GET /api/v1/attachments/{id}/download`: the tenant, the ticket's
visibility, internal files for staff only, and the scan state (pending answers 409, refused 410).
Files are served sandboxed, never as one of our pages.
"""

from __future__ import annotations

import uuid

from flask import Blueprint, Flask, flash, jsonify, redirect, request, url_for
from flask_login import login_required
from flask_wtf.csrf import CSRFError

from app.auth.actor import current_actor
from app.errors import DomainError
from app.extensions import db
from app.http_errors import api_error_response, http_error
from app.media import services
from app.media.api import serve
from app.media.page_forms import check_csrf, drain, streams_body
from app.tickets.services import ticket_by_number
from app.tickets.ui import ticket_page
from app.ui.pages import refusal_json, refusals, wants_json

bp = Blueprint("media_ui", __name__)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


@bp.post("/tickets/<int:number>/attachments")
@streams_body
@login_required
def upload(number: int):
    """Upload one file (multipart part `file`) to a ticket the signed-in user can see; answer its JSON (202).

    The CSRF token comes in the `X-CSRFToken` header or the `csrf_token` query parameter, never
    from the body, which streams to storage as it arrives.
    """
    try:
        check_csrf(request.headers.get("X-CSRFToken") or request.args.get("csrf_token"))
        actor = current_actor()
        ticket_id = ticket_by_number(actor, number).id
        request.max_content_length = services.upload_request_limit()
        attachment = services.upload_attachment(actor, ticket_id, request.stream, request.content_type,
                                                request.content_length)
        body = services.attachment_json(attachment)
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        drain()
        error = http_error(exc)
        if exc.errors == {} and error.code in (413, 415):
            error.data["errors"] = {"file": [exc.message]}  # said beside the file field
        return api_error_response(error)
    except CSRFError as exc:
        drain()
        return api_error_response(exc)
    return jsonify(body), 202


@bp.post("/tickets/<int:number>/attachments/<uuid:attachment_id>/delete")
@login_required
def delete(number: int, attachment_id: uuid.UUID):
    """Delete a file of the ticket (its uploader, or an admin): the composer's Remove and a file's Delete button.

    The page's script asks for JSON (204, or the refusal as the API words it); the form without
    the script comes back to the ticket page.
    """
    actor = current_actor()
    with refusals() as refused:
        ticket_id = ticket_by_number(actor, number).id
        attachment = services.delete_attachment(actor, attachment_id, ticket_id)
        db.session.commit()
        if wants_json():
            return "", 204
        flash(f"{attachment.filename} is deleted.", "success")
        return redirect(url_for("tickets_ui.ticket", number=number))
    if wants_json():
        return refusal_json(refused.refusal)
    return ticket_page(number, refused.refusal, "files")


@bp.get("/attachments/<uuid:attachment_id>")
@login_required
def download(attachment_id: uuid.UUID):
    """Download a clean file of a ticket the signed-in user can see."""
    return serve(attachment_id, thumbnail=False)


@bp.get("/attachments/<uuid:attachment_id>/thumbnail")
@login_required
def thumbnail(attachment_id: uuid.UUID):
    """Show a clean image's thumbnail."""
    return serve(attachment_id, thumbnail=True)
