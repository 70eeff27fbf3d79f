"""Where attachment bytes live: one small interface, a local folder (the default) or S3.

Every key is built here from the tenant's id, the attachment's id and a variant name, all
checked, so no client input (a file name least of all) ever becomes part of a key, and a bucket
listing or a mixed-up id cannot reach across tenants: another tenant's attachment id names a
key under another tenant's prefix, which the current tenant's requests never build.

Writers stream: the local backend writes to a temporary file beside the target and renames it
into place after an fsync, S3 uploads parts of `PART_SIZE` as they fill (one PUT for small
files), so memory per upload is bounded whatever the file's size. A failed or abandoned write
leaves nothing behind. Whatever the backend, a store that cannot be reached or written (S3 down,
its bucket missing, a full or broken disk) raises `StorageError`, never the library's own error,
so callers can tell an outage from a bug.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError
from flask import Flask, Response, current_app, redirect, request, send_file
from werkzeug.http import parse_range_header, quote_header_value

VARIANTS = ("original", "clean", "thumbnail")
PART_SIZE = 8 * 1024 * 1024
COPY_CHUNK = 1024 * 1024
PART_SUFFIX = ".part"


class StorageError(Exception):
    """The storage could not complete an operation (the caller decides whether to retry)."""


class ObjectMissing(StorageError):
    """No object under the key."""


def tenant_prefix(tenant_id: str | uuid.UUID) -> str:
    """Return the prefix of every object of a tenant."""
    return f"tenants/{uuid.UUID(str(tenant_id))}/"


def object_key(tenant_id: str | uuid.UUID, attachment_id: str | uuid.UUID, variant: str) -> str:
    """Return the storage key of one variant of an attachment of a tenant."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}")
    return f"{tenant_prefix(tenant_id)}attachments/{uuid.UUID(str(attachment_id))}/{variant}"


def attachment_in_key(key: str, tenant_id: str | uuid.UUID) -> uuid.UUID | None:
    """Return the attachment id of an object key of the tenant (`object_key`'s inverse), None for any other key."""
    prefix = f"{tenant_prefix(tenant_id)}attachments/"
    parts = key[len(prefix):].split("/") if key.startswith(prefix) else []
    if len(parts) != 2 or parts[1] not in VARIANTS:
        return None
    try:
        attachment_id = uuid.UUID(parts[0])
    except ValueError:
        return None
    return attachment_id if object_key(tenant_id, attachment_id, parts[1]) == key else None


class Writer(Protocol):
    def write(self, data: bytes) -> None: ...


@dataclass(frozen=True)
class Stored:
    """Something under a tenant's prefix, as a sweep of leftovers sees it."""

    key: str  # the object's key, or the key a write in progress is for
    age: float  # seconds since it was written (or the write began)
    partial: bool = False  # a write that never finished: a `.part` file, an S3 multipart upload
    handle: str = ""  # the partial write's own name: its file, or its upload id


class MediaStorage(Protocol):
    def writer(self, key: str) -> contextlib.AbstractContextManager[Writer]:
        """Return a context manager that stores what is written once the block ends without error."""

    def copy_to(self, key: str, out: BinaryIO) -> int:
        """Copy an object's bytes into a local file; return how many (ObjectMissing if there is none).

        An error writing `out` (the caller's disk, full or read-only) is raised as the OSError it is,
        not as a StorageError: the caller's disk failed, not the storage.
        """

    def delete(self, keys: Iterable[str]) -> None:
        """Delete objects; missing ones are fine, any the store refuses raise StorageError."""

    def delete_tenant(self, tenant_id: str | uuid.UUID) -> int:
        """Delete every object of a tenant (it is being dropped); return how many there were."""

    def exists(self, key: str) -> bool:
        """Tell whether an object is stored under the key."""

    def stored(self, tenant_id: str | uuid.UUID) -> Iterator[Stored]:
        """Yield what is stored under a tenant's prefix, writes that never finished included."""

    def discard_partial(self, item: Stored) -> None:
        """Throw away a write that never finished (a killed upload's)."""

    def send(self, key: str, content_type: str, download_name: str, as_attachment: bool) -> Response:
        """Return the response that serves an object: its bytes, or a redirect to a signed URL."""


