"""Files for media tests, made here byte by byte: images with metadata, office files, archives,
bombs, polyglots. A library for the tests of this folder, not a test module."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

from PIL import Image

from app.embedded import EICAR

GPS_LATITUDE = (52.0, 31.0, 12.5)
JPEG_COMMENT = b"shot at home, 12 Secret Lane"


def png(width: int = 64, height: int = 48, color=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


def gif(width: int = 20, height: int = 20) -> bytes:
    out = io.BytesIO()
    Image.new("P", (width, height), 3).save(out, "GIF")
    return out.getvalue()


def webp(width: int = 20, height: int = 20) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (0, 120, 255)).save(out, "WEBP")
    return out.getvalue()


def jpeg(width: int = 640, height: int = 480, quality: int = 90, noise: bool = False) -> bytes:
    image = Image.effect_noise((width, height), 60).convert("RGB") if noise else Image.new(
        "RGB", (width, height), (10, 160, 90))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def progressive_jpeg_with_repeated_scan(side: int = 4000, repeats: int = 20_000) -> bytes:
    """A progressive JPEG with one of its small AC scans (31 bytes) appended `repeats` times before EOI.

    Each scan is decoded over the whole image, so the file is small and its decoding slow.
    """
    out = io.BytesIO()
    Image.new("RGB", (side, side), (120, 30, 200)).save(out, "JPEG", progressive=True, quality=90)
    data = out.getvalue()
    start = data.rindex(b"\xff\xda")  # the last scan: an AC refinement of the first component
    scan = data[start:-2]
    return data[:-2] + scan * repeats + b"\xff\xd9"


def mpo_with_repeated_scan(side: int = 4000, repeats: int = 2000) -> bytes:
    """A multi-picture JPEG (MPO): an 8 x 8 first picture, then a progressive side x side one whose
    last scan is repeated `repeats` times (libmagic calls it image/jpeg; Pillow opens two frames)."""
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 160, 90)).save(out, "MPO", save_all=True, progressive=True,
                                                 append_images=[Image.new("RGB", (side, side), (120, 30, 200))])
    data = out.getvalue()
    start = data.rindex(b"\xff\xda")  # the second picture's last scan; it ends the file, so no offset moves
    return data[:-2] + data[start:-2] * repeats + b"\xff\xd9"


def jpeg_with_gps_and_comment() -> bytes:
    """A JPEG photo carrying EXIF (camera, GPS position, orientation) and a JPEG comment."""
    image = Image.new("RGB", (120, 80), (240, 200, 10))
    exif = Image.Exif()
    exif[0x010F] = "SpyCam Inc."  # Make
    exif[0x0110] = "Model X"  # Model
    exif[0x0112] = 6  # Orientation: rotate 90 degrees to display
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = GPS_LATITUDE
    gps[3] = "E"
    gps[4] = (13.0, 24.0, 36.0)
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, comment=JPEG_COMMENT)
    return out.getvalue()


def png_bomb(side: int = 20000) -> bytes:
    """A real decompression bomb: a side x side grayscale PNG of zeros, a few hundred KiB on disk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    compressor = zlib.compressobj(9)
    row = b"\x00" * (side + 1)  # filter byte + pixels
    rows_per_step = max(1, (4 * 1024 * 1024) // len(row))
    parts = []
    done = 0
    while done < side:
        step = min(rows_per_step, side - done)
        parts.append(compressor.compress(row * step))
        done += step
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")


def growing_gif(frames: int, side: int, grown: int | None = None) -> bytes:
    """A GIF whose screen is 1 x 1 and whose frames are each one pixel: the first `frames - grown` at (0, 0),
    the others (all but the first, by default) at (side - 1, side - 1). Pillow grows the canvas to `side` x
    `side` for those, though the header counts one pixel a frame."""
    # LZW with minimum code size 2, one sub-block of 2 bytes (clear, colour 0, end), then the blocks' end
    pixel = b"\x02" + b"\x02\x44\x01" + b"\x00"
    def frame(at: int) -> bytes:
        return b"\x2c" + struct.pack("<HHHH", at, at, 1, 1) + b"\x00" + pixel
    grown = frames - 1 if grown is None else grown
    body = b"".join(frame(0) for _ in range(frames - grown)) + b"".join(frame(side - 1) for _ in range(grown))
    return b"GIF89a" + struct.pack("<HH", 1, 1) + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff" + body + b"\x3b"


def gif_php_polyglot() -> bytes:
    """A GIF header a 10 x 10 screen, followed by PHP where image data should be."""
    return b"GIF89a\x0a\x00\x0a\x00\x00\x00\x00" + b"<?php system($_GET['cmd']); ?>\n" * 20


def pdf() -> bytes:
    body = (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
            b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
            b"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >> endobj\n")
    return body + b"trailer << /Root 1 0 R >>\n%%EOF\n"


def text(lines: int = 20) -> bytes:
    return "".join(f"line {i}: the printer is on fire again\n" for i in range(lines)).encode()


def csv() -> bytes:
    return b"ticket,priority,owner\n1,high,ana\n2,low,bo\n3,normal,cy\n"


def _ooxml(main: str, content_type: str, extra: dict[str, bytes] | None = None) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", (
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            f'relationships+xml"/><Override PartName="/{main}" ContentType="{content_type}"/></Types>'))
        archive.writestr("_rels/.rels", '<?xml version="1.0"?><Relationships xmlns="http://schemas.'
                                        'openxmlformats.org/package/2006/relationships"/>')
        archive.writestr(main, "<doc>hello</doc>")
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return out.getvalue()


def docx() -> bytes:
    return _ooxml("word/document.xml",
                  "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml")


def docm() -> bytes:
    return _ooxml("word/document.xml", "application/vnd.ms-word.document.macroEnabled.main+xml",
                  {"word/vbaProject.bin": b"\xd0\xcf\x11\xe0 macro"})


def xlsx() -> bytes:
    return _ooxml("xl/workbook.xml", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml")


def zip_of(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(zipfile.ZipInfo(name), data, zipfile.ZIP_DEFLATED)
    return out.getvalue()


def zip_bomb(megabytes: int = 300) -> bytes:
    """One entry of `megabytes` MiB of zeros: about a thousand times smaller packed."""
    out = io.BytesIO()
    with (zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
          archive.open("zeros.bin", "w", force_zip64=True) as entry):
        block = b"\x00" * (1024 * 1024)
        for _ in range(megabytes):
            entry.write(block)
    return out.getvalue()


def elf() -> bytes:
    return Path("/bin/true").read_bytes()


def eicar() -> bytes:
    return EICAR


def eicar_in_zip() -> bytes:
    return zip_of({"readme.txt": b"nothing to see", "eicar.com": EICAR})
