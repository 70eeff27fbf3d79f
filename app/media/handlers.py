"""Outbox handlers: each upload is scanned by an RQ worker on the `media` queue, never in a request.

Fed from the outbox, so an upload's scan survives a dead worker or a Redis outage: the relay
hands the row to RQ again until a job has decided the file. The job is idempotent (it acts only
on a `pending` attachment) and counts its attempts, see `services.scan_attachment`. A deleted
attachment's stored objects, and those a verdict did away with, are deleted the same way, so a
storage outage only delays it.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Flask

from app.media import services
from app.outbox import subscribe

QUEUE = "media"


def init_app(app: Flask) -> None:
    """Nothing to set: importing this module subscribed its handler; `create_app` names it here."""


@subscribe(services.UPLOADED, queue=QUEUE)
def scan_uploaded_attachment(payload: dict[str, Any]) -> None:
    """Detect the type, check the structure, run the antivirus and re-encode images of one upload."""
    services.scan_attachment(uuid.UUID(payload["attachment_id"]))


@subscribe(services.DELETED, queue=QUEUE)
def delete_attachment_objects(payload: dict[str, Any]) -> None:
    """Delete the stored objects of an attachment someone deleted (deleting what is gone already is fine)."""
    services.delete_objects(uuid.UUID(payload["attachment_id"]))


@subscribe(services.DISCARDED, queue=QUEUE)
def discard_scanned_objects(payload: dict[str, Any]) -> None:
    """Delete what a scan's verdict did away with: a refused file's objects, a cleaned image's original."""
    services.delete_objects(uuid.UUID(payload["attachment_id"]), payload["variants"])
