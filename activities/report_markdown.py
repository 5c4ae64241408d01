"""The monthly report's text: the Markdown document and the summary posted to the channel.

Everything people typed (titles, root-cause keys, owners) is untrusted: it is cut,
folded to one line and has every Markdown punctuation character escaped, so it
can neither break a table nor become a link, an image or raw HTML.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from domain.durations import format_duration
from domain.metrics import ActionRow, PeriodFigures, Stat, TargetCheck
from domain.models import Severity, cap_text
from domain.text import strip_unsafe

MAX_LISTED = 50
"""Repeats, overdue and dropped items listed one by one; the rest are counted."""

_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&:])")
_STATUS = {"met": "✓ met", "missed": "✗ missed", "no data": "— no data"}
_ICON = {"met": "✓", "missed": "✗", "no data": "—"}


def md(text: object, limit: int = 200) -> str:
    """Untrusted text as inert Markdown: one line, at most ``limit`` characters."""
    clean = strip_unsafe(cap_text(str(text), limit), single_line=True)
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", clean)


def span(seconds: float | None) -> str:
    """``45s``, ``12m5s``, ``1h7m`` (whole minutes from an hour on); ``—`` for none."""
    if seconds is None:
        return "—"
    if seconds >= 3600:
        return format_duration(timedelta(minutes=round(seconds / 60)))
    return format_duration(timedelta(seconds=round(seconds)))


def ratio(value: float | None) -> str:
    """``80%``; ``—`` for none."""
    return "—" if value is None else f"{value:.0%}"


def actual(check: TargetCheck) -> str:
    """A target check's figure in its own unit (duration, count or share)."""
    if check.actual is None:
        return "—"
    if check.name.startswith("MTT"):
        return span(check.actual)
    if check.name.startswith("Action"):
        return ratio(check.actual)
    return f"{check.actual:g}"


def _stat(value: Stat) -> str:
    return "—" if value.mean is None else f"{span(value.mean)} (n={value.covered})"


def _month_name(label: str) -> str:
    try:
        return f"{datetime.strptime(label, '%Y-%m'):%B %Y}"
    except ValueError:
        return md(label)


def _local(moment: datetime, timezone: str) -> str:
    return f"{moment.astimezone(ZoneInfo(timezone)):%Y-%m-%d %H:%M}"


def report_markdown(
    figures: PeriodFigures,
    *,
    title: str,
    timezone: str,
    weekly_chart: str,
    ttr_chart: str,
    partial: bool = False,
) -> str:
    """The whole report; the charts are linked by file name (they sit beside it)."""
    period = figures.period
    lines = [
        f"# {md(title)}",
        "",
        f"{_local(period.start, timezone)} to {_local(period.end, timezone)} ({md(timezone)}), "
        f"read from Temporal visibility at {figures.as_of:%Y-%m-%d %H:%M} UTC."
        + (" **The month is not over: figures so far.**" if partial else ""),
        "",
        "## Targets",
        "",
        "| target | goal | this month | status | previous month |",
        "|---|---|---|---|---|",
    ]
    before = {check.name: check for check in figures.previous.targets} if figures.previous else {}
    for check in figures.targets:
        earlier = before.get(check.name)
        lines.append(
            f"| {md(check.name)} | {check.target} | {actual(check)} | "
            f"{_STATUS[check.status]} | {actual(earlier) if earlier else '—'} |"
        )
    lines += _incidents(figures)
    lines += [
        "",
        f"![Incidents declared per week, by severity]({weekly_chart})",
        "",
        f"![Time to resolve per severity against its target]({ttr_chart})",
    ]
    lines += _changes(figures)
    lines += _repeats(figures)
    lines += _actions(figures)
    lines += _postmortems(figures)
    if figures.unmeasured:
        lines += [
            "",
            "## Not measured",
            "",
            f"{len(figures.unmeasured)} incident(s) listed without measures (first-release "
            "incidents, or not yet published) are in no figure above: "
            + ", ".join(md(item) for item in figures.unmeasured[:MAX_LISTED])
            + _more(figures.unmeasured),
        ]
    return "\n".join(lines) + "\n"


