"""The real servers of tests/servers.py answer as the product will use them: S3 over HTTP and
clamd's INSTREAM protocol."""

from __future__ import annotations

import socket
import struct
import urllib.request
import uuid

import boto3
from botocore.config import Config

from app.embedded import EICAR


def s3_client(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test", config=Config(s3={"addressing_style": "path"}))


def test_s3_stores_an_object_and_serves_it_by_presigned_url(s3_endpoint):
    s3 = s3_client(s3_endpoint)
    bucket = f"media-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="tenant/a/attachment", Body=b"hello", ContentType="text/plain")

    assert s3.get_object(Bucket=bucket, Key="tenant/a/attachment")["Body"].read() == b"hello"
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "tenant/a/attachment"},
                                    ExpiresIn=60)
    assert url.startswith(s3_endpoint)
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.read() == b"hello"


def instream(conn: socket.socket, data: bytes, chunk: int = 1024) -> bytes:
    """Scan `data` with clamd's INSTREAM command; return its answer without the closing NUL."""
    conn.sendall(b"zINSTREAM\0")
    for start in range(0, len(data), chunk):
        piece = data[start:start + chunk]
        conn.sendall(struct.pack(">I", len(piece)) + piece)
    conn.sendall(struct.pack(">I", 0))
    answer = b""
    while not answer.endswith(b"\0"):
        received = conn.recv(4096)
        if not received:
            break
        answer += received
    return answer.rstrip(b"\0")


def scan_over_unix_socket(path: str, data: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(10)
        conn.connect(path)
        return instream(conn, data)


def test_clamd_finds_eicar_and_passes_a_clean_file(clamd_socket):
    infected = scan_over_unix_socket(clamd_socket, EICAR)
    assert infected.startswith(b"stream: ") and infected.endswith(b" FOUND"), infected
    assert b"EICAR" in infected

    inside = scan_over_unix_socket(clamd_socket, b"%PDF-1.4 padding " * 200 + EICAR + b" trailer" * 200)
    assert inside.endswith(b" FOUND"), inside

    assert scan_over_unix_socket(clamd_socket, b"just a harmless note\n" * 500) == b"stream: OK"


def test_clamd_answers_on_loopback_tcp(clamd_address):
    with socket.create_connection(clamd_address, timeout=10) as conn:
        assert instream(conn, EICAR).endswith(b" FOUND")
