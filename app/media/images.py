"""Re-encode images with no metadata, make thumbnails, and refuse what does not decode safely.

A plain re-save keeps too much: Pillow writes an image's JPEG comment, ICC profile and, if
asked, its EXIF back out. So the pixels of each frame are copied into a fresh image that has
never had an `info` dict, and only that is saved: EXIF (GPS included), XMP, comments and text
chunks cannot survive. EXIF orientation is applied to the pixels first, so photos stay upright.

A file that libmagic calls an image but Pillow cannot fully decode (a GIF header in front of a
PHP script, a truncated file) is refused, and so is a decompression bomb: the pixel count is
read from the header and checked before any pixel is decoded. So is a JPEG with more than
`MAX_SCANS` scans: libjpeg decodes every scan of a progressive JPEG over the whole image, so a
small file can repeat a tiny scan thousands of times and hold a worker's CPU for minutes (a
4000 x 4000 image with one 31-byte scan repeated 20,000 times took 22.6 s). The scans are
counted from the file's markers before anything is decoded, as libjpeg-turbo's `-maxscans` does.

Only the first picture of a JPEG is decoded. Pillow opens a multi-picture JPEG (MPO: a stereo
pair, a depth map) as frames, but a JPEG's copy holds one picture, so the others would be dropped
anyway; decoding them went unchecked too (an 8 x 8 first picture let a 4000 x 4000 second one with
2,000 scans hold a worker for 20 s). So the size and scan checks are of the first picture, the only
one decoded: counting the later pictures instead would walk bytes after the first EOI, where
cameras also append data that is no JPEG at all (a motion photo's video).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from PIL import Image, ImageOps, ImageSequence

FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP"}
THUMBNAIL_SIZE = (256, 256)
MAX_FRAMES = 1000
# A progressive JPEG from a camera or an encoder has about ten scans; libjpeg allows 2^31.
MAX_SCANS = 100
SOS = 0xDA
EOI = 0xD9
# Modes each format can hold as they are; other modes are converted first.
KEPT_MODES = {"PNG": {"1", "L", "LA", "P", "RGB", "RGBA"}, "JPEG": {"L", "RGB", "CMYK"},
              "GIF": {"P", "L"}, "WEBP": {"RGB", "RGBA"}}


# What Pillow raises for a file it cannot read as an image (an OSError with an errno is the worker's disk).
UNREADABLE = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError, MemoryError)


class ImageRefused(Exception):
    """The file is not an image we can safely decode; the message says why."""


@dataclass(frozen=True)
class CleanImage:
    path: Path
    thumbnail: Path


def reencode(source: Path, content_type: str, out_dir: Path, max_pixels: int) -> CleanImage:
    """Write a metadata-free copy of an image and its PNG thumbnail into `out_dir`.

    Raises ImageRefused for an image that cannot be decoded safely, and OSError (with an errno) when
    the worker's own disk fails: that is not the image's fault.
    """
    expected = FORMATS[content_type]
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        if expected == "JPEG" and _jpeg_scans(source, stop=MAX_SCANS + 1) > MAX_SCANS:
            raise ImageRefused(f"The JPEG has more than {MAX_SCANS} scans, too many to decode safely.")
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return _reencode(source, expected, out_dir, max_pixels)
    except ImageRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRefused(f"The image has too many pixels to decode safely: {exc}") from exc
    except UNREADABLE as exc:
        if isinstance(exc, OSError) and exc.errno is not None:  # the worker's disk (full, gone), not the image
            raise
        raise ImageRefused(f"The image cannot be decoded: {exc}") from exc
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def check_pixels(source: Path, content_type: str, max_pixels: int) -> None:
    """Refuse an image whose header alone gives it more than `max_pixels` pixels, decoding nothing.

    For before the antivirus: clamd inflates an image to scan it, and a 380 KB PNG of 400 million
    pixels held it for 15 s. A file this cannot read is left to `reencode`, which checks again
    (frames included) as it decodes.
    """
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # the size is compared below; opening reads the header alone
    try:
        with Image.open(source, formats=[FORMATS[content_type]]) as image:
            width, height = image.size
    except UNREADABLE as exc:
        if isinstance(exc, OSError) and exc.errno is not None:  # the worker's disk, not the image
            raise
        return
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    if width * height > max_pixels:
        raise ImageRefused(f"The image is {width} x {height} pixels, more than the {max_pixels} allowed.")


def _jpeg_scans(source: Path, stop: int) -> int:
    """Count the scans (SOS markers) of a JPEG's first picture by walking its segments, up to `stop`.

    Decodes nothing, and stops at the first EOI: what follows is never decoded (see `_reencode`).
    Segments are skipped by their length, so an SOS inside metadata (an EXIF thumbnail) is not
    counted; inside a scan's data a 0xFF byte is followed by 0x00 (stuffed) or a restart marker.
    """
    data = source.read_bytes()
    scans, at = 0, 2
    while scans < stop:
        at = data.find(b"\xff", at)
        if at < 0 or at + 1 >= len(data):
            break
        marker = data[at + 1]
        if marker == 0xFF or marker == 0x00 or marker == 0x01 or 0xD0 <= marker <= 0xD8:
            at += 1 if marker == 0xFF else 2  # fill byte, stuffed byte, TEM, restart, SOI: no length
            continue
        if marker == EOI:
            break
        if marker == SOS:
            scans += 1
        at += 2 + int.from_bytes(data[at + 2:at + 4], "big")
    return scans


def _reencode(source: Path, expected: str, out_dir: Path, max_pixels: int) -> CleanImage:
    with Image.open(source, formats=[expected]) as image:
        width, height = image.size
        # A JPEG's or PNG's copy holds its first picture alone, so an MPO's other pictures and an
        # animated PNG's other frames are neither checked nor decoded.
        frames = 1 if expected in ("JPEG", "PNG") else getattr(image, "n_frames", 1)
        if width <= 0 or height <= 0 or width * height > max_pixels:
            raise ImageRefused(f"The image is {width} x {height} pixels, more than the {max_pixels} allowed.")
        if frames > MAX_FRAMES or width * height * frames > max_pixels:
            raise ImageRefused(f"The image has {frames} frames of {width} x {height} pixels, too many to decode.")
        # Pillow grows a GIF's canvas for a frame that lies outside it, and checks each frame against
        # MAX_IMAGE_PIXELS alone: every frame of a 1 x 1 screen could grow to the whole budget (25
        # frames of 614 bytes held a worker for 48 s and 2.5 GiB). So the frames' sizes, known once
        # each is sought, are added up and checked before each one is decoded. Each frame is sought
        # once: seeking back would decode every frame again on the grown canvas.
        fresh, durations, decoded = [], [], 0
        for frame in islice(ImageSequence.Iterator(image), frames):
            decoded += frame.size[0] * frame.size[1]
            if decoded > max_pixels:
                raise ImageRefused(f"The image's frames grow to more than the {max_pixels} pixels allowed.")
            fresh.append(_fresh_copy(frame, expected))
            durations.append(_duration(frame))
        loop = image.info.get("loop", 0)
    clean = out_dir / "clean"
    options: dict = {}
    if expected == "JPEG":
        options = {"quality": 90}
    elif expected == "WEBP":
        # Lossless pixels stay lossless: saved lossy they could grow a hundredfold (a checkerboard).
        options = {"lossless": True} if _lossless_webp(source) else {"quality": 90, "method": 4}
    if len(fresh) > 1 and expected in ("GIF", "WEBP"):
        options |= {"save_all": True, "append_images": [f[0] for f in fresh[1:]], "duration": durations,
                    "loop": loop if isinstance(loop, int) else 0}
    first, transparency = fresh[0]
    if transparency is not None and expected in ("PNG", "GIF"):
        options["transparency"] = transparency
    first.save(clean, expected, **options)
    thumbnail = out_dir / "thumbnail"
    _thumbnail(first).save(thumbnail, "PNG")
    return CleanImage(clean, thumbnail)


def _lossless_webp(source: Path) -> bool:
    """Tell whether a WebP file's frames are lossless (VP8L) rather than lossy (VP8) bitstreams."""
    with open(source, "rb") as f:
        head = f.read(64 * 1024)
    return b"VP8L" in head and b"VP8 " not in head