class LocalStorage:
    """Objects as files under a root folder, key = relative path."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).resolve()

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError("key outside the media folder")
        return path

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[Writer]:
        target = self.path(key)
        temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}{PART_SUFFIX}")
        try:
            with contextlib.ExitStack() as files:
                with _disk_errors():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    out = files.enter_context(open(temporary, "xb"))
                yield _LocalWriter(out)
                with _disk_errors():
                    out.flush()
                    os.fsync(out.fileno())
            with _disk_errors():
                os.replace(temporary, target)
                _fsync_folder(target.parent)
        except BaseException:
            with contextlib.suppress(OSError):  # the write's own error is the one to report
                temporary.unlink(missing_ok=True)
            raise

    def copy_to(self, key: str, out: BinaryIO) -> int:
        copied = 0
        for chunk in self._chunks(key):
            out.write(chunk)
            copied += len(chunk)
        return copied

    def _chunks(self, key: str) -> Iterator[bytes]:
        """Yield an object's bytes; only errors reading them (not the consumer's) become StorageErrors."""
        try:
            with open(self.path(key), "rb") as source:
                while chunk := source.read(COPY_CHUNK):
                    yield chunk
        except FileNotFoundError as exc:
            raise ObjectMissing(key) from exc
        except OSError as exc:
            raise StorageError(f"the media folder could not be read: {exc}") from exc

    def delete(self, keys: Iterable[str]) -> None:
        with _disk_errors():
            for key in keys:
                self.path(key).unlink(missing_ok=True)

    def delete_tenant(self, tenant_id: str | uuid.UUID) -> int:
        folder = self.path(tenant_prefix(tenant_id).rstrip("/"))
        if not folder.is_dir():
            return 0
        with _disk_errors():
            # a `.part` file is an upload still being written, not a stored object
            count = sum(1 for p in folder.rglob("*") if p.is_file() and p.suffix != PART_SUFFIX)
            shutil.rmtree(folder)
        return count

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def stored(self, tenant_id: str | uuid.UUID) -> Iterator[Stored]:
        folder = self.path(tenant_prefix(tenant_id).rstrip("/"))
        if not folder.is_dir():
            return
        now = time.time()
        with _disk_errors():
            for path in folder.rglob("*"):
                try:
                    if not path.is_file():
                        continue
                    modified = path.stat().st_mtime
                except FileNotFoundError:  # deleted meanwhile
                    continue
                key = path.relative_to(self.root).as_posix()
                partial = path.name.startswith(".") and path.name.endswith(PART_SUFFIX)
                yield Stored(key, now - modified, partial, key if partial else "")

    def discard_partial(self, item: Stored) -> None:
        with _disk_errors():
            self.path(item.handle).unlink(missing_ok=True)

    def send(self, key: str, content_type: str, download_name: str, as_attachment: bool) -> Response:
        path = self.path(key)
        if not path.is_file():
            raise ObjectMissing(key)
        _ignore_unservable_range()
        return send_file(path, mimetype=content_type, as_attachment=as_attachment, download_name=download_name,
                         conditional=True, etag=True, max_age=0)


def _ignore_unservable_range() -> None:
    """Drop a `Range` that is not one range of bytes (another unit, bad syntax, several ranges).

    RFC 9110 has a server ignore such a header and send the whole file; Werkzeug answers 416. A
    single range past the end still gets 416, with `Content-Range: bytes */<size>`.
    """
    header = request.environ.get("HTTP_RANGE")
    if header is not None:
        parsed = parse_range_header(header)
        if parsed is None or parsed.units != "bytes" or len(parsed.ranges) != 1:
            del request.environ["HTTP_RANGE"]


class _LocalWriter:
    """A file being written whose disk errors (full, read-only, gone) are storage errors."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out

    def write(self, data: bytes) -> None:
        with _disk_errors():
            self.out.write(data)


