"""Incident metrics: MTTD, MTTA, MTTM, MTTR, counts, repeats, action items and post-mortems.

Pure computation over rows read from Temporal visibility (see
:mod:`starters.metrics_source`): no I/O, no clock (the listing's ``as_of`` is "now").
Every definition is the one the README's "Metrics" section states:

- an incident belongs to the period in which it was **declared**;
- **impact start** = the responder-set ``impact_started``, else the earliest alert
  start, else the declaration;
- the **time metrics** (TTD, TTA, TTM, TTR) cover resolved incidents only: dismissed
  ones are counted apart and open ones only count towards the incident numbers;
- durations are in seconds; a duration that would be negative is not measurable.

The public API: :func:`compute` over a :class:`MetricsInput` gives
:class:`PeriodFigures`; the rows, figures and :class:`Period` are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from domain.durations import format_duration
from domain.metric_figures import (
    ActionFigures,
    GroupFigures,
    PostmortemFigures,
    Repeat,
    Stat,
    action_figures,
    find_repeats,
    group_figures,
    postmortem_figures,
    stat,
)
from domain.metric_rows import (
    ActionRow,
    IncidentRow,
    MetricsInput,
    Unmeasured,
    impact_start,
    is_abandoned,
    is_open,
    is_resolved,
    time_to_acknowledge,
    time_to_detect,
    time_to_mitigate,
    time_to_resolve,
)
from domain.models import Phase, Severity
from domain.periods import Period
from domain.policy import MetricsPolicy, Policy

__all__ = [
    "ActionFigures",
    "ActionRow",
    "Change",
    "GroupFigures",
    "IncidentRow",
    "MetricsInput",
    "Period",
    "PeriodFigures",
    "PostmortemFigures",
    "Repeat",
    "Stat",
    "TargetCheck",
    "Unmeasured",
    "action_figures",
    "changes",
    "check_targets",
    "compute",
    "find_repeats",
    "group_figures",
    "impact_start",
    "is_abandoned",
    "is_open",
    "is_resolved",
    "postmortem_figures",
    "stat",
    "time_to_acknowledge",
    "time_to_detect",
    "time_to_mitigate",
    "time_to_resolve",
]


class TargetCheck(BaseModel):
    """One of the process's healthy targets, for a period."""

    name: str
    """``MTTR P0``, ``MTTD``, ``Repeat incidents``, ``Action items on time``."""
    target: str
    """The target as people write it (``< 1h``, ``0``, ``100 %``)."""
    actual: float | None
    """The figure (seconds, a count or a ratio); None without data."""
    status: Literal["met", "missed", "no data"]
    """Whether the period met it."""


class Change(BaseModel):
    """A figure against the previous period."""

    figure: str
    """``declared``, ``mttd``, ``mtta``, ``mttm``, ``mttr``, ``mttr P0``…, ``repeats``,
    ``action_items_on_time``, ``postmortems_on_time``."""
    current: float | None
    """This period's value."""
    previous: float | None
    """The previous period's value."""
    delta: float | None
    """current − previous, when both exist."""


class PeriodFigures(BaseModel):
    """Every figure of one period (``incident metrics --json``, the monthly report)."""

    period: Period
    """The period."""
    as_of: datetime
    """When the listing was read."""
    severity: Severity | None = None
    """Only incidents of this severity (None: all)."""
    service: str | None = None
    """Only incidents of this service (None: all)."""
    overall: GroupFigures
    """All the period's incidents."""
    by_severity: dict[Severity, GroupFigures]
    """Per severity (all four, P0 first)."""
    by_month: dict[str, GroupFigures]
    """Per calendar month the period touches (UTC)."""
    open_by_phase: dict[Phase, int]
    """The period's incidents still open, by phase."""
    repeats: list[Repeat]
    """The period's repeat incidents, each naming what it repeats."""
    actions: ActionFigures
    """Action-item completion."""
    postmortems: PostmortemFigures
    """Post-mortems on time."""
    unmeasured: list[str]
    """The period's incidents listed without measures (first-release ``IncidentWorkflow``
    incidents, or not yet published): counted here, in no other figure."""
    targets: list[TargetCheck]
    """Each healthy target, met or missed."""
    changes: list[Change] = Field(default_factory=list)
    """Key figures against the previous period (empty without one)."""
    previous: PeriodFigures | None = None
    """The previous period's figures (without their own previous)."""


