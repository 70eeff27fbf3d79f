"""An image's cleaned copy is held to the limits its upload was: the size limit and the quota.

The upload is checked by the bytes that arrive; the scan then re-encodes images, which can grow
them (a lossless WebP of a checkerboard, under 200 bytes, was saved again as lossy WebP of
hundreds of KiB). Lossless WebP now stays lossless, a copy over the size limit is refused, and
what the copy and its thumbnail add to the organization's use must fit its quota, or the image is
refused and nothing of it kept.
"""

from __future__ import annotations

import io
import random

from PIL import Image

from app.extensions import db
from app.media import services as media_services
from tests.helpers import new_ticket, upload_file

MAX_SIZE = 100_000
QUOTA = 300_000


def checkerboard_webp(side: int = 1500) -> bytes:
    pixels = bytes(255 if (x + y) % 2 else 0 for y in range(side) for x in range(side))
    out = io.BytesIO()
    Image.frombytes("L", (side, side), pixels).convert("RGB").save(out, "WEBP", lossless=True)
    return out.getvalue()


def test_a_tiny_image_cannot_become_a_file_over_the_limit_and_the_quota(tenant, media, run_scans,
                                                                        in_tenant):
    with in_tenant(tenant):
        media_services.set_quota(QUOTA)
        db.session.commit()
    assert tenant.api.patch("/api/v1/media/settings", json={"max_size": MAX_SIZE}).status_code == 200
    ticket = new_ticket(tenant.api)
    data = checkerboard_webp()
    assert len(data) < 1000

    uploaded = upload_file(tenant.api, ticket["id"], data, "board.webp")
    assert uploaded.status_code == 202, uploaded.get_json()
    run_scans(tenant)
    attachment = tenant.api.get(f"/api/v1/attachments/{uploaded.get_json()['id']}").get_json()
    used = tenant.api.get("/api/v1/media/types").get_json()["used_bytes"]

    # Whatever the scan decides (keep it lossless, or refuse it), what is stored and served
    # stays within the limit the upload was held to, and the organization within its quota.
    if attachment["status"] == "clean":
        served = tenant.api.get(f"/api/v1/attachments/{attachment['id']}/download")
        assert served.status_code == 200
        size = len(served.data)
        assert size <= MAX_SIZE, f"{len(data)} bytes uploaded became {size} bytes served; the limit is {MAX_SIZE}"
    assert used <= QUOTA, f"{used} bytes in use against a quota of {QUOTA}, from one {len(data)}-byte upload"


def noisy_jpeg(side: int = 600, quality: int = 5) -> bytes:
    """A JPEG saved at a low quality: cleaned (at quality 90) it is about twice as large."""
    rng = random.Random(1)
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), bytes(rng.getrandbits(8) for _ in range(side * side * 3))).save(
        out, "JPEG", quality=quality)
    return out.getvalue()


def _scanned(tenant, run_scans, data: bytes) -> dict:
    ticket = new_ticket(tenant.api)
    uploaded = upload_file(tenant.api, ticket["id"], data, "noise.jpg")
    assert uploaded.status_code == 202, uploaded.get_json()
    run_scans(tenant)
    return tenant.api.get(f"/api/v1/attachments/{uploaded.get_json()['id']}").get_json()


def test_a_cleaned_copy_over_the_size_limit_is_refused(tenant, media, run_scans):
    data = noisy_jpeg()
    assert tenant.api.patch("/api/v1/media/settings", json={"max_size": len(data) + 1000}).status_code == 200
    attachment = _scanned(tenant, run_scans, data)
    assert attachment["status"] == "rejected" and "over this organization's limit" in attachment["status_reason"]
    assert tenant.api.get(f"/api/v1/attachments/{attachment['id']}/download").status_code != 200
    assert tenant.api.get("/api/v1/media/types").get_json()["used_bytes"] == 0


def test_a_cleaned_copy_that_does_not_fit_the_quota_is_refused(tenant, media, run_scans, in_tenant):
    data = noisy_jpeg()
    with in_tenant(tenant):
        media_services.set_quota(len(data) + 1000)  # room for the upload, not for its cleaned copy
        db.session.commit()
    attachment = _scanned(tenant, run_scans, data)
    assert attachment["status"] == "rejected" and "storage quota" in attachment["status_reason"]
    assert tenant.api.get("/api/v1/media/types").get_json()["used_bytes"] == 0


def test_a_cleaned_copy_and_its_thumbnail_are_what_is_counted(tenant, media, run_scans):
    attachment = _scanned(tenant, run_scans, noisy_jpeg())
    assert attachment["status"] == "clean"
    served = tenant.api.get(f"/api/v1/attachments/{attachment['id']}/download")
    thumbnail = tenant.api.get(f"/api/v1/attachments/{attachment['id']}/thumbnail")
    assert len(served.data) == attachment["size"]
    assert tenant.api.get("/api/v1/media/types").get_json()["used_bytes"] == len(served.data) + len(thumbnail.data)