@contextlib.contextmanager
def _disk_errors() -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise StorageError(f"the media folder could not be written: {exc}") from exc


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class S3Storage:
    """Objects in one S3 bucket (or an S3-compatible store at `endpoint_url`)."""

    def __init__(self, bucket: str, region: str, endpoint_url: str | None, url_ttl: int) -> None:
        if not bucket:
            raise ValueError("MEDIA_BACKEND=s3 needs MEDIA_S3_BUCKET")
        self.bucket = bucket
        self.url_ttl = url_ttl
        # Path-style addressing for custom endpoints: `bucket.host` rarely resolves for them.
        style = "path" if endpoint_url else "auto"
        self.client = boto3.session.Session().client(
            "s3", region_name=region, endpoint_url=endpoint_url,
            config=BotoConfig(s3={"addressing_style": style}, signature_version="s3v4",
                              retries={"max_attempts": 3, "mode": "standard"},
                              connect_timeout=5, read_timeout=60))

    @contextlib.contextmanager
    def writer(self, key: str) -> Iterator[Writer]:
        upload = _S3Upload(self.client, self.bucket, key)
        try:
            yield upload
            upload.finish()
        except BaseException:
            upload.abort()
            raise

    def copy_to(self, key: str, out: BinaryIO) -> int:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except BotoCoreError as exc:  # no answer at all: the endpoint is down or unreachable
            raise StorageError(str(exc)) from exc
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise ObjectMissing(key) from exc
            raise StorageError(str(exc)) from exc
        copied = 0
        try:
            for chunk in body.iter_chunks(COPY_CHUNK):
                out.write(chunk)
                copied += len(chunk)
        except BotoCoreError as exc:
            raise StorageError(str(exc)) from exc
        return copied

    def delete(self, keys: Iterable[str]) -> None:
        """Delete objects, 1000 a request; raise StorageError if S3 refused any (after trying them all).

        S3 answers 200 even when it deleted nothing: what it refused (access denied, an object lock)
        is listed in the answer's `Errors`, even in quiet mode.
        """
        keys = list(keys)
        refused: list[dict] = []
        try:
            for start in range(0, len(keys), 1000):
                answer = self.client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": k} for k in keys[start:start + 1000]], "Quiet": True})
                refused += answer.get("Errors", [])
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(str(exc)) from exc
        if refused:
            first = refused[0]
            raise StorageError(f"S3 refused to delete {len(refused)} of {len(keys)} objects, first "
                               f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}")

    def delete_tenant(self, tenant_id: str | uuid.UUID) -> int:
        count = 0
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                          Prefix=tenant_prefix(tenant_id))
            for listed in pages:
                keys = [o["Key"] for o in listed.get("Contents", [])]
                self.delete(keys)
                count += len(keys)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(str(exc)) from exc
        return count

    def stored(self, tenant_id: str | uuid.UUID) -> Iterator[Stored]:
        now = datetime.now(UTC)
        prefix = tenant_prefix(tenant_id)
        try:
            for listed in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for found in listed.get("Contents", []):
                    yield Stored(found["Key"], (now - found["LastModified"]).total_seconds())
            for listed in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket,
                                                                                       Prefix=prefix):
                for upload in listed.get("Uploads", []):
                    yield Stored(upload["Key"], (now - upload["Initiated"]).total_seconds(), True,
                                 upload["UploadId"])
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(str(exc)) from exc

    def discard_partial(self, item: Stored) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=item.key, UploadId=item.handle)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                raise StorageError(str(exc)) from exc
        except BotoCoreError as exc:
            raise StorageError(str(exc)) from exc

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return False
            raise

    def send(self, key: str, content_type: str, download_name: str, as_attachment: bool) -> Response:
        disposition = "attachment" if as_attachment else "inline"
        url = self.client.generate_presigned_url("get_object", ExpiresIn=self.url_ttl, Params={
            "Bucket": self.bucket, "Key": key, "ResponseContentType": content_type,
            "ResponseContentDisposition": content_disposition(disposition, download_name),
            "ResponseCacheControl": "private, no-store"})
        response = redirect(url, 302)
        response.headers["Cache-Control"] = "no-store"
        return response


