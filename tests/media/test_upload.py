"""Uploading: 202 pending, limits while streaming (413), types plainly not allowed (415), bad bodies
(4xx, nothing stored), file names made safe, Idempotency-Key over the file's bytes."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from PIL import Image

from app.media.models import Attachment, MediaSettings
from tests.helpers import get_attachment, new_ticket
from tests.media import samples


def usage(in_tenant, tenant) -> tuple[int, int]:
    """Return (attachments, used bytes) straight from the tenant's tables."""
    with in_tenant(tenant) as session:
        count = session.execute(sa.select(sa.func.count()).select_from(Attachment)).scalar_one()
        used = session.execute(sa.select(MediaSettings.used_bytes)).scalar_one()
    return count, used


def stored_files(services) -> set[str]:
    """Return every file under the media folder, relative to it (temporary parts included)."""
    root = Path(services.media_dir)
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


@pytest.fixture
def ticket(tenant):
    return new_ticket(tenant.api)


def test_upload_answers_202_pending_then_the_scan_serves_a_clean_copy(tenant, ticket, upload, run_scans):
    resp = upload(tenant.api, ticket["id"], samples.png(), "screenshot.png")
    assert resp.status_code == 202, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "pending" and body["filename"] == "screenshot.png"
    assert body["content_type"] == "image/png" and body["size"] == len(samples.png())
    assert body["ticket_id"] == ticket["id"] and body["uploader_id"] == tenant.admin_id
    assert body["message_id"] is None and body["thumbnail_url"] is None and body["antivirus"] is None
    download = tenant.api.get(body["download_url"])
    assert download.status_code == 409 and download.get_json()["code"] == 409

    assert run_scans(tenant) == 2  # the scan, then the deletion of the original its clean copy replaced
    clean = get_attachment(tenant.api, body["id"])
    assert clean["status"] == "clean" and clean["antivirus"] == "clamav" and clean["scanned_at"]
    served = tenant.api.get(clean["download_url"])
    assert served.status_code == 200 and served.mimetype == "image/png"
    assert served.headers["Content-Disposition"].startswith("inline")
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served.headers["Content-Security-Policy"]
    assert Image.open(io.BytesIO(served.data)).size == (64, 48)
    thumb = tenant.api.get(clean["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.mimetype == "image/png"
    assert max(Image.open(io.BytesIO(thumb.data)).size) <= 256


@pytest.mark.parametrize("name,data,content_type", [
    ("notes.txt", samples.text(), "text/plain"),
    ("export.csv", samples.csv(), "text/csv"),
    ("invoice.pdf", samples.pdf(), "application/pdf"),
    ("letter.docx", samples.docx(), "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("sheet.xlsx", samples.xlsx(), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("logs.zip", samples.zip_of({"a/log.txt": b"x" * 1000}), "application/zip"),
])
def test_documents_are_served_as_attachments(tenant, ticket, upload, run_scans, name, data, content_type):
    body = upload(tenant.api, ticket["id"], data, name).get_json()
    run_scans(tenant)
    assert get_attachment(tenant.api, body["id"])["content_type"] == content_type
    served = tenant.api.get(body["download_url"])
    assert served.status_code == 200 and served.data == data and served.mimetype == content_type
    assert served.headers["Content-Disposition"].startswith("attachment;")
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served.headers["Content-Security-Policy"]
    assert served.headers["Cache-Control"] == "private, no-store"
    assert tenant.api.get(f"/api/v1/attachments/{body['id']}/thumbnail").status_code == 404


@pytest.mark.parametrize("name,data,content_type", [
    ("photo.jpg", samples.jpeg(), "image/jpeg"),
    ("anim.gif", samples.gif(), "image/gif"),
    ("pic.webp", samples.webp(), "image/webp"),
])
def test_every_image_type_is_reencoded_with_a_thumbnail(tenant, ticket, upload, run_scans, name, data, content_type):
    body = upload(tenant.api, ticket["id"], data, name).get_json()
    run_scans(tenant)
    clean = get_attachment(tenant.api, body["id"])
    assert clean["status"] == "clean" and clean["content_type"] == content_type
    served = tenant.api.get(clean["download_url"])
    assert served.mimetype == content_type and Image.open(io.BytesIO(served.data)).format in name.upper() + "JPEG"
    assert tenant.api.get(clean["thumbnail_url"]).status_code == 200


def test_media_types_lists_the_contract_types_and_limits(tenant, media):
    body = tenant.api.get("/api/v1/media/types").get_json()
    assert [t["content_type"] for t in body["types"]] == [
        "image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain", "text/csv",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "application/zip"]
    assert body["max_size"] == body["instance_max_size"] == 25 * 1024 * 1024
    assert body["used_bytes"] == 0 and body["quota_bytes"] > 0 and body["antivirus"] == "clamav"


def test_over_the_size_limit_is_413_and_stores_nothing(tenant, ticket, upload, in_tenant, services):
    assert tenant.api.patch("/api/v1/media/settings", json={"max_size": 100_000}).status_code == 200
    before = stored_files(services)
    resp = upload(tenant.api, ticket["id"], samples.text(10_000), "big.txt")  # about 400 kB
    assert resp.status_code == 413, resp.get_json()
    assert resp.get_json()["status"] == "Request Entity Too Large"
    assert "larger than the limit" in resp.get_json()["message"]
    assert usage(in_tenant, tenant) == (0, 0)
    assert stored_files(services) == before
    assert upload(tenant.api, ticket["id"], samples.text(100), "small.txt").status_code == 202


def test_a_requesters_file_on_their_closed_ticket_is_409_and_stores_nothing(tenant, upload, in_tenant, services):
    """It could go on no message (they reopen the ticket to write again); staff may still add files."""
    requester = tenant.key_for(tenant.user("requester"))
    ticket = new_ticket(requester)
    assert requester.post(f"/api/v1/tickets/{ticket['id']}/close", json={}).status_code == 200
    before = stored_files(services)
    resp = upload(requester, ticket["id"], samples.text(100), "late.txt")
    assert resp.status_code == 409, resp.get_json()
    assert resp.get_json()["message"] == "This ticket is closed; reopen it to write again."
    assert usage(in_tenant, tenant) == (0, 0)
    assert stored_files(services) == before
    assert upload(tenant.api, ticket["id"], samples.text(100), "fix.txt").status_code == 202
    assert requester.post(f"/api/v1/tickets/{ticket['id']}/reopen").status_code == 200
    assert upload(requester, ticket["id"], samples.text(100), "late.txt").status_code == 202


def test_a_body_declared_over_the_limit_is_refused_before_it_is_read(tenant, ticket, media):
    class Unreadable(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return True

        def seek(self, offset: int, whence: int = 0) -> int:
            return 0

        def readinto(self, buffer) -> int:
            raise AssertionError("the body was read")

    resp = tenant.api.client.post(
        f"/api/v1/tickets/{ticket['id']}/attachments", input_stream=Unreadable(),
        environ_overrides={"CONTENT_LENGTH": str(200 * 1024 * 1024)},
        headers={"Authorization": f"Bearer {tenant.key}", "Content-Type": "multipart/form-data; boundary=x"})
    assert resp.status_code == 413


def test_full_quota_is_413_and_a_refused_file_gives_its_space_back(app, tenant, ticket, upload, run_scans, in_tenant):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["media", "quota", tenant.slug, "3000"]).exit_code == 0
    first = upload(tenant.api, ticket["id"], b"a" * 2000 + b"\n", "a.txt")
    assert first.status_code == 202
    second = upload(tenant.api, ticket["id"], b"b" * 2000 + b"\n", "b.txt")
    assert second.status_code == 413 and "quota" in second.get_json()["message"]
    assert usage(in_tenant, tenant) == (1, 2001)
    virus = upload(tenant.api, ticket["id"], samples.eicar(), "eicar.txt")
    assert virus.status_code == 202
    assert usage(in_tenant, tenant) == (2, 2001 + len(samples.eicar()))
    run_scans(tenant)
    assert get_attachment(tenant.api, virus.get_json()["id"])["status"] == "infected"
    assert usage(in_tenant, tenant) == (2, 2001)  # the infected file is deleted and no longer counted
    assert "2001 of 3000" in runner.invoke(args=["media", "quota", tenant.slug]).output
    assert tenant.api.get("/api/v1/media/types").get_json()["quota_bytes"] == 3000


@pytest.mark.parametrize("name,data,content_type", [
    ("screenshot.exe", samples.png(), "image/png"),  # a PNG named .exe: its name is its claim
    ("screenshot.exe", samples.png(), None),
    ("photo.png", samples.elf(), "image/png"),  # an ELF named .png: its first bytes give it away
    ("tool", samples.elf(), None),
    ("clip", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100, "video/mp4"),
    ("page.txt", b"<!DOCTYPE html><html><script>alert(1)</script></html>\n", "text/plain"),
    ("run.sh", b"#!/bin/sh\nrm -rf /\n", "text/plain"),
    ("macro.docm", samples.docm(), None),
    ("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "image/svg+xml"),
])
def test_a_type_plainly_not_allowed_is_415_and_stores_nothing(tenant, ticket, upload, in_tenant, services, name,
                                                              data, content_type):
    before = stored_files(services)
    resp = upload(tenant.api, ticket["id"], data, name, content_type)
    assert resp.status_code == 415, resp.get_json()
    body = resp.get_json()
    assert body["code"] == 415 and "not an allowed type" in body["message"] and "PNG image" in body["message"]
    assert usage(in_tenant, tenant) == (0, 0)
    assert stored_files(services) == before


def test_windows_names_for_allowed_types_are_accepted(tenant, ticket, upload, run_scans):
    # Browsers on Windows declare a CSV as an Excel sheet and a ZIP as x-zip-compressed.
    csv = upload(tenant.api, ticket["id"], samples.csv(), "report.csv", "application/vnd.ms-excel")
    archive = upload(tenant.api, ticket["id"], samples.zip_of({"a.txt": b"hi"}), "files.zip",
                     "application/x-zip-compressed")
    assert csv.status_code == archive.status_code == 202
    run_scans(tenant)
    assert get_attachment(tenant.api, csv.get_json()["id"])["status"] == "clean"
    assert get_attachment(tenant.api, archive.get_json()["id"])["status"] == "clean"


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "b0undary") -> bytes:
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def post_raw(tenant, ticket, body: bytes, content_type: str = "multipart/form-data; boundary=b0undary"):
    return tenant.api.client.post(f"/api/v1/tickets/{ticket['id']}/attachments", data=body,
                                  headers={"Authorization": f"Bearer {tenant.key}", "Content-Type": content_type})


@pytest.mark.parametrize("case,status", [
    ("json", 415),
    ("no boundary", 400),
    ("no file part", 422),
    ("empty file", 422),
    ("truncated in the file", 400),
    ("truncated in the headers", 400),
    ("garbage", 400),
    ("fields only, too much", 400),
    ("too many parts", 400),
    ("two files", 422),  # the second was dropped without a word (review)
    ("a file in another part after it", 422),
    ("fields after the file, too much", 400),
])
def test_bad_bodies_get_a_4xx_in_the_error_shape_and_change_nothing(tenant, ticket, media, in_tenant, services,
                                                                    case, status):
    whole = multipart([("note", None, b"hello"), ("file", "a.txt", samples.text())])
    bodies = {
        "json": (b'{"file": "aGVsbG8="}', "application/json"),
        "no boundary": (whole, "multipart/form-data"),
        "no file part": (multipart([("note", None, b"hello")]), None),
        "empty file": (multipart([("file", "a.txt", b"")]), None),
        "truncated in the file": (whole[: len(whole) - 200], None),
        "truncated in the headers": (whole[:20], None),
        "garbage": (os.urandom(5000), None),
        "fields only, too much": (multipart([("note", None, b"x" * 200_000)]), None),
        "too many parts": (multipart([("note", None, b"x")] * 30 + [("file", "a.txt", samples.text())]), None),
        "two files": (multipart([("file", "a.txt", samples.text()), ("file", "b.txt", samples.text())]), None),
        "a file in another part after it": (multipart([("file", "a.txt", samples.text()),
                                                       ("other", "b.txt", samples.text())]), None),
        "fields after the file, too much": (multipart([("file", "a.txt", samples.text()),
                                                       ("note", None, b"x" * 200_000)]), None),
    }
    body, content_type = bodies[case]
    before = stored_files(services)
    resp = post_raw(tenant, ticket, body, content_type or "multipart/form-data; boundary=b0undary")
    assert resp.status_code == status, resp.get_json()
    error = resp.get_json()
    assert error["code"] == status and error["message"]
    assert usage(in_tenant, tenant) == (0, 0)
    assert stored_files(services) == before


def test_an_empty_file_input_after_the_file_is_no_second_file(tenant, ticket, media):
    """A form with a second file input left empty sends a part with no name and no bytes: not a file."""
    body = multipart([("file", "a.txt", samples.text()), ("more", "", b""), ("note", None, b"hello")])
    resp = post_raw(tenant, ticket, body)
    assert resp.status_code == 202 and resp.get_json()["filename"] == "a.txt"


@pytest.mark.parametrize("raw,expected", [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\windows\\system32\\evil.txt", "windowssystem32evil.txt"),  # quoted-pair escapes, no path
    ("\\\\server\\share\\evil.txt", "evil.txt"),
    ("C:\\Users\\ana\\report.txt", "report.txt"),
    ("..\uff0f..\uff0fsecret.txt", "secret.txt"),  # full-width solidus: NFKC makes it a slash first
    ("invoice\u202etxt.exe.txt", "invoicetxt.exe.txt"),  # right-to-left override dropped
    ("zero\u200bwidth\u200d.txt", "zerowidth.txt"),
    ("new\x0bline\t\x1b[31m.txt", "newline[31m.txt"),
    ("\uff46\uff55\uff4c\uff4c.txt", "full.txt"),  # full-width letters
    ("e\u0301te\u0301.txt", "été.txt"),  # decomposed accents composed
    ("what?<is>*this|.txt", "what__is__this_.txt"),
    ("con.txt", "_con.txt"),
    ("...", "attachment"),
    (".htaccess.txt", "htaccess.txt"),
    ("", "attachment"),
])
def test_hostile_filenames_are_made_safe_and_never_name_the_stored_object(tenant, ticket, upload, services, raw,
                                                                         expected):
    before = stored_files(services)
    resp = upload(tenant.api, ticket["id"], samples.text(), raw)
    assert resp.status_code == 202, resp.get_json()
    assert resp.get_json()["filename"] == expected
    new = stored_files(services) - before
    assert [path.split("/")[-1] for path in new] == ["original"]
    assert resp.get_json()["id"] in new.pop()


def test_a_nul_in_the_filename_is_dropped(tenant, ticket, media):
    body = multipart([("file", "bad\x00name.txt", samples.text())])
    resp = post_raw(tenant, ticket, body)
    assert resp.status_code == 202, resp.get_json()
    assert resp.get_json()["filename"] == "badname.txt"


def test_a_very_long_name_is_capped_and_keeps_its_extension(tenant, ticket, upload):
    resp = upload(tenant.api, ticket["id"], samples.text(), "ä" * 5000 + ".txt")
    name = resp.get_json()["filename"]
    assert len(name) == 200 and name.endswith(".txt")


def test_downloads_of_a_clean_file_name_it_safely(tenant, ticket, upload, run_scans):
    body = upload(tenant.api, ticket["id"], samples.pdf(), "quote 2026 \u2013 é.pdf").get_json()
    run_scans(tenant)
    disposition = tenant.api.get(body["download_url"]).headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''quote%202026%20%E2%80%93%20%C3%A9.pdf" in disposition


def test_a_download_serves_one_range_of_bytes_and_ignores_a_range_it_cannot_serve(tenant, ticket, upload,
                                                                                  run_scans):
    data = samples.text()
    body = upload(tenant.api, ticket["id"], data, "notes.txt").get_json()
    run_scans(tenant)
    url, size = body["download_url"], len(data)

    part = tenant.api.get(url, headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and part.data == data[:10]
    assert part.headers["Content-Range"] == f"bytes 0-9/{size}"
    tail = tenant.api.get(url, headers={"Range": "bytes=-5"})
    assert tail.status_code == 206 and tail.data == data[-5:]

    past = tenant.api.get(url, headers={"Range": f"bytes={size}-"})
    assert past.status_code == 416 and past.headers["Content-Range"] == f"bytes */{size}"
    assert past.get_json()["code"] == 416 and past.get_json()["message"]

    # Another unit, bad syntax or several ranges: the header is ignored and the whole file sent (RFC 9110).
    for header in ("items=0-1", "bytes=abc", "bytes=5-2", "bytes=0-1,3-4", "bytes=0-1;x"):
        whole = tenant.api.get(url, headers={"Range": header})
        assert whole.status_code == 200 and whole.data == data, header

    stale = tenant.api.get(url, headers={"Range": "bytes=0-9", "If-Range": '"not-its-etag"'})
    assert stale.status_code == 200 and stale.data == data


def test_the_multipart_type_is_read_whatever_its_case(tenant, ticket, media):
    resp = post_raw(tenant, ticket, multipart([("file", "a.txt", samples.text())]),
                    "MULTIPART/Form-Data; boundary=b0undary")
    assert resp.status_code == 202, resp.get_json()


def test_a_clean_file_lost_from_storage_answers_410(tenant, ticket, upload, run_scans, services):
    body = upload(tenant.api, ticket["id"], samples.text(), "a.txt").get_json()
    run_scans(tenant)
    for path in Path(services.media_dir).rglob(f"{body['id']}/original"):
        path.unlink()
    resp = tenant.api.get(body["download_url"])
    assert resp.status_code == 410 and resp.get_json()["message"] == "The file is no longer in storage."


def test_idempotency_key_replays_the_same_file_and_refuses_other_bytes(tenant, ticket, upload, in_tenant, services):
    key = {"Idempotency-Key": "upload-1"}
    first = upload(tenant.api, ticket["id"], samples.text(), "a.txt", headers=key)
    files = stored_files(services)
    again = upload(tenant.api, ticket["id"], samples.text(), "a.txt", headers=key)
    assert first.status_code == again.status_code == 202
    assert again.get_json() == first.get_json() and again.headers["Idempotent-Replayed"] == "true"
    assert usage(in_tenant, tenant) == (1, len(samples.text()))
    assert stored_files(services) == files  # the repeat's copy was deleted again
    other = upload(tenant.api, ticket["id"], samples.text(3), "a.txt", headers=key)
    assert other.status_code == 422 and "Idempotency-Key" in other.get_json()["errors"]
    assert usage(in_tenant, tenant) == (1, len(samples.text()))
    assert stored_files(services) == files
    too_long = upload(tenant.api, ticket["id"], samples.text(), "a.txt", headers={"Idempotency-Key": "k" * 300})
    assert too_long.status_code == 422
