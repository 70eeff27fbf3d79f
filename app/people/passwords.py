"""Password hashing with Argon2id (argon2-cffi), bounded so sign-ins cannot exhaust memory.

Parameters are OWASP's minimum for Argon2id that keeps each hash at 19 MiB (m=19456 KiB, t=2,
p=1); argon2-cffi's defaults take 64 MiB, and ten concurrent sign-ins took a worker from 365 MB
to 701 MB. At most `PASSWORD_HASH_CONCURRENCY` hashes run at once per process; the rest wait
their turn. A wrong email is checked against a dummy hash, so both answers take as long.
Hashes made with other parameters still verify and are replaced at the next successful sign-in.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

OWASP = {"time_cost": 2, "memory_cost": 19456, "parallelism": 1, "type": Type.ID}
FAST = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1, "type": Type.ID}  # tests only


@dataclass
class Hashing:
    hasher: PasswordHasher
    turns: threading.BoundedSemaphore
    dummy: str


def _hashing() -> Hashing:
    hashing = current_app.extensions.get("tms_password_hashing")
    if hashing is None:
        hasher = PasswordHasher(**(FAST if current_app.config.get("PASSWORD_HASH_FAST") else OWASP))
        hashing = Hashing(hasher, threading.BoundedSemaphore(current_app.config["PASSWORD_HASH_CONCURRENCY"]),
                          hasher.hash(secrets.token_urlsafe(16)))
        current_app.extensions["tms_password_hashing"] = hashing
    return hashing


def hash_password(password: str) -> str:
    hashing = _hashing()
    with hashing.turns:
        return hashing.hasher.hash(password)


def check_password(password_hash: str | None, password: str) -> bool:
    """Tell whether `password` matches; with no hash (no such user) spend the same time on a dummy."""
    hashing = _hashing()
    with hashing.turns:
        try:
            return hashing.hasher.verify(password_hash or hashing.dummy, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False


def needs_rehash(password_hash: str) -> bool:
    """Tell whether a hash was made with other parameters than today's."""
    try:
        return _hashing().hasher.check_needs_rehash(password_hash)
    except InvalidHashError:
        return True
