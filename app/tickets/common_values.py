"""A per-process memory of the values (tags, search terms) found common in a tenant, for a minute.

Finding that a value is common costs a count that builds the value's whole bitmap (30 ms for a
tag or term on a sixth of a million tickets), so the answer is kept: values change slowly. A
stale answer costs time, never a wrong page; only a search term that became rare within the
minute is still answered in date order where it could now be ranked (the response's `order`
says which). A rare value's count is cheap and is not kept, so made-up values cannot push the
common ones out, and a value made common is seen at once.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from tenants import current_tenant

COMMON_SECONDS = 60.0


class CommonValues:
    """Values found common in the tenant in context, each remembered `COMMON_SECONDS`, at most `size`."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        # Keyed by the tenant's id, never its slug or schema: a slug dropped and signed up again is another tenant.
        self._until: OrderedDict[tuple[str, str], float] = OrderedDict()  # (tenant id, value) -> until
        self._lock = threading.Lock()

    def known(self, value: str) -> bool:
        """Tell whether `value` was found common in this tenant within `COMMON_SECONDS`."""
        with self._lock:
            return self._until.get((str(current_tenant().id), value), 0.0) > time.monotonic()

    def remember(self, value: str) -> None:
        """Note that `value` is common in this tenant now."""
        item = (str(current_tenant().id), value)
        with self._lock:
            self._until[item] = time.monotonic() + COMMON_SECONDS
            self._until.move_to_end(item)
            while len(self._until) > self.size:
                self._until.popitem(last=False)