def compute(
    period: Period,
    rows: MetricsInput,
    previous_rows: MetricsInput | None = None,
    policy: Policy | None = None,
    *,
    severity: Severity | None = None,
    service: str | None = None,
) -> PeriodFigures:
    """Every figure of ``period``.

    Args:
        period: the period; its incidents are those of ``rows`` declared in it.
        rows: the listing. Earlier incidents in it (up to the repeat window before the
            period) only serve to find repeats by root-cause key.
        previous_rows: a listing covering the previous period (it may be ``rows``);
            None leaves out the comparison.
        policy: the repeat window and the targets (default: the default policy).
        severity: only incidents of this severity.
        service: only incidents of this service. With either filter, action items
            count only when their incident is in ``rows`` and matches.
    """
    rules = (policy or Policy()).metrics

    def wanted(row: IncidentRow) -> bool:
        return (severity is None or row.severity is severity) and (
            service is None or row.service == service
        )

    repeats = find_repeats(rows.incidents, window=rules.repeat_window)
    matching = [row for row in rows.incidents if wanted(row)]
    mine = [row for row in matching if period.contains(row.declared_at)]
    actions = rows.actions
    if severity is not None or service is not None:
        ids = {row.id for row in matching}
        actions = [item for item in actions if item.incident_id in ids]
    figures = PeriodFigures(
        period=period,
        as_of=rows.as_of,
        severity=severity,
        service=service,
        overall=group_figures(mine),
        by_severity={s: group_figures(r for r in mine if r.severity is s) for s in Severity},
        by_month={
            label: group_figures(r for r in mine if f"{r.declared_at:%Y-%m}" == label)
            for label in period.months()
        },
        open_by_phase={
            phase: sum(row.phase is phase and is_open(row) for row in mine)
            for phase in Phase
            if phase.is_open
        },
        repeats=sorted(
            (repeats[row.id] for row in mine if row.id in repeats),
            key=lambda r: (r.declared_at, r.incident_id),
        ),
        actions=action_figures(period, actions, rows.as_of),
        postmortems=postmortem_figures(mine, rows.as_of),
        unmeasured=sorted(u.id for u in rows.unmeasured if period.contains(u.seen_at)),
        targets=[],
    )
    figures.targets = check_targets(figures, rules)
    if previous_rows is not None:
        before = compute(
            period.previous(), previous_rows, None, policy, severity=severity, service=service
        )
        figures.previous = before
        figures.changes = changes(figures, before)
    return figures


def check_targets(figures: PeriodFigures, rules: MetricsPolicy) -> list[TargetCheck]:
    """The healthy targets of the process (``[metrics]`` in the policy), met or missed."""

    def below(name: str, actual: float | None, limit: timedelta) -> TargetCheck:
        met = None if actual is None else actual < limit.total_seconds()
        return _check(name, f"< {format_duration(limit)}", actual, met)

    checks = [
        below(f"MTTR {sev.value}", figures.by_severity[sev].ttr.mean, limit)
        for sev, limit in sorted(rules.mttr_targets.items())
        if figures.severity in (None, sev)
    ]
    checks.append(below("MTTD", figures.overall.ttd.mean, rules.mttd_target))
    count = len(figures.repeats)
    checks.append(
        _check("Repeat incidents", f"≤ {rules.max_repeats}", count, count <= rules.max_repeats)
    )
    ratio = figures.actions.completion
    checks.append(
        _check(
            "Action items on time",
            f"≥ {rules.action_item_target:.0%}",
            ratio,
            None if ratio is None else ratio >= rules.action_item_target,
        )
    )
    return checks


def _check(name: str, target: str, actual: float | None, met: bool | None) -> TargetCheck:
    status: Literal["met", "missed", "no data"] = (
        "no data" if met is None else "met" if met else "missed"
    )
    return TargetCheck(name=name, target=target, actual=actual, status=status)


def _mttr_of(severity: Severity) -> Callable[[PeriodFigures], float | None]:
    return lambda figures: figures.by_severity[severity].ttr.mean


_CHANGED: dict[str, Callable[[PeriodFigures], float | None]] = {
    "declared": lambda f: f.overall.declared,
    "mttd": lambda f: f.overall.ttd.mean,
    "mtta": lambda f: f.overall.tta.mean,
    "mttm": lambda f: f.overall.ttm.mean,
    "mttr": lambda f: f.overall.ttr.mean,
    **{f"mttr {sev.value}": _mttr_of(sev) for sev in Severity},
    "repeats": lambda f: len(f.repeats),
    "action_items_on_time": lambda f: f.actions.completion,
    "postmortems_on_time": lambda f: f.postmortems.rate,
}


def changes(current: PeriodFigures, previous: PeriodFigures) -> list[Change]:
    """Key figures of ``current`` against ``previous``."""
    result = []
    for name, read in _CHANGED.items():
        now, before = read(current), read(previous)
        delta = now - before if now is not None and before is not None else None
        result.append(Change(figure=name, current=now, previous=before, delta=delta))
    return result
