"""The monthly incident report on disk: ``<data dir>/reports/2026-11.md`` and two PNG charts.

The activity reads the month from Temporal visibility (the worker hands in the
reader, :func:`starters.metrics_source.load`), computes the figures with
:func:`domain.metrics.compute`, renders the Markdown (:mod:`activities.report_markdown`)
and the charts (:mod:`activities.charts`) and writes all three files. Only a
bounded digest returns to the workflow: never the Markdown, never the PNG bytes.

Months are calendar months in the policy's ``[metrics] report_timezone``.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from pydantic import Field
from temporalio import activity
from temporalio.client import Client

from activities.charts import (
    SeverityTtr,
    WeekCounts,
    incidents_per_week_png,
    ttr_against_target_png,
)
from activities.report_markdown import report_markdown, summary_text
from domain.metrics import (
    IncidentRow,
    MetricsInput,
    Period,
    PeriodFigures,
    TargetCheck,
    changes,
    compute,
)
from domain.models import Severity, _Model
from domain.policy import MetricsPolicy, Policy

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")

MAX_SUMMARY = 2000
"""Longest summary the workflow carries (it goes into the notification)."""

CHART_REF = "report.chart."
"""Prefix of the notification refs naming the charts (``report.chart.1``…): the paths
travel with the report's notification, so a channel can attach the files."""


class RowSource(Protocol):
    """Reads the metrics' rows of ``[since, until)`` from visibility
    (:func:`starters.metrics_source.load`)."""

    async def __call__(self, client: Client, since: datetime, until: datetime) -> MetricsInput:
        """Incidents declared in the range, and the action items the figures need."""
        ...


def chart_refs(charts: list[str]) -> dict[str, str]:
    """Notification refs naming ``charts``, in order."""
    return {f"{CHART_REF}{number}": path for number, path in enumerate(charts, start=1)}


def charts_of(refs: dict[str, str]) -> list[Path]:
    """The chart paths :func:`chart_refs` put in ``refs``, in order."""
    numbered = [
        (int(key.removeprefix(CHART_REF)), Path(path))
        for key, path in refs.items()
        if key.startswith(CHART_REF) and key.removeprefix(CHART_REF).isdigit()
    ]
    return [path for _, path in sorted(numbered)]


def parse_month(text: str) -> str:
    """``2026-11`` for ``2026-11`` (whitespace around is ignored).

    Raises:
        ValueError: for anything but ``YYYY-MM``.
    """
    month = text.strip()
    if not _MONTH.match(month):
        raise ValueError(f"invalid month {text!r}: use YYYY-MM, e.g. 2026-11")
    return month


def month_bounds(month: str, timezone: str) -> tuple[datetime, datetime]:
    """First instant of ``month`` and of the month after, in ``timezone``, as UTC times."""
    year, number = (int(part) for part in parse_month(month).split("-"))
    zone = ZoneInfo(timezone)
    start = datetime(year, number, 1, tzinfo=zone)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def month_before(moment: datetime, timezone: str) -> str:
    """The month before the one ``moment`` falls in, in ``timezone`` (``2026-11`` on Dec 1)."""
    local = moment.astimezone(ZoneInfo(timezone))
    return f"{local.replace(day=1) - timedelta(days=1):%Y-%m}"


def month_title(month: str) -> str:
    """``November 2026``."""
    return f"{datetime.strptime(parse_month(month), '%Y-%m'):%B %Y}"


class ReportRequest(_Model):
    """Input of the ``write_monthly_report`` activity."""

    month: str
    """The month, ``YYYY-MM``, in ``metrics.report_timezone``."""
    metrics: MetricsPolicy = Field(default_factory=MetricsPolicy)
    """Targets, repeat window and time zone, as the workflow's policy has them."""
    until: datetime | None = None
    """Cut the month short here (a report of the month so far); None: the whole month."""


class ReportOutcome(_Model):
    """What the activity wrote, and the few figures the summary needs (bounded)."""

    month: str
    """The month reported."""
    title: str
    """``Incidents in November 2026``."""
    markdown: str
    """Path of the Markdown report."""
    charts: list[str] = Field(default_factory=list)
    """Paths of the PNG charts (incidents per week; TTR against target)."""
    summary: str = ""
    """The summary posted to the incidents channel (at most :data:`MAX_SUMMARY`)."""
    declared: int = 0
    """Incidents declared in the month."""
    targets: list[TargetCheck] = Field(default_factory=list)
    """Each healthy target, met or missed (one per MTTR target, MTTD, repeats, items)."""
    partial: bool = False
    """The month was not over: figures up to ``ReportRequest.until``."""


@dataclass(frozen=True)
class ReportFiles:
    """Where one month's report lives."""

    markdown: Path
    weekly_chart: Path
    ttr_chart: Path


