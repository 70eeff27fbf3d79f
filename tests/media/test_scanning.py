"""The scan's verdicts against real clamd processes and real files: infected, clean, scan_failed when
the antivirus cannot give a verdict, rejected by type, structure and image decoding, metadata
stripped from the stored copy."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from PIL import Image

from app.audit import AuditEntry
from app.embedded import EmbeddedClamd
from app.media.clamd import ScannerError
from app.media.models import Attachment
from app.outbox.models import OutboxRow
from app.worker import run_outbox_row, use_app
from tests.helpers import get_attachment, new_ticket
from tests.media import samples
from tests.media.conftest import SCAN_HANDLER


@pytest.fixture
def ticket(tenant):
    return new_ticket(tenant.api)


def scanned(tenant, upload, run_scans, ticket, data: bytes, name: str, content_type: str | None = None) -> dict:
    resp = upload(tenant.api, ticket["id"], data, name, content_type)
    assert resp.status_code == 202, resp.get_json()
    run_scans(tenant)
    return get_attachment(tenant.api, resp.get_json()["id"])


def test_eicar_is_infected_deleted_and_never_served(tenant, ticket, upload, run_scans, stored):
    found = scanned(tenant, upload, run_scans, ticket, samples.eicar(), "eicar.txt")
    assert found["status"] == "infected" and found["antivirus"] == "clamav"
    assert "EICAR" in found["status_reason"]
    resp = tenant.api.get(found["download_url"])
    assert resp.status_code == 410 and resp.get_json()["code"] == 410
    assert stored(tenant, found["id"]) is None


def test_eicar_inside_a_zip_is_infected(tenant, ticket, upload, run_scans):
    found = scanned(tenant, upload, run_scans, ticket, samples.eicar_in_zip(), "tools.zip")
    assert found["status"] == "infected"


def test_a_clean_file_is_clean_and_served_as_uploaded(tenant, ticket, upload, run_scans, stored):
    found = scanned(tenant, upload, run_scans, ticket, samples.text(), "notes.txt")
    assert found["status"] == "clean" and found["antivirus"] == "clamav" and found["status_reason"] is None
    assert tenant.api.get(found["download_url"]).data == samples.text() == stored(tenant, found["id"])


@pytest.fixture(scope="module")
def stopped_clamd(tmp_path_factory) -> str:
    """Return the socket path of a clamd that was started and then stopped."""
    clamd = EmbeddedClamd(tmp_path_factory.mktemp("clamd-stopped")).start()
    clamd.stop()
    return clamd.socket_path


@pytest.fixture(scope="module")
def hung_scanner() -> Iterator[tuple[str, int]]:
    """Return the address of a 'scanner' that accepts connections and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_stopped_clamd_delays_the_scan_and_never_decides_it(app, tenant, ticket, upload, run_scans, monkeypatch,
                                                              stopped_clamd, clamd_socket, in_tenant):
    monkeypatch.setitem(app.config, "CLAMD_SOCKET", stopped_clamd)
    found = scanned(tenant, upload, run_scans, ticket, samples.text(), "notes.txt")  # six tries, all met the outage
    assert found["status"] == "pending"
    assert tenant.api.get(found["download_url"]).status_code == 409
    with in_tenant(tenant) as session:
        assert session.get(Attachment, found["id"]).scan_attempts == 0  # an outage is not the file's fault
        row = session.execute(sa.select(OutboxRow).where(OutboxRow.handler == SCAN_HANDLER)).scalar_one()
        assert "not reachable" in row.last_error and row.processed_at is None
    monkeypatch.setitem(app.config, "CLAMD_SOCKET", clamd_socket)  # clamd is back
    run_scans(tenant)
    found = get_attachment(tenant.api, found["id"])
    assert found["status"] == "clean" and found["antivirus"] == "clamav"
    with in_tenant(tenant) as session:
        assert session.get(Attachment, found["id"]).scan_attempts == 0  # a try reaching a verdict is given back


def test_a_scanner_that_never_answers_gives_scan_failed_and_nothing_is_kept(app, tenant, ticket, upload, run_scans,
                                                                             monkeypatch, hung_scanner, stored):
    monkeypatch.setitem(app.config, "CLAMD_SOCKET", "")
    monkeypatch.setitem(app.config, "CLAMD_HOST", hung_scanner[0])
    monkeypatch.setitem(app.config, "CLAMD_PORT", hung_scanner[1])
    monkeypatch.setitem(app.config, "CLAMD_TIMEOUT", 0.3)
    monkeypatch.setitem(app.config, "MEDIA_SCAN_ATTEMPTS", 2)
    data = samples.jpeg(noise=True)
    found = scanned(tenant, upload, run_scans, ticket, data, "photo.jpg")
    assert found["status"] == "scan_failed" and "after 2 tries" in found["status_reason"]
    assert found["size"] == len(data)  # still says what was uploaded
    assert stored(tenant, found["id"]) is None  # never served, so not kept
    assert tenant.api.get("/api/v1/media/types").get_json()["used_bytes"] == 0  # and the quota is given back