class _S3Upload:
    """One object being written: a single PUT if it stays under a part, else a multipart upload."""

    def __init__(self, client, bucket: str, key: str) -> None:
        self.client, self.bucket, self.key = client, bucket, key
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict] = []

    def write(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= PART_SIZE:
            self._send_part()

    def _send_part(self) -> None:
        try:
            if self.upload_id is None:
                self.upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.key)["UploadId"]
            number = len(self.parts) + 1
            etag = self.client.upload_part(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                                           PartNumber=number, Body=bytes(self.buffer))["ETag"]
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(str(exc)) from exc
        self.parts.append({"PartNumber": number, "ETag": etag})
        self.buffer = bytearray()

    def finish(self) -> None:
        try:
            if self.upload_id is None:
                self.client.put_object(Bucket=self.bucket, Key=self.key, Body=bytes(self.buffer))
                return
            if self.buffer:
                self._send_part()
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                                                  MultipartUpload={"Parts": self.parts})
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(str(exc)) from exc

    def abort(self) -> None:
        if self.upload_id is not None:
            with contextlib.suppress(BotoCoreError, ClientError):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)


def content_disposition(disposition: str, filename: str) -> str:
    """Return a Content-Disposition value naming the file in ASCII and, exactly, in UTF-8 (RFC 6266)."""
    from urllib.parse import quote

    ascii_name = filename.encode("ascii", "ignore").decode() or "attachment"
    ascii_name = ascii_name.replace("\\", "_").replace('"', "_")
    return f"{disposition}; filename={quote_header_value(ascii_name)}; filename*=UTF-8''{quote(filename, safe='')}"


_lock = threading.Lock()


def storage() -> MediaStorage:
    """Return the media storage the app's configuration names (built once per configuration)."""
    config = current_app.config
    settings = (config["MEDIA_BACKEND"], config["MEDIA_LOCAL_DIR"], config["MEDIA_S3_BUCKET"],
                config["MEDIA_S3_REGION"], config["MEDIA_S3_ENDPOINT_URL"], config["MEDIA_URL_TTL"])
    cache = current_app.extensions.setdefault("tms_media_storage", {})
    found = cache.get(settings)
    if found is None:
        with _lock:
            found = cache.get(settings)
            if found is None:
                found = cache[settings] = _build(*settings)
    return found


def _build(backend: str, local_dir: str, bucket: str, region: str, endpoint_url: str | None,
           url_ttl: int) -> MediaStorage:
    if backend == "local":
        return LocalStorage(local_dir)
    if backend == "s3":
        return S3Storage(bucket, region, endpoint_url, url_ttl)
    raise ValueError(f"MEDIA_BACKEND must be local or s3, not {backend!r}")


def check_config(app: Flask) -> None:
    """Refuse to start with a media configuration that cannot work."""
    if app.config["MEDIA_BACKEND"] not in ("local", "s3"):
        raise ValueError(f"MEDIA_BACKEND must be local or s3, not {app.config['MEDIA_BACKEND']!r}")
    if app.config["MEDIA_BACKEND"] == "s3" and not app.config["MEDIA_S3_BUCKET"]:
        raise ValueError("MEDIA_BACKEND=s3 needs MEDIA_S3_BUCKET")
    if app.config["MEDIA_ANTIVIRUS"] not in ("clamd", "off"):
        raise ValueError(f"MEDIA_ANTIVIRUS must be clamd or off, not {app.config['MEDIA_ANTIVIRUS']!r}")