class MonthlyReports:
    """Writes monthly reports under ``directory`` (``<data dir>/reports``).

    Args:
        client: the worker's Temporal client, for the visibility listing.
        directory: where reports go; replicas of the worker share it.
        source: reads the rows (:func:`starters.metrics_source.load`).
    """

    def __init__(self, client: Client, directory: Path, *, source: RowSource) -> None:
        self._client = client
        self._directory = directory
        self._source = source

    def files(self, month: str) -> ReportFiles:
        """The three files of ``month``."""
        month = parse_month(month)
        return ReportFiles(
            markdown=self._directory / f"{month}.md",
            weekly_chart=self._directory / f"{month}-incidents-per-week.png",
            ttr_chart=self._directory / f"{month}-ttr-by-severity.png",
        )

    @activity.defn(name="write_monthly_report")
    async def write(self, request: ReportRequest) -> ReportOutcome:
        """Read the month, compute its figures, write the report and its charts.

        Idempotent: a retry reads visibility again and rewrites the same files whole.
        """
        timezone = request.metrics.report_timezone
        start, end = month_bounds(request.month, timezone)
        if request.until is not None and request.until < end:
            end = max(request.until, start + timedelta(seconds=1))
        period = Period(start=start, end=end, label=request.month)
        previous = _previous_month(request.month, timezone)
        policy = Policy(metrics=request.metrics)
        rows = await self._source(
            self._client, previous.start - request.metrics.repeat_window, period.end
        )
        figures = compute(period, rows, None, policy)
        figures.previous = compute(previous, rows, None, policy)
        figures.changes = changes(figures, figures.previous)
        weeks = weekly_counts(rows.incidents, period, timezone=timezone)
        files = self.files(request.month)
        title = f"Incidents in {month_title(request.month)}"
        partial = end < month_bounds(request.month, timezone)[1]
        await asyncio.to_thread(
            self._write,
            figures,
            weeks,
            files,
            metrics=request.metrics,
            title=title,
            timezone=timezone,
            partial=partial,
        )
        return ReportOutcome(
            month=request.month,
            title=title,
            markdown=str(files.markdown),
            charts=[str(files.weekly_chart), str(files.ttr_chart)],
            summary=summary_text(figures, markdown=str(files.markdown), partial=partial)[
                :MAX_SUMMARY
            ],
            declared=figures.overall.declared,
            targets=figures.targets,
            partial=partial,
        )

    def _write(
        self,
        figures: PeriodFigures,
        weeks: list[WeekCounts],
        files: ReportFiles,
        *,
        metrics: MetricsPolicy,
        title: str,
        timezone: str,
        partial: bool,
    ) -> None:
        label = month_title(figures.period.label)
        weekly = incidents_per_week_png(weeks, title=f"Incidents declared per week, {label}")
        ttr = ttr_against_target_png(
            ttr_bars(figures, metrics),
            title=f"Time to resolve by severity, {label}",
        )
        _write_atomically(files.weekly_chart, weekly)
        _write_atomically(files.ttr_chart, ttr)
        text = report_markdown(
            figures,
            title=title,
            timezone=timezone,
            weekly_chart=files.weekly_chart.name,
            ttr_chart=files.ttr_chart.name,
            partial=partial,
        )
        _write_atomically(files.markdown, text.encode("utf-8"))


def _previous_month(month: str, timezone: str) -> Period:
    start, _ = month_bounds(month, timezone)
    before = month_before(start, timezone)
    previous_start, previous_end = month_bounds(before, timezone)
    return Period(start=previous_start, end=previous_end, label=before)


def weekly_counts(rows: list[IncidentRow], period: Period, *, timezone: str) -> list[WeekCounts]:
    """Incidents declared in ``period`` per week (Monday to Sunday, local), by severity.

    The first week starts on the period's first day, so it may be shorter.
    """
    zone = ZoneInfo(timezone)
    first = period.start.astimezone(zone).date()
    last = (period.end - timedelta(microseconds=1)).astimezone(zone).date()
    starts: list[date] = [first]
    monday = first + timedelta(days=7 - first.weekday())
    while monday <= last:
        starts.append(monday)
        monday += timedelta(days=7)
    weeks = [WeekCounts(start=start, counts={s: 0 for s in Severity}) for start in starts]
    for row in rows:
        if not period.contains(row.declared_at):
            continue
        day = row.declared_at.astimezone(zone).date()
        week = max(index for index, start in enumerate(starts) if start <= day)
        weeks[week].counts[row.severity] += 1
    return weeks


def ttr_bars(figures: PeriodFigures, metrics: MetricsPolicy) -> list[SeverityTtr]:
    """One bar per severity: mean and p90 TTR of its resolved incidents, and its target."""
    return [
        SeverityTtr(
            severity=severity,
            mean_seconds=group.ttr.mean,
            p90_seconds=group.ttr.p90,
            covered=group.ttr.covered,
            target_seconds=_seconds(metrics.mttr_targets.get(severity)),
        )
        for severity, group in figures.by_severity.items()
    ]


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file: a crash leaves the old or the new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