@pytest.fixture(scope="module")
def clamd_with_small_limits(tmp_path_factory) -> Iterator[dict[str, str]]:
    """Return the sockets of a clamd whose file limit is 1 MB (alerting over it) and one whose stream
    limit is 1 MB."""
    file_limit = EmbeddedClamd(tmp_path_factory.mktemp("clamd-maxfile"),
                               extra=("MaxFileSize 1M", "MaxScanSize 1M")).start()
    stream_limit = EmbeddedClamd(tmp_path_factory.mktemp("clamd-maxstream"), extra=("StreamMaxLength 1M",)).start()
    yield {"file": file_limit.socket_path, "stream": stream_limit.socket_path}
    file_limit.stop()
    stream_limit.stop()


@pytest.mark.parametrize("limit", ["file", "stream"])
def test_a_file_over_clamds_limits_is_scan_failed_never_clean(app, tenant, ticket, upload, run_scans, monkeypatch,
                                                              clamd_with_small_limits, limit):
    monkeypatch.setitem(app.config, "CLAMD_SOCKET", clamd_with_small_limits[limit])
    found = scanned(tenant, upload, run_scans, ticket, samples.text(60_000), "big.txt")  # about 2.3 MB
    assert found["status"] == "scan_failed", found
    assert ("Limits.Exceeded" in found["status_reason"] if limit == "file"
            else "size limit" in found["status_reason"] or "stopped reading" in found["status_reason"])


def test_with_no_scanner_configured_nothing_is_clean_and_uploads_wait_for_one(app, tenant, ticket, upload, run_scans,
                                                                               monkeypatch, clamd_socket, stored,
                                                                               in_tenant):
    """An operator's slip is an outage: ending such scans `scan_failed` deleted every accepted upload."""
    monkeypatch.setitem(app.config, "CLAMD_SOCKET", "")
    monkeypatch.setitem(app.config, "CLAMD_HOST", "")
    assert tenant.api.get("/api/v1/media/types").get_json()["antivirus"] == "not_configured"
    found = scanned(tenant, upload, run_scans, ticket, samples.text(), "notes.txt")  # six tries
    assert found["status"] == "pending" and stored(tenant, found["id"]) == samples.text()
    with in_tenant(tenant) as session:
        assert session.get(Attachment, found["id"]).scan_attempts == 0
        row = session.execute(sa.select(OutboxRow).where(OutboxRow.handler == SCAN_HANDLER)).scalar_one()
        assert "No antivirus is configured" in row.last_error and row.processed_at is None
    monkeypatch.setitem(app.config, "CLAMD_SOCKET", clamd_socket)  # the operator names clamd
    run_scans(tenant)
    assert get_attachment(tenant.api, found["id"])["status"] == "clean"


def test_a_try_without_a_verdict_fails_its_job_for_the_quick_retries(app, tenant, ticket, upload, monkeypatch,
                                                                      hung_scanner, in_tenant):
    """Raised as an outage, it was retried for MEDIA_SCAN_RETRY_BUDGET (hours) instead of RQ's `RETRY`."""
    monkeypatch.setitem(app.config, "CLAMD_SOCKET", "")
    monkeypatch.setitem(app.config, "CLAMD_HOST", hung_scanner[0])
    monkeypatch.setitem(app.config, "CLAMD_PORT", hung_scanner[1])
    monkeypatch.setitem(app.config, "CLAMD_TIMEOUT", 0.3)
    body = upload(tenant.api, ticket["id"], samples.text(), "notes.txt").get_json()
    with in_tenant(tenant) as session:
        row_id = session.execute(sa.select(OutboxRow.id).where(OutboxRow.handler == SCAN_HANDLER)).scalar_one()
    use_app(app)
    with pytest.raises(ScannerError, match="try 1 of 3"):  # a failed job: RQ retries it on `RETRY`
        run_outbox_row(tenant.slug, row_id)
    with in_tenant(tenant) as session:
        assert session.get(Attachment, body["id"]).scan_attempts == 1
        row = session.get(OutboxRow, row_id)
        assert "gave no verdict" in row.last_error and row.processed_at is None


