"""What the metrics read per incident and action item, and each incident's durations.

Rows come from visibility listings (:mod:`starters.metrics_source`). The
definitions are the README's ("Metrics"): impact start, TTD, TTA, TTM, TTR, in
seconds; a duration that would be negative is not measurable (None).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.measures import IncidentMeasures
from domain.models import Phase


class IncidentRow(IncidentMeasures):
    """One incident as a listing shows it: its ``measures`` memo, ID and title."""

    id: str
    """Incident ID (the workflow ID)."""
    title: str = ""
    """Title, from the memo."""
    running: bool = True
    """Whether its workflow still runs. An incident whose workflow ended in an open phase
    (terminated, failed, timed out) is no longer open: it is counted as abandoned."""


class ActionRow(BaseModel):
    """One action item as a listing shows it (search attributes and memo)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    """Action ID (``INC-20261127-3A7X-A2``)."""
    incident_id: str
    """The incident it follows up."""
    title: str = ""
    """What must be done."""
    owner: str = ""
    """Who must do it (``@name``)."""
    status: Literal["open", "done", "dropped"]
    """Where it is."""
    due: datetime
    """Its due date."""
    completed_at: datetime | None = None
    """When it was done or dropped."""

    @property
    def settled_at(self) -> datetime:
        """When the item enters the completion figure: when it was done, if that was before
        its due date, else its due date. The item counts in the period holding this time."""
        if self.completed_at is not None and self.completed_at < self.due:
            return self.completed_at
        return self.due


class Unmeasured(BaseModel):
    """An incident listed without measures: a first-release ``IncidentWorkflow`` incident
    (they never publish them) or one not yet published. It is in no figure."""

    id: str
    """Incident ID."""
    seen_at: datetime
    """Its ``IncidentDetectedAt`` (detection or declaration), else its run's start."""


class MetricsInput(BaseModel):
    """What one visibility read returns (:func:`starters.metrics_source.load`)."""

    incidents: list[IncidentRow] = Field(default_factory=list)
    """Incidents declared in the read range."""
    actions: list[ActionRow] = Field(default_factory=list)
    """Action items due (or done) in the read range, and every open one."""
    unmeasured: list[Unmeasured] = Field(default_factory=list)
    """Incidents in the read range without measures."""
    as_of: datetime
    """When the listing was read: "now" for open, overdue and pending figures."""


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None or later < earlier:
        return None
    return (later - earlier).total_seconds()


def impact_start(row: IncidentMeasures) -> datetime:
    """Responder-set impact start, else the earliest alert start, else the declaration."""
    return row.impact_started or row.detected_at or row.declared_at


def time_to_detect(row: IncidentMeasures) -> float | None:
    """Declared − impact start; None ("not measurable") without impact information at or
    before the declaration (never 0 for lack of information)."""
    known = row.impact_started or row.detected_at
    return _seconds(row.declared_at, known)


def time_to_acknowledge(row: IncidentMeasures) -> float | None:
    """First acknowledgement − declared; None if never acknowledged."""
    return _seconds(row.acknowledged_at, row.declared_at)


def time_to_mitigate(row: IncidentMeasures) -> float | None:
    """First entry into Monitor − impact start; None if it never reached Monitor."""
    return _seconds(row.mitigated_at, impact_start(row))


def time_to_resolve(row: IncidentMeasures) -> float | None:
    """Resolved − impact start; None while open and for dismissed incidents."""
    if row.dismissed:
        return None
    return _seconds(row.resolved_at, impact_start(row))


def is_open(row: IncidentRow) -> bool:
    """Open (Detect to Monitor) with its workflow still running."""
    return row.phase.is_open and row.running


def is_abandoned(row: IncidentRow) -> bool:
    """Its workflow ended while the incident was open (terminated, failed, timed out)."""
    return row.phase.is_open and not row.running


def is_resolved(row: IncidentMeasures) -> bool:
    """Resolved (not dismissed): the incidents the time metrics cover."""
    return not row.dismissed and row.phase is Phase.RESOLVE
