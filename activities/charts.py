"""The monthly report's two charts, rendered as PNG with matplotlib's Agg backend.

Figures are built with :class:`matplotlib.figure.Figure` and an Agg canvas, never
``pyplot``: pyplot keeps global state, and activities render on several threads.
Rendering the same figures gives the same bytes (no timestamp in the metadata), so
a retried activity rewrites identical files.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING

from pydantic import Field

from domain.durations import format_duration
from domain.models import Severity, _Model

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

SEVERITY_COLORS = {
    Severity.P0: "#c0392b",
    Severity.P1: "#e67e22",
    Severity.P2: "#f1c40f",
    Severity.P3: "#7f8c8d",
}
"""One colour per severity, the same in both charts."""

_PNG_METADATA = {"Software": None}
"""Leave matplotlib's version out of the file: the bytes depend on the figures only."""


class WeekCounts(_Model):
    """Incidents declared in one week of the month, by severity."""

    start: date
    """First day of the week (Monday), or the 1st for a week that began last month."""
    counts: dict[Severity, int] = Field(default_factory=dict)
    """Incidents declared that week (dismissed ones included), per severity."""


class SeverityTtr(_Model):
    """Time to resolve of one severity's resolved incidents, and its target."""

    severity: Severity
    """The severity."""
    mean_seconds: float | None = None
    """Mean TTR; None when no incident of the severity was resolved."""
    p90_seconds: float | None = None
    """90th percentile TTR."""
    covered: int = 0
    """How many resolved incidents the figures cover."""
    target_seconds: float | None = None
    """The policy's MTTR target (``[metrics] mttr_targets``); None when it has none."""


def incidents_per_week_png(weeks: Sequence[WeekCounts], *, title: str) -> bytes:
    """A stacked bar per week: incidents declared, by severity."""
    figure = _figure()
    axes = figure.add_subplot()
    labels = [f"{week.start:%b} {week.start.day}" for week in weeks]
    positions = list(range(len(weeks)))
    bottom = [0] * len(weeks)
    for severity in Severity:
        heights = [week.counts.get(severity, 0) for week in weeks]
        axes.bar(
            positions,
            heights,
            bottom=bottom,
            color=SEVERITY_COLORS[severity],
            label=severity.value,
            width=0.6,
        )
        bottom = [low + height for low, height in zip(bottom, heights, strict=True)]
    axes.set_xticks(positions, labels)
    axes.set_xlabel("week starting")
    axes.set_ylabel("incidents declared")
    axes.set_ylim(0, max([*bottom, 1]) * 1.15)
    axes.yaxis.set_major_locator(_integer_ticks())
    axes.legend(title="severity", loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    return _png(figure)


def ttr_against_target_png(bars: Sequence[SeverityTtr], *, title: str) -> bytes:
    """Mean TTR per severity (hours; the p90 as a whisker) with each target marked."""
    figure = _figure()
    axes = figure.add_subplot()
    positions = list(range(len(bars)))
    hours = [(bar.mean_seconds or 0.0) / 3600 for bar in bars]
    whiskers = [
        max((bar.p90_seconds or 0.0) - (bar.mean_seconds or 0.0), 0.0) / 3600 for bar in bars
    ]
    colors = [SEVERITY_COLORS[bar.severity] for bar in bars]
    axes.bar(positions, hours, color=colors, width=0.6, yerr=([0.0] * len(bars), whiskers))
    top = max([*hours, *(h + w for h, w in zip(hours, whiskers, strict=True)), 0.0])
    for position, bar in zip(positions, bars, strict=True):
        if bar.target_seconds is None:
            continue
        target = bar.target_seconds / 3600
        top = max(top, target)
        axes.hlines(target, position - 0.4, position + 0.4, colors="black", linestyles="--")
        axes.annotate(
            f"target {duration_label(bar.target_seconds)}",
            (position + 0.4, target),
            textcoords="offset points",
            xytext=(3, 0),
            va="center",
            fontsize=8,
            bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none"},
        )
    axes.set_xticks(positions, [_tick(bar) for bar in bars])
    axes.set_ylabel("time to resolve (hours)\nbar: mean · whisker: p90")
    axes.set_ylim(0, max(top, 1 / 60) * 1.25)
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    return _png(figure)


def _tick(bar: SeverityTtr) -> str:
    if bar.mean_seconds is None:
        return f"{bar.severity.value}\nnone resolved"
    return f"{bar.severity.value}\n{duration_label(bar.mean_seconds)} (n={bar.covered})"


def duration_label(seconds: float) -> str:
    """``1h07m``, ``20m``, ``<1m``: whole minutes (seconds are noise at this scale)."""
    if seconds < 30:
        return "<1m"
    return format_duration(timedelta(minutes=round(seconds / 60)))


def _figure() -> Figure:
    # matplotlib is imported here, not with the module: it costs half a second, and the
    # CLI imports this module without drawing anything.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)  # attaches itself: savefig renders with Agg, whatever the backend
    return figure


def _integer_ticks() -> MaxNLocator:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata=_PNG_METADATA)
    return buffer.getvalue()