def test_antivirus_turned_off_is_recorded_on_the_attachment(app, tenant, ticket, upload, run_scans, monkeypatch):
    monkeypatch.setitem(app.config, "MEDIA_ANTIVIRUS", "off")
    monkeypatch.setitem(app.config, "CLAMD_SOCKET", "")
    assert tenant.api.get("/api/v1/media/types").get_json()["antivirus"] == "off"
    found = scanned(tenant, upload, run_scans, ticket, samples.text(), "notes.txt")
    assert found["status"] == "clean" and found["antivirus"] == "off"
    # the other checks still run: a zip with ../ entries is still refused
    bad = scanned(tenant, upload, run_scans, ticket, samples.zip_of({"../evil.sh": b"x"}), "a.zip")
    assert bad["status"] == "rejected"


def test_a_png_named_exe_is_refused_and_a_png_is_what_it_is_whatever_it_declares(tenant, ticket, upload, run_scans):
    assert upload(tenant.api, ticket["id"], samples.png(), "holiday.exe", "image/png").status_code == 415
    found = scanned(tenant, upload, run_scans, ticket, samples.png(), "holiday", "application/octet-stream")
    assert found["status"] == "clean" and found["content_type"] == "image/png"
    # served under a name a person's computer opens as an image
    assert 'filename=holiday.png' in tenant.api.get(found["download_url"]).headers["Content-Disposition"]


def test_an_elf_named_png_is_refused_at_upload(tenant, ticket, upload):
    resp = upload(tenant.api, ticket["id"], samples.elf(), "cat.png", "image/png")
    assert resp.status_code == 415 and "application/x-" in resp.get_json()["message"]


def test_content_that_contradicts_its_name_is_rejected(tenant, ticket, upload, run_scans, stored):
    found = scanned(tenant, upload, run_scans, ticket, samples.pdf(), "cat.png")
    assert found["status"] == "rejected" and found["content_type"] == "application/pdf"
    assert "claims to be image/png" in found["status_reason"]
    assert tenant.api.get(found["download_url"]).status_code == 410
    assert stored(tenant, found["id"]) is None


def test_exif_gps_and_comments_are_gone_from_the_stored_image(tenant, ticket, upload, run_scans, stored):
    original = samples.jpeg_with_gps_and_comment()
    uploaded = Image.open(io.BytesIO(original))
    assert uploaded.getexif().get_ifd(0x8825) and samples.JPEG_COMMENT in original  # the sample carries both
    found = scanned(tenant, upload, run_scans, ticket, original, "home.jpg")
    assert found["status"] == "clean" and found["thumbnail_url"]
    kept = stored(tenant, found["id"], "clean")
    assert kept is not None and stored(tenant, found["id"], "original") is None  # the original is deleted
    image = Image.open(io.BytesIO(kept))
    assert image.format == "JPEG" and image.size == (80, 120)  # orientation applied to the pixels
    assert not image.getexif() and "comment" not in image.info and "exif" not in image.info
    for marker in (b"Exif", b"SpyCam", samples.JPEG_COMMENT, b"GPS"):
        assert marker not in kept
    assert found["size"] == len(kept)
    assert tenant.api.get(found["download_url"]).data == kept
    thumbnail = stored(tenant, found["id"], "thumbnail")
    assert b"Exif" not in thumbnail and Image.open(io.BytesIO(thumbnail)).format == "PNG"


def test_a_progressive_jpeg_with_too_many_scans_is_rejected_before_it_is_decoded(tenant, ticket, upload,
                                                                                 run_scans, stored):
    data = samples.progressive_jpeg_with_repeated_scan(repeats=1000)  # each scan decodes the whole 4000 x 4000
    assert len(data) < 200_000
    found = scanned(tenant, upload, run_scans, ticket, data, "photo.jpg")
    assert found["status"] == "rejected" and "more than 100 scans" in found["status_reason"]
    assert stored(tenant, found["id"]) is None
    # an ordinary progressive JPEG (ten scans), or one with a few dozen, is still an image like any other
    fine = scanned(tenant, upload, run_scans, ticket, samples.progressive_jpeg_with_repeated_scan(400, 80), "ok.jpg")
    assert fine["status"] == "clean" and fine["thumbnail_url"]


