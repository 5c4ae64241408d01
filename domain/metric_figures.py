"""Figures over a group of incidents or action items: durations, repeats, completion."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from domain.measures import IncidentMeasures
from domain.metric_rows import (
    ActionRow,
    IncidentRow,
    is_abandoned,
    is_open,
    is_resolved,
    time_to_acknowledge,
    time_to_detect,
    time_to_mitigate,
    time_to_resolve,
)
from domain.models import Severity
from domain.periods import Period


class Stat(BaseModel):
    """A duration figure over the incidents it covers (seconds; None when it covers none)."""

    covered: int = 0
    """How many incidents the figure covers."""
    left_out: int = 0
    """Resolved incidents it does not cover (not measurable, never acknowledged, never
    mitigated)."""
    mean: float | None = None
    """Arithmetic mean (the process's targets are means)."""
    median: float | None = None
    """Median (the mean of the two middle values for an even count)."""
    p90: float | None = None
    """90th percentile, nearest rank: the ⌈0.9·n⌉-th smallest value."""


def stat(values: Sequence[float | None]) -> Stat:
    """Count, mean, median and p90 of the values that are not None (counted as left out)."""
    present = sorted(v for v in values if v is not None)
    if not present:
        return Stat(left_out=len(values))
    return Stat(
        covered=len(present),
        left_out=len(values) - len(present),
        mean=math.fsum(present) / len(present),
        median=statistics.median(present),
        p90=present[math.ceil(0.9 * len(present)) - 1],
    )


class GroupFigures(BaseModel):
    """Figures of one group of incidents (a period, a month or a severity)."""

    declared: int = 0
    """Incidents declared (= resolved + dismissed + open + abandoned)."""
    resolved: int = 0
    """Resolved incidents: the ones the time metrics cover."""
    dismissed: int = 0
    """Dismissed as false alarms: in no time metric."""
    open: int = 0
    """Still open when read: counted here, in no mean."""
    abandoned: int = 0
    """Open, but their workflow ended (terminated, failed, timed out): in no mean."""
    ttd: Stat = Field(default_factory=Stat)
    """Time to detect; ``left_out`` = not measurable."""
    tta: Stat = Field(default_factory=Stat)
    """Time to acknowledge; ``left_out`` = resolved without an acknowledgement."""
    ttm: Stat = Field(default_factory=Stat)
    """Time to mitigate; ``left_out`` = resolved without entering Monitor."""
    ttr: Stat = Field(default_factory=Stat)
    """Time to resolve."""
    ack_sla_missed: int = 0
    """Incidents (dismissed ones too) that missed the acknowledge SLA."""
    resolve_sla_missed: int = 0
    """Incidents (dismissed ones too) that missed the resolve SLA (counted from declaration)."""


def group_figures(rows: Iterable[IncidentRow]) -> GroupFigures:
    """The figures of ``rows``."""
    rows = list(rows)
    resolved = [row for row in rows if is_resolved(row)]
    return GroupFigures(
        declared=len(rows),
        resolved=len(resolved),
        dismissed=sum(row.dismissed for row in rows),
        open=sum(is_open(row) for row in rows),
        abandoned=sum(is_abandoned(row) for row in rows),
        ttd=stat([time_to_detect(row) for row in resolved]),
        tta=stat([time_to_acknowledge(row) for row in resolved]),
        ttm=stat([time_to_mitigate(row) for row in resolved]),
        ttr=stat([time_to_resolve(row) for row in resolved]),
        ack_sla_missed=sum(row.ack_sla_missed for row in rows),
        resolve_sla_missed=sum(row.resolve_sla_missed for row in rows),
    )


class Repeat(BaseModel):
    """An incident that repeats an earlier one."""

    incident_id: str
    """The repeat."""
    title: str = ""
    """Its title."""
    declared_at: datetime
    """When it was declared."""
    severity: Severity
    """Its severity."""
    repeats: str
    """The incident it repeats."""
    kind: Literal["root_cause", "alert_group"]
    """Same root-cause key within the window, or linked as a repeat by its alert group."""
    root_cause_key: str | None = None
    """The shared root-cause key (for ``root_cause``)."""


def find_repeats(rows: Iterable[IncidentRow], *, window: timedelta) -> dict[str, Repeat]:
    """Every repeat among ``rows``, by incident ID.

    A dismissed incident neither repeats nor is repeated. The alert group's link wins;
    otherwise the repeated incident is the latest earlier one (declared at most
    ``window`` before) with the same root-cause key.
    """
    latest: dict[str, IncidentRow] = {}
    repeats: dict[str, Repeat] = {}
    for row in sorted(rows, key=lambda r: (r.declared_at, r.id)):
        if row.dismissed:
            continue
        key = row.root_cause_key
        earlier = latest.get(key) if key else None
        if row.repeat_of:
            repeats[row.id] = _repeat(row, row.repeat_of, "alert_group")
        elif earlier is not None and row.declared_at - earlier.declared_at <= window:
            repeats[row.id] = _repeat(row, earlier.id, "root_cause")
        if key:
            latest[key] = row
    return repeats


def _repeat(row: IncidentRow, of: str, kind: Literal["root_cause", "alert_group"]) -> Repeat:
    return Repeat(
        incident_id=row.id,
        title=row.title,
        declared_at=row.declared_at,
        severity=row.severity,
        repeats=of,
        kind=kind,
        root_cause_key=row.root_cause_key if kind == "root_cause" else None,
    )


class ActionFigures(BaseModel):
    """Action-item completion of a period (items whose :attr:`ActionRow.settled_at` is in it)."""

    done_on_time: int = 0
    """Done by their due date."""
    done_late: int = 0
    """Done after their due date."""
    missed: int = 0
    """Still open past their due date."""
    pending: int = 0
    """Open and not yet due: in no ratio."""
    dropped: int = 0
    """Dropped with a reason: reported apart, in no ratio."""
    completion: float | None = None
    """done_on_time ÷ (done_on_time + done_late + missed); None when that is 0."""
    overdue_now: list[ActionRow] = Field(default_factory=list)
    """Every open item past its due date when read, whatever its period, soonest due first."""
    dropped_items: list[ActionRow] = Field(default_factory=list)
    """The dropped items of the period."""


def action_figures(period: Period, actions: Iterable[ActionRow], as_of: datetime) -> ActionFigures:
    """Completion of the period's action items, and everything overdue at ``as_of``."""
    figures = ActionFigures()
    for item in actions:
        overdue = item.status == "open" and item.due < as_of
        if overdue:
            figures.overdue_now.append(item)
        if not period.contains(item.settled_at):
            continue
        if item.status == "dropped":
            figures.dropped += 1
            figures.dropped_items.append(item)
        elif item.status == "done":
            on_time = item.completed_at is not None and item.completed_at <= item.due
            figures.done_on_time += on_time
            figures.done_late += not on_time
        elif overdue:
            figures.missed += 1
        else:
            figures.pending += 1
    due = figures.done_on_time + figures.done_late + figures.missed
    figures.completion = figures.done_on_time / due if due else None
    figures.overdue_now.sort(key=lambda item: (item.due, item.id))
    return figures


class PostmortemFigures(BaseModel):
    """Post-mortems of the period's incidents that required one."""

    on_time: int = 0
    """Recorded by the deadline."""
    late: int = 0
    """Recorded after the deadline."""
    missed: int = 0
    """Not recorded, deadline passed."""
    pending: int = 0
    """Not recorded, deadline still ahead: in no ratio."""
    rate: float | None = None
    """on_time ÷ (on_time + late + missed); None when that is 0."""


def postmortem_figures(rows: Iterable[IncidentMeasures], as_of: datetime) -> PostmortemFigures:
    """Post-mortem on time among ``rows`` that required one (a deadline was set)."""
    figures = PostmortemFigures()
    for row in rows:
        due, recorded = row.postmortem_due_at, row.postmortem_recorded_at
        if due is None or row.dismissed:
            continue
        if recorded is not None:
            figures.on_time += recorded <= due
            figures.late += recorded > due
        elif due < as_of:
            figures.missed += 1
        else:
            figures.pending += 1
    required = figures.on_time + figures.late + figures.missed
    figures.rate = figures.on_time / required if required else None
    return figures