def _fresh_copy(frame: Image.Image, expected: str) -> tuple[Image.Image, int | bytes | None]:
    """Return the frame's pixels in a new image with no metadata, and its transparency key if any."""
    if expected == "JPEG":
        frame = ImageOps.exif_transpose(frame)
    elif expected in ("GIF", "WEBP") and frame.mode not in KEPT_MODES[expected]:
        frame = frame.convert("RGBA")
    if frame.mode not in KEPT_MODES[expected]:
        frame = frame.convert("RGBA" if "A" in frame.mode or "transparency" in frame.info else "RGB")
        if expected == "JPEG" and frame.mode == "RGBA":
            frame = frame.convert("RGB")
        if expected == "GIF":
            frame = frame.convert("P")
    fresh = Image.frombytes(frame.mode, frame.size, frame.tobytes())
    if frame.mode == "P":
        fresh.putpalette(frame.getpalette() or [])
    transparency = frame.info.get("transparency")
    if not isinstance(transparency, int | bytes | tuple):
        transparency = None
    return fresh, transparency


def _duration(frame: Image.Image) -> int:
    """Return how long a frame shows, in milliseconds, read once it is decoded (WebP tells it then)."""
    duration = frame.info.get("duration", 100)
    return int(duration) if isinstance(duration, int | float) and duration > 0 else 100


def _thumbnail(image: Image.Image) -> Image.Image:
    mode = "RGBA" if image.mode in ("RGBA", "LA", "P", "PA") else "RGB"
    thumb = image.convert(mode)
    thumb.thumbnail(THUMBNAIL_SIZE)
    return thumb