def test_only_the_first_picture_of_a_multi_picture_jpeg_is_decoded(tenant, ticket, upload, run_scans, stored,
                                                                   monkeypatch):
    """Pillow opens an MPO as frames and every frame was decoded, though the checks looked at the first
    alone: an 8 x 8 first picture let a 4000 x 4000 one with 2,000 scans hold the worker for 20 s."""
    from PIL import MpoImagePlugin

    data = samples.mpo_with_repeated_scan()
    assert len(data) < 205_000 and Image.open(io.BytesIO(data)).n_frames == 2
    frames = []
    real_seek = MpoImagePlugin.MpoImageFile.seek
    monkeypatch.setattr(MpoImagePlugin.MpoImageFile, "seek",
                        lambda self, frame: frames.append(frame) or real_seek(self, frame))
    found = scanned(tenant, upload, run_scans, ticket, data, "stereo.jpg")
    assert [f for f in frames if f > 0] == []  # the second picture was never reached
    assert found["status"] == "clean" and found["content_type"] == "image/jpeg"
    kept = Image.open(io.BytesIO(stored(tenant, found["id"], "clean")))
    assert kept.format == "JPEG" and kept.size == (8, 8) and getattr(kept, "n_frames", 1) == 1


def test_only_the_first_frame_of_an_animated_png_is_decoded(tenant, ticket, upload, run_scans, stored, monkeypatch):
    """Its copy is a still PNG of the first frame; every frame was decoded, and frames past the budget
    together (twenty of 2000 x 2000) refused an image whose copy needs four million pixels."""
    from PIL import PngImagePlugin

    out = io.BytesIO()
    frames = [Image.new("RGB", (2000, 2000), (n, 0, 0)) for n in range(20)]
    frames[0].save(out, "PNG", save_all=True, append_images=frames[1:], duration=50)
    sought = []
    real_seek = PngImagePlugin.PngImageFile.seek
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "seek",
                        lambda self, frame: sought.append(frame) or real_seek(self, frame))
    found = scanned(tenant, upload, run_scans, ticket, out.getvalue(), "spin.png")
    assert found["status"] == "clean" and [f for f in sought if f > 0] == []
    kept = Image.open(io.BytesIO(stored(tenant, found["id"], "clean")))
    assert kept.size == (2000, 2000) and getattr(kept, "n_frames", 1) == 1


def test_a_decompression_bomb_png_is_rejected_before_the_antivirus_inflates_it(tenant, ticket, upload, run_scans,
                                                                               monkeypatch):
    """clamd inflates an image to scan it: this 380 KB PNG held it 15 s, from any uploader. Its header
    is read first now, and the antivirus never sees it."""
    from app.media.clamd import Clamd

    scans = []
    real = Clamd.scan
    monkeypatch.setattr(Clamd, "scan", lambda self, *args: scans.append(args) or real(self, *args))
    bomb = samples.png_bomb()
    assert len(bomb) < 1024 * 1024  # 400 million pixels in well under a megabyte
    found = scanned(tenant, upload, run_scans, ticket, bomb, "bomb.png")
    assert found["status"] == "rejected" and "20000 x 20000 pixels" in found["status_reason"]
    assert found["antivirus"] is None and scans == []
    fine = scanned(tenant, upload, run_scans, ticket, samples.png(40, 30), "fine.png")
    assert fine["status"] == "clean" and len(scans) == 1


def test_a_gif_whose_frames_grow_its_canvas_past_the_pixel_budget_is_rejected(tenant, ticket, upload, run_scans):
    """Its header counts one pixel a frame; Pillow grows the canvas to 3000 x 3000 for each of the
    later ones, so eight frames would decode 72 million pixels against a budget of 60 million."""
    data = samples.growing_gif(frames=8, side=3000)
    assert len(data) < 200
    found = scanned(tenant, upload, run_scans, ticket, data, "tiny.gif")
    assert found["status"] == "rejected" and "grow to more than the 60000000 pixels" in found["status_reason"]
    fine = scanned(tenant, upload, run_scans, ticket, samples.growing_gif(frames=2, side=3000), "fine.gif")
    assert fine["status"] == "clean"


def test_each_frame_is_decoded_once_on_the_canvas_it_was_checked_at(tmp_path, monkeypatch):
    """Reading the frames' durations sought back and decoded every frame again on the canvas the last one
    grew: 999 one-pixel frames and a last at (7699, 7699) passed the check and held a worker for 163 s."""
    from PIL import GifImagePlugin

    from app.media.images import reencode

    prepared = []
    real = GifImagePlugin.GifImageFile.load_prepare
    monkeypatch.setattr(GifImagePlugin.GifImageFile, "load_prepare",
                        lambda self: prepared.append(self.size[0] * self.size[1]) or real(self))
    source = tmp_path / "late.gif"
    source.write_bytes(samples.growing_gif(frames=200, side=2000, grown=1))
    reencode(source, "image/gif", tmp_path, 4_100_000)
    assert sum(prepared) <= 4_100_000, f"{sum(prepared)} pixels decoded against a budget of 4,100,000"


