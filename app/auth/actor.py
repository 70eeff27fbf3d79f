"""The actor of the current request or job: a user of the current tenant and the role it acts with."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import Any

from flask import g, has_app_context
from flask_smorest import abort


@dataclass(frozen=True)
class Actor:
    user_id: uuid.UUID | None
    role: str
    api_key_id: uuid.UUID | None = None
    # A signed-in browser's session version: a stream token or socket it opened ends with the session.
    session_version: int | None = None
    # When the key stops working (a rotated key's grace ends): a socket opened with it closes then.
    key_expires_at: datetime | None = None

    @property
    def is_staff(self) -> bool:
        return self.role in ("admin", "agent")


SYSTEM = Actor(user_id=None, role="admin")


def current_actor() -> Actor:
    """Return the authenticated actor, or answer 401."""
    actor = current_actor_or_none()
    if actor is None:
        abort(401, message="Authentication required.")
    return actor


def current_actor_or_none() -> Actor | None:
    return g.get("actor") if has_app_context() else None


def set_actor(actor: Actor | None) -> None:
    g.actor = actor


def require_role(*roles: str) -> Callable:
    """Let only actors with one of `roles` through; others get 403."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if current_actor().role not in roles:
                abort(403, message=f"This needs the role {' or '.join(roles)}.")
            return view(*args, **kwargs)

        return wrapped

    return decorator


staff_only = require_role("admin", "agent")
admin_only = require_role("admin")
