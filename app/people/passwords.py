"""Password hashing with Argon2id (argon2-cffi), cost configurable for tests."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app


def _hasher() -> PasswordHasher:
    hasher = current_app.extensions.get("tms_password_hasher")
    if hasher is None:
        if current_app.config.get("PASSWORD_HASH_FAST"):
            hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        else:
            hasher = PasswordHasher()
        current_app.extensions["tms_password_hasher"] = hasher
    return hasher


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def check_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