def test_an_animated_webp_keeps_its_frames_durations(tenant, ticket, upload, run_scans, stored):
    out = io.BytesIO()
    frames = [Image.new("RGB", (20, 20), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:], duration=[50, 400, 1000], lossless=True)
    found = scanned(tenant, upload, run_scans, ticket, out.getvalue(), "spin.webp")
    assert found["status"] == "clean"
    kept = Image.open(io.BytesIO(stored(tenant, found["id"], "clean")))
    durations = []
    for index in range(kept.n_frames):
        kept.seek(index)
        kept.load()
        durations.append(kept.info["duration"])
    assert durations == [50, 400, 1000]


def test_a_gif_php_polyglot_is_rejected(tenant, ticket, upload, run_scans):
    found = scanned(tenant, upload, run_scans, ticket, samples.gif_php_polyglot(), "avatar.gif")
    assert found["status"] == "rejected" and "cannot be decoded" in found["status_reason"]


def test_a_zip_bomb_is_rejected(tenant, ticket, upload, run_scans):
    bomb = samples.zip_bomb(300)
    assert len(bomb) < 1024 * 1024
    found = scanned(tenant, upload, run_scans, ticket, bomb, "backup.zip")
    assert found["status"] == "rejected" and "decompression bomb" in found["status_reason"]


def test_a_zip_over_the_total_or_entry_count_is_rejected(app, tenant, ticket, upload, run_scans, monkeypatch):
    monkeypatch.setitem(app.config, "MEDIA_ZIP_MAX_ENTRIES", 50)
    many = scanned(tenant, upload, run_scans, ticket, samples.zip_of({f"f{i}.txt": b"x" for i in range(51)}), "m.zip")
    assert many["status"] == "rejected" and "51 entries" in many["status_reason"]
    monkeypatch.setitem(app.config, "MEDIA_ZIP_MAX_UNCOMPRESSED", 100_000)
    large = scanned(tenant, upload, run_scans, ticket, samples.zip_of({"a.txt": b"ab" * 60_000}), "l.zip")
    assert large["status"] == "rejected" and "expands to" in large["status_reason"]


@pytest.mark.parametrize("entry", ["../../etc/cron.d/evil", "docs/../../evil.txt", "/etc/passwd", "C:/evil.bat",
                                   "..\\evil.txt"])
def test_a_zip_with_escaping_entries_is_rejected(tenant, ticket, upload, run_scans, entry):
    archive = samples.zip_of({"fine.txt": b"ok", entry: b"payload"})
    found = scanned(tenant, upload, run_scans, ticket, archive, "files.zip")
    assert found["status"] == "rejected" and "escapes its folder" in found["status_reason"]


def test_an_office_file_with_macros_is_rejected_whatever_its_name(tenant, ticket, upload, run_scans):
    found = scanned(tenant, upload, run_scans, ticket, samples.docm(), "report.docx")
    assert found["status"] == "rejected" and "Macro" in found["status_reason"]


def test_a_zip_named_docx_is_rejected(tenant, ticket, upload, run_scans):
    found = scanned(tenant, upload, run_scans, ticket, samples.zip_of({"a.txt": b"hello"}), "report.docx")
    assert found["status"] == "rejected" and "claims to be" in found["status_reason"]


def test_a_type_the_tenant_narrowed_away_after_upload_is_rejected(tenant, ticket, upload, run_scans):
    resp = upload(tenant.api, ticket["id"], samples.pdf(), "a.pdf")
    assert tenant.api.patch("/api/v1/media/settings", json={"allowed_types": ["image/png"]}).status_code == 200
    run_scans(tenant)
    found = get_attachment(tenant.api, resp.get_json()["id"])
    assert found["status"] == "rejected" and "not allowed here" in found["status_reason"]


def test_each_verdict_is_recorded_once_in_the_audit_log(tenant, ticket, upload, run_scans, in_tenant):
    found = scanned(tenant, upload, run_scans, ticket, samples.text(), "a.txt")
    run_scans(tenant)  # nothing pending: nothing runs again
    with in_tenant(tenant) as session:
        actions = session.execute(sa.select(AuditEntry.action, AuditEntry.after).where(
            AuditEntry.entity == "attachment", AuditEntry.entity_id == found["id"]).order_by(AuditEntry.id)).all()
    assert [a for a, _ in actions] == ["uploaded", "scanned"] and actions[1][1]["status"] == "clean"
