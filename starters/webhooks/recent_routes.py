"""The HTTP process's short memory of which incident a key's alerts join.

A repeat alert otherwise costs two RPCs: read the group's memo for its open
incident, then signal that incident. Remembering the answer for a few seconds
makes a burst of repeats cost one signal each, which is what an alert storm is.

Staleness is safe. An incident that completed refuses the signal and the gateway
asks the group again; an incident that closed but still runs hands a trigger back
to its group, which opens the next incident (only the answer then names the
closed one). The group of a remembered incident cannot have been forgotten
meanwhile: it stays at least ``repeat_window`` after its incident closes, and an
entry is never used past ``repeat_window``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

DEFAULT_SIZE = 10_000
"""Keys remembered at most (the oldest are dropped first)."""


class RecentRoutes:
    """Alert group ID → the open incident last read for it, for ``ttl`` seconds."""

    def __init__(
        self,
        ttl: float,
        *,
        size: int = DEFAULT_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._size = size
        self._clock = clock
        self._routes: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def get(self, group_id: str, *, max_age: float) -> str | None:
        """The incident remembered for ``group_id``, if read under ``min(ttl, max_age)`` ago."""
        entry = self._routes.get(group_id)
        if entry is None:
            return None
        incident_id, read_at = entry
        if self._clock() - read_at >= min(self._ttl, max_age):
            del self._routes[group_id]
            return None
        return incident_id

    def remember(self, group_id: str, incident_id: str) -> None:
        """``incident_id`` is the group's open incident as of now."""
        if self._ttl <= 0:
            return
        self._routes.pop(group_id, None)
        self._routes[group_id] = (incident_id, self._clock())
        while len(self._routes) > self._size:
            self._routes.popitem(last=False)

    def forget(self, group_id: str) -> None:
        """Drop what is remembered for ``group_id`` (its incident refused an alert)."""
        self._routes.pop(group_id, None)

    def __len__(self) -> int:
        return len(self._routes)
