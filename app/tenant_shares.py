"""Per-organization shares of costly work in one process: at most N at once, the rest refused (503).

A request that may hold a database connection for seconds (a broad search, a dashboard over
years) is cheap for its sender to repeat; without a share per organization, one organization's
parallel requests took every connection of the process and every other organization waited.
The counts are per process because the pool they protect is.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app

from app.errors import Unavailable


class TenantShare:
    """At most `current_app.config[setting]` holders per organization at once, in this process."""

    def __init__(self, what: str, setting: str) -> None:
        self.what = what
        self.setting = setting
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, tenant_id: str) -> Iterator[None]:
        """Hold one place of the organization's share for the block, or raise Unavailable (503, Retry-After)."""
        limit = current_app.config[self.setting]
        with self._lock:
            if self._held.get(tenant_id, 0) >= limit:
                raise Unavailable(f"This organization has {limit} {self.what} running already; "
                                  f"try again in a moment.")
            self._held[tenant_id] = self._held.get(tenant_id, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._held.pop(tenant_id) - 1
                if left:
                    self._held[tenant_id] = left
