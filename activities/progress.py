"""How far a channel got inside one delivery attempt, kept if the attempt is interrupted.

Most channels can look before they act (Slack finds its earlier message, the
status page its incident), so a retried delivery repeats nothing. SMTP cannot:
a worker that dies after the server accepted the customer e-mail but before
the activity completed would send it again on retry. Such a channel marks the
point of no return with :func:`mark`, which travels in the activity's heartbeat
details, and asks :func:`interrupted` on the next attempt.

Only ``deliver_via`` (one channel per activity) keeps progress; inside the
first release's ``notify`` activity the heartbeat details belong to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from temporalio import activity

_details: ContextVar[list[Any] | None] = ContextVar("delivery_progress", default=None)


@contextmanager
def tracked() -> Iterator[list[Any]]:
    """Keep progress for the delivery running inside; yields the current heartbeat details."""
    details: list[Any] = []
    token = _details.set(details)
    try:
        yield details
    finally:
        _details.reset(token)


def mark(value: str | None) -> None:
    """Record ``value`` as this attempt's progress (None clears it)."""
    details = _details.get()
    if details is None or not activity.in_activity():
        return
    details[:] = [] if value is None else [value]
    activity.heartbeat(*details)


def interrupted(value: str) -> bool:
    """Whether an earlier attempt marked ``value`` and never cleared it."""
    if _details.get() is None or not activity.in_activity():
        return False
    before = activity.info().heartbeat_details
    return bool(before) and before[0] == value
