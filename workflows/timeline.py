"""The incident's bounded timeline: the newest entries in state, the rest archived.

An incident can receive alerts for weeks; its timeline must not grow its state,
its continue-as-new input or its query answers without bound. Entries are
numbered; once more than :data:`KEPT` plus a batch accumulate, the oldest go to
the timeline archive through an activity and leave the state only when the
archive confirmed them. Should the archive stay unreachable, entries beyond
:data:`HARD_CAP` are dropped and counted rather than kill the incident.
"""

from __future__ import annotations

from datetime import datetime

from domain.incident import IncidentState
from domain.models import EventKind, Phase, TimelineEvent, cap_text

KEPT = 100
"""Newest entries always kept in the workflow (what ``incident show`` lists)."""
ARCHIVE_BATCH = 50
"""Entries handed to the archive at once, once this many wait beyond :data:`KEPT`."""
HARD_CAP = 400
"""Entries the state holds at most, archive or not (about 0.5 MB at the longest texts)."""
ENTRY_TEXT = 1000
"""Longest text of one entry; longer text is cut (the full text went to the channels)."""


def append(
    state: IncidentState,
    *,
    at: datetime,
    kind: EventKind,
    text: str,
    actor: str | None,
    phase: Phase,
) -> TimelineEvent:
    """Record one entry, dropping the oldest past :data:`HARD_CAP`."""
    state.timeline_seq += 1
    event = TimelineEvent(
        at=at,
        kind=kind,
        text=cap_text(text, ENTRY_TEXT),
        actor=cap_text(actor, 200) if actor is not None else None,
        phase=phase,
        seq=state.timeline_seq,
    )
    state.timeline.append(event)
    overflow = len(state.timeline) - HARD_CAP
    if overflow > 0:
        del state.timeline[:overflow]
        state.timeline_dropped += overflow
    return event


def entry(state: IncidentState, seq: int | None) -> TimelineEvent | None:
    """The kept entry numbered ``seq``, if it is still in the state."""
    if seq is None:
        return None
    for event in reversed(state.timeline):
        if event.seq == seq:
            return event
        if event.seq < seq:
            return None
    return None


def archive_due(state: IncidentState) -> bool:
    """Whether a whole batch waits for the archive (read on every wake-up: no copy)."""
    return len(state.timeline) - KEPT >= ARCHIVE_BATCH


def due_for_archive(state: IncidentState) -> list[TimelineEvent]:
    """The oldest entries to archive now (empty until a whole batch is waiting)."""
    if not archive_due(state):
        return []
    return list(state.timeline[: len(state.timeline) - KEPT])


def archived(state: IncidentState, through: int) -> None:
    """Forget the kept entries the archive confirmed (sequence numbers up to ``through``)."""
    count = 0
    while count < len(state.timeline) and state.timeline[count].seq <= through:
        count += 1
    del state.timeline[:count]
    state.timeline_archived += count
