"""The incident's outbox: what each channel still has to deliver, and in which order.

Every notification lists the channels that have not delivered it yet, and each
channel works through the outbox on its own, so a Slack outage delays neither
the console nor the status page. Pages, SLA breaches and responders' messages
go before informational ones (alert recoveries, recurrences and the phase
changes alerts cause); an informational message that no channel has started is
replaced by a newer one of its kind, so a flapping alert cannot flood the outbox.
"""

from __future__ import annotations

from collections.abc import Callable

from domain.incident import IncidentState
from domain.models import Notification

CAP = 200
"""Notifications the outbox holds at most; past it the oldest informational (or, failing
that, the oldest non-page) waiting message is dropped and counted in the timeline."""


def enqueue(
    state: IncidentState, notification: Notification, *, started: Callable[[str], bool]
) -> Notification | None:
    """Queue ``notification`` for every channel; returns a message dropped to make room.

    Args:
        started: whether some channel has started delivering the message with this key.
    """
    notification.pending = list(state.channels)
    if not notification.pending:
        return None
    if not notification.priority:
        for queued in state.outbox:
            if (
                not queued.priority
                and queued.kind is notification.kind
                and queued.pending == notification.pending
                and not started(queued.key)
            ):
                queued.coalesced += 1
                queued.text = notification.text
                queued.incident = notification.incident
                queued.at = notification.at
                queued.actor = notification.actor
                return None
    state.outbox.append(notification)
    if len(state.outbox) <= CAP:
        return None
    return _drop_one(state, started)


def _drop_one(state: IncidentState, started: Callable[[str], bool]) -> Notification | None:
    waiting = [n for n in state.outbox[:-1] if not started(n.key)]
    victim = next((n for n in waiting if not n.priority), None) or next(
        (n for n in waiting if n.kind.value != "page"), None
    )
    if victim is not None:
        _remove(state, victim)
    return victim


def next_for(state: IncidentState, channel: str) -> Notification | None:
    """The message ``channel`` delivers next: the oldest priority one, else the oldest."""
    first: Notification | None = None
    for notification in state.outbox:
        if channel not in notification.pending:
            continue
        if notification.priority:
            return notification
        first = first or notification
    return first


def delivered(state: IncidentState, notification: Notification, channel: str) -> None:
    """``channel`` is done with ``notification`` (sent or given up)."""
    if channel in notification.pending:
        notification.pending.remove(channel)
    if not notification.pending:
        _remove(state, notification)


def pending_for(state: IncidentState, channel: str) -> bool:
    """Whether ``channel`` has anything left to deliver."""
    return any(channel in notification.pending for notification in state.outbox)


def _remove(state: IncidentState, notification: Notification) -> None:
    for index, queued in enumerate(state.outbox):
        if queued is notification:
            del state.outbox[index]
            return
