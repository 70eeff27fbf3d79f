"""Media pages: a file on a ticket, downloaded by a signed-in user who may see it.

The same service and checks as `GET /api/v1/attachments/{id}/download`: the tenant, the ticket's
visibility, internal files for staff only, and the scan state (pending answers 409, refused 410).
Files are served sandboxed, never as one of our pages.
"""

from __future__ import annotations

import uuid

from flask import Blueprint, Flask
from flask_login import login_required

from app.media.api import serve

bp = Blueprint("media_ui", __name__)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


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