def _incidents(figures: PeriodFigures) -> list[str]:
    lines = [
        "",
        "## Incidents",
        "",
        "Time figures cover resolved incidents only (dismissed and open ones are counted "
        "apart); each is the mean, with the number of incidents it covers.",
        "",
        "| severity | declared | resolved | dismissed | open | MTTD | MTTA | MTTM | MTTR "
        "| median TTR | p90 TTR | ack / resolve SLA missed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups = [(s.value, figures.by_severity[s]) for s in Severity] + [("all", figures.overall)]
    for name, group in groups:
        lines.append(
            f"| {name} | {group.declared} | {group.resolved} | {group.dismissed} | {group.open} "
            f"| {_stat(group.ttd)} | {_stat(group.tta)} | {_stat(group.ttm)} "
            f"| {_stat(group.ttr)} | {span(group.ttr.median)} | {span(group.ttr.p90)} "
            f"| {group.ack_sla_missed} / {group.resolve_sla_missed} |"
        )
    return lines


_CHANGE_NAMES = {
    "declared": "incidents declared",
    "mttd": "MTTD",
    "mtta": "MTTA",
    "mttm": "MTTM",
    "mttr": "MTTR",
    "repeats": "repeat incidents",
    "action_items_on_time": "action items on time",
    "postmortems_on_time": "post-mortems on time",
}


def _changes(figures: PeriodFigures) -> list[str]:
    if figures.previous is None or not figures.changes:
        return []
    lines = [
        "",
        f"## Compared with {_month_name(figures.previous.period.label)}",
        "",
        "| figure | previous month | this month | change |",
        "|---|---|---|---|",
    ]
    for change in figures.changes:
        name = _CHANGE_NAMES.get(change.figure, change.figure.replace("mttr", "MTTR"))
        show = _shower(change.figure)
        if change.delta is None:
            delta = "—"
        else:
            sign = "+" if change.delta > 0 else "−" if change.delta < 0 else "±"
            delta = sign + show(abs(change.delta))
        lines.append(f"| {name} | {show(change.previous)} | {show(change.current)} | {delta} |")
    return lines


def _shower(figure: str) -> Callable[[float | None], str]:
    if figure.startswith("mtt"):
        return span
    if figure.endswith("on_time"):
        return ratio
    return lambda value: "—" if value is None else f"{value:g}"


def _repeats(figures: PeriodFigures) -> list[str]:
    lines = ["", f"## Repeat incidents ({len(figures.repeats)})", ""]
    if not figures.repeats:
        return [*lines, "None."]
    for repeat in figures.repeats[:MAX_LISTED]:
        why = (
            f"same root cause {md(repeat.root_cause_key, 64)}"
            if repeat.kind == "root_cause"
            else "linked by its alert group"
        )
        lines.append(
            f"- {md(repeat.incident_id, 80)} ({repeat.severity.value}, "
            f"{repeat.declared_at:%Y-%m-%d}) {md(repeat.title, 120)}: repeats "
            f"{md(repeat.repeats, 80)}, {why}"
        )
    return [*lines, *_more_line(figures.repeats)]


def _actions(figures: PeriodFigures) -> list[str]:
    items = figures.actions
    lines = [
        "",
        "## Action items",
        "",
        f"Done on time {items.done_on_time}, done late {items.done_late}, missed "
        f"{items.missed} (still open past the due date), not yet due {items.pending}: "
        f"**{ratio(items.completion)} on time**. Dropped with a reason: {items.dropped}.",
    ]
    if items.overdue_now:
        lines += ["", f"Overdue now ({len(items.overdue_now)}):", ""]
        lines += _items(items.overdue_now, due=True)
    if items.dropped_items:
        lines += ["", f"Dropped ({len(items.dropped_items)}):", ""]
        lines += _items(items.dropped_items, due=False)
    return lines


def _items(items: list[ActionRow], *, due: bool) -> list[str]:
    lines = [
        f"- {md(item.id, 80)} {md(item.title, 120)} (owner {md(item.owner, 80)}"
        + (f", due {item.due:%Y-%m-%d})" if due else ")")
        for item in items[:MAX_LISTED]
    ]
    return [*lines, *_more_line(items)]


def _postmortems(figures: PeriodFigures) -> list[str]:
    done = figures.postmortems
    return [
        "",
        "## Post-mortems",
        "",
        f"On time {done.on_time}, late {done.late}, missed {done.missed}, not yet due "
        f"{done.pending}: **{ratio(done.rate)} on time**.",
    ]


def _more(items: Sequence[object]) -> str:
    extra = len(items) - MAX_LISTED
    return f" and {extra} more" if extra > 0 else ""


def _more_line(items: Sequence[object]) -> list[str]:
    extra = len(items) - MAX_LISTED
    return [f"- … and {extra} more"] if extra > 0 else []


def summary_text(figures: PeriodFigures, *, markdown: str, partial: bool = False) -> str:
    """A few lines for the incidents channel: counts, each target ✓/✗, where the report is."""
    overall = figures.overall
    per_severity = " · ".join(f"{s.value} {figures.by_severity[s].declared}" for s in Severity)
    targets = [
        f"{_ICON[check.status]} {check.name} "
        + ("no data" if check.actual is None else actual(check))
        + f" (target {check.target})"
        for check in figures.targets
    ]
    lines = [
        f"• {overall.declared} incidents declared ({per_severity}): {overall.resolved} "
        f"resolved, {overall.dismissed} dismissed, {overall.open} still open"
        + (" (month not over yet)" if partial else ""),
        *targets,
        f"• post-mortems on time {ratio(figures.postmortems.rate)} · action items overdue now "
        f"{len(figures.actions.overdue_now)}",
        f"• full report with charts: {markdown}",
    ]
    return "\n".join(lines)
