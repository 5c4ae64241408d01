"""Which pages and stakeholder updates an incident owed, and which its timeline shows.

The due times are derived from the policy and the facts in the incident's
``view`` (declaration, acknowledgement, responders' updates), as
``workflows/clocks.py`` derives them; the firings are the timeline's
``escalation_page`` and ``stakeholder_update`` entries. Matching the two shows
a missed, doubled or late timer.

Two rules of the workflow are kept on purpose:

- a stakeholder update that fires an interval or more late restarts the cadence
  from when it fired (one catch-up update, not a burst), so the dues it skipped
  are not owed;
- a responder's ``ack`` or ``update`` stops the clock it replaces from the
  moment it was *requested* (``requests``): when the incident's worker was down,
  the command and the due timer reach the workflow in one task and the command
  rightly wins, although its timeline entry carries the later time.

Every escalation step is owed, each once: a page names every step it covers (a
late one, all the steps that came due together).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.incident import IncidentView
from domain.models import EventKind, TimelineEvent
from domain.policy import Policy
from workflows import clocks

_LEVEL = re.compile(r"level (\d+)/(\d+), round (\d+)")
"""One escalation step a page names (a late page names every step that came due)."""
_MATCH = timedelta(seconds=1)
"""Distance between a derived due time and a firing's that still match."""


@dataclass(frozen=True)
class Due:
    """A page or stakeholder update the policy says must happen."""

    incident: str
    kind: str
    """``page`` or ``update``."""
    due: datetime
    step: int = 0
    """The escalation step of a page."""


@dataclass(frozen=True)
class Firing:
    """A page or stakeholder update in a timeline."""

    incident: str
    kind: str
    at: datetime
    due: datetime | None = None
    """The update's due time (None for a page: pages are matched by step)."""
    step: int = 0


@dataclass
class ClockReport:
    """Dues in a window, matched with firings."""

    dues: list[Due]
    missing: list[Due]
    doubled: list[Due]
    fired: list[tuple[Due, Firing]]

    def kind(self, kind: str) -> ClockReport:
        """The part of the report about ``page`` or ``update``."""
        return ClockReport(
            [d for d in self.dues if d.kind == kind],
            [d for d in self.missing if d.kind == kind],
            [d for d in self.doubled if d.kind == kind],
            [(d, f) for d, f in self.fired if d.kind == kind],
        )

    def between(self, start: datetime, end: datetime) -> ClockReport:
        """The part of the report about dues in [start, end]."""

        def inside(due: Due) -> bool:
            return start <= due.due <= end

        return ClockReport(
            [d for d in self.dues if inside(d)],
            [d for d in self.missing if inside(d)],
            [d for d in self.doubled if inside(d)],
            [(d, f) for d, f in self.fired if inside(d)],
        )

    def describe_missing(self, limit: int = 3) -> str:
        """A few missing dues, for a person."""
        shown = [
            f"{d.incident} {d.kind}{f' step {d.step + 1}' if d.kind == 'page' else ''} "
            f"due {d.due:%H:%M:%S}"
            for d in self.missing[:limit]
        ]
        return ", ".join(shown) + (" …" if len(self.missing) > limit else "")


def _entries(timeline: Sequence[TimelineEvent]) -> list[TimelineEvent]:
    return sorted(timeline, key=lambda entry: entry.seq)


def firings(incident: str, view: IncidentView, policy: Policy) -> list[Firing]:
    """Every page (with its step) and stakeholder update (with its due time) in the timeline."""
    sev = policy.for_severity(view.severity)
    anchor = view.declared_at
    found: list[Firing] = []
    for entry in _entries(view.timeline):
        if entry.kind in (EventKind.ACKNOWLEDGED, EventKind.UPDATE_POSTED):
            anchor = entry.at
        elif entry.kind is EventKind.STAKEHOLDER_UPDATE:
            due = anchor + sev.update_interval
            found.append(Firing(incident, "update", entry.at, due=due))
            anchor = due if entry.at - due < sev.update_interval else entry.at
        elif entry.kind is EventKind.ESCALATION_PAGE:
            for level in _LEVEL.finditer(entry.text):
                index, levels, cycle = (int(group) for group in level.groups())
                step = (cycle - 1) * levels + index - 1
                found.append(Firing(incident, "page", entry.at, step=step))
    return found


def _requested(at: datetime, requests: Sequence[datetime]) -> datetime:
    """When the command whose timeline entry is at ``at`` was requested (else ``at``)."""
    return min((r for r in requests if r <= at), default=at, key=lambda r: at - r)


def dues(
    incident: str,
    view: IncidentView,
    policy: Policy,
    until: datetime,
    fired: Sequence[Firing],
    requests: Sequence[datetime] = (),
) -> list[Due]:
    """Every page and stakeholder update the incident owed before ``until``."""
    sev = policy.for_severity(view.severity)
    entries = _entries(view.timeline)
    closed = next(
        (e.at for e in entries if e.kind in (EventKind.RESOLVED, EventKind.DISMISSED)), None
    )
    end = min(until, closed) if closed else until
    owed: list[Due] = []
    acked = next((e.at for e in entries if e.kind is EventKind.ACKNOWLEDGED), None)
    pages_until = min(end, _requested(acked, requests)) if acked else end
    ack_deadline = view.declared_at + sev.ack_sla
    for step in range(clocks.total_pages(policy)):
        due = ack_deadline + clocks.page_offset(step, policy)
        if due < pages_until:
            owed.append(Due(incident, "page", due, step))
    commands = [
        e.at for e in entries if e.kind in (EventKind.ACKNOWLEDGED, EventKind.UPDATE_POSTED)
    ]
    anchors = [view.declared_at, *commands]
    stops = [_requested(at, requests) for at in commands] + [end]
    updates = [f for f in fired if f.kind == "update"]
    for anchor, stop in zip(anchors, stops, strict=True):
        due = anchor + sev.update_interval
        while due < min(stop, end):
            owed.append(Due(incident, "update", due))
            hit = next(
                (f for f in updates if f.due is not None and abs(f.due - due) < _MATCH), None
            )
            late = hit is not None and hit.at - due >= sev.update_interval
            due = (hit.at if late and hit is not None else due) + sev.update_interval
    return owed


def report(
    read: Mapping[str, IncidentView | None],
    policy: Policy,
    *,
    start: datetime,
    until: datetime,
    requests: Mapping[str, Sequence[datetime]],
) -> ClockReport:
    """Dues in [start, until) of the incidents read, matched with their timelines."""
    owed: list[Due] = []
    fired: list[Firing] = []
    for incident, view in read.items():
        if view is None:
            continue
        found = firings(incident, view, policy)
        oldest = min((e.at for e in view.timeline), default=start)
        window = max(start, oldest) if view.timeline_archived else start
        owed += [
            d
            for d in dues(incident, view, policy, until, found, requests.get(incident, ()))
            if d.due >= window
        ]
        fired += found
    missing, doubled, matched = [], [], []
    for due in owed:
        hits = [f for f in fired if f.incident == due.incident and _answers(f, due)]
        if not hits:
            missing.append(due)
        elif len(hits) > 1:
            doubled.append(due)
        if hits:
            matched.append((due, hits[0]))
    return ClockReport(owed, missing, doubled, matched)


def _answers(firing: Firing, due: Due) -> bool:
    if firing.kind != due.kind:
        return False
    if due.kind == "page":
        return firing.step == due.step
    return firing.due is not None and abs(firing.due - due.due) < _MATCH
