"""``incident metrics``: a period's MTTD, MTTA, MTTM, MTTR, counts, repeats and action
items, against the process's targets.

One read of Temporal visibility (:func:`starters.metrics_source.load`) covers the
period, the previous period and the repeat window before it; the figures are the
pure :func:`domain.metrics.compute`. Definitions: README, "Metrics".
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text
from temporalio.service import RPCError

from domain.metrics import Change, GroupFigures, Period, PeriodFigures, Stat, compute
from domain.models import Severity
from domain.policy import Policy, PolicyError, load_policy
from domain.settings import Settings
from starters import metrics_source
from starters.cli import render
from starters.cli.session import CliError, open_client


def _default_timeout() -> float:
    return 30.0


_timeout: Callable[[], float] = _default_timeout
"""How long to wait for Temporal (the root CLI's ``--timeout``, set by :func:`register`)."""


def register(app: typer.Typer, *, timeout: Callable[[], float]) -> None:
    """Add ``incident metrics`` to the root CLI."""
    global _timeout
    _timeout = timeout
    app.command("metrics")(metrics)


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_moment(text: str, *, end_of_day: bool) -> datetime:
    """``2026-11-03`` (that day's start, or the next day's with ``end_of_day``) or an ISO
    date-time (UTC unless it names a zone).

    Raises:
        CliError: for anything else.
    """
    value = text.strip()
    try:
        if _DAY.fullmatch(value):
            day = date.fromisoformat(value) + timedelta(days=1 if end_of_day else 0)
            return datetime.combine(day, time(), UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(f"invalid date {text!r}: use 2026-11-03 or '2026-11-03 14:00'") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def choose_period(month: str | None, since: str | None, until: str | None, now: datetime) -> Period:
    """The period the options name (default: the current UTC month; ``--since`` alone ends
    now, ``--until`` alone starts 30 days before).

    Raises:
        CliError: for conflicting or invalid options.
    """
    if month is not None and (since is not None or until is not None):
        raise CliError("use either --month or --since/--until")
    try:
        if month is not None:
            return Period.month(month)
        if since is None and until is None:
            return Period.month(f"{now:%Y-%m}")
        end = parse_moment(until, end_of_day=True) if until else now
        start = parse_moment(since, end_of_day=False) if since else end - timedelta(days=30)
        return Period.between(start, end)
    except ValueError as error:
        raise CliError(str(error)) from None


def _policy() -> Policy:
    try:
        return load_policy(Settings().policy)
    except (PolicyError, ValidationError) as error:
        raise CliError(str(error)) from None


def metrics(
    month: Annotated[
        str | None, typer.Option("--month", metavar="YYYY-MM", help="A UTC calendar month.")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", metavar="DATE", help="Start (2026-11-03 or ISO).")
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", metavar="DATE", help="End; a date includes that whole day."),
    ] = None,
    severity: Annotated[
        Severity | None, typer.Option("--severity", help="Only this severity.")
    ] = None,
    service: Annotated[
        str | None, typer.Option("--service", metavar="S", help="Only this service.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """MTTD, MTTA, MTTM, MTTR, counts, repeats and action items of a period (default: this
    month), each target marked ✓ met or ✗ missed."""
    try:
        period = choose_period(month, since, until, datetime.now(UTC))
        policy = _policy()
        figures = asyncio.run(_figures(period, policy, severity, service))
    except CliError as error:
        render.print_error(error.message)
        raise typer.Exit(error.exit_code) from None
    if as_json:
        render.print_json(figures)
    else:
        print_figures(figures)


async def _figures(
    period: Period, policy: Policy, severity: Severity | None, service: str | None
) -> PeriodFigures:
    client = await open_client()
    since, until = metrics_source.read_range(period, repeat_window=policy.metrics.repeat_window)
    try:
        rows = await asyncio.wait_for(metrics_source.load(client, since, until), _timeout())
    except TimeoutError:
        raise CliError(f"no answer within {_timeout():g}s from Temporal", exit_code=2) from None
    except RPCError as error:
        raise CliError(f"Temporal: {error.message}", exit_code=2) from None
    return compute(period, rows, rows, policy, severity=severity, service=service)


# ------------------------------------------------------------------ rendering


def _duration(seconds: float | None) -> str:
    return "—" if seconds is None else render.duration(timedelta(seconds=round(seconds)))


def _ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _mean(figure: Stat) -> str:
    return f"{_duration(figure.mean)} ({figure.covered})" if figure.covered else "—"


def _severity_table(figures: PeriodFigures) -> Table:
    table = Table(title="Incidents (mean over the resolved incidents it covers, in brackets)")
    for column in ("", "DECLARED", "RESOLVED", "DISMISSED", "OPEN"):
        table.add_column(column, justify="right" if column else "left")
    for column in ("MTTD", "MTTA", "MTTM", "MTTR", "ACK SLA ✗", "RESOLVE SLA ✗"):
        table.add_column(column, justify="right")

    def row(name: str, group: GroupFigures) -> None:
        table.add_row(
            name,
            *(str(n) for n in (group.declared, group.resolved, group.dismissed, group.open)),
            *(_mean(s) for s in (group.ttd, group.tta, group.ttm, group.ttr)),
            str(group.ack_sla_missed),
            str(group.resolve_sla_missed),
        )

    for sev, group in figures.by_severity.items():
        if group.declared:
            row(sev.value, group)
    row("all", figures.overall)
    return table


_LEFT_OUT = {
    "TTD": "not measurable",
    "TTA": "never acknowledged",
    "TTM": "never in Monitor",
    "TTR": "",
}


def _time_table(figures: PeriodFigures) -> Table:
    table = Table(title="Time metrics (all severities)")
    for column in ("", "COVERS", "MEAN", "MEDIAN", "P90", "LEFT OUT", "Δ MEAN"):
        table.add_column(column, justify="left" if column in ("", "LEFT OUT") else "right")
    change = {c.figure: c for c in figures.changes}
    overall = figures.overall
    stats = (("TTD", overall.ttd), ("TTA", overall.tta), ("TTM", overall.ttm), ("TTR", overall.ttr))
    for name, figure in stats:
        left = f"{figure.left_out} {_LEFT_OUT[name]}".strip() if figure.left_out else ""
        table.add_row(
            name,
            f"{figure.covered}/{overall.resolved}",
            _duration(figure.mean),
            _duration(figure.median),
            _duration(figure.p90),
            left,
            _delta(change.get(f"m{name.lower()}"), seconds=True),
        )
    return table


def _delta(change: Change | None, *, seconds: bool = False) -> str:
    if change is None or change.delta is None:
        return "—"
    sign = "+" if change.delta > 0 else "−" if change.delta < 0 else "±"
    size = abs(change.delta)
    if seconds:
        return f"{sign}{_duration(size)}"
    return f"{sign}{size:.0%}" if change.figure.endswith("on_time") else f"{sign}{size:g}"


def _target_table(figures: PeriodFigures) -> Table:
    table = Table(title="Targets")
    for column in ("TARGET", "GOAL", "ACTUAL", ""):
        table.add_column(column)
    for check in figures.targets:
        if check.name.startswith("MTT"):
            actual = _duration(check.actual)
        elif check.name.startswith("Action"):
            actual = _ratio(check.actual)
        else:
            actual = "—" if check.actual is None else f"{check.actual:g}"
        mark = {"met": ("✓ met", "green"), "missed": ("✗ missed", "bold red")}.get(
            check.status, ("– no data", "dim")
        )
        table.add_row(check.name, check.target, actual, Text(*mark))
    return table


def _lines(figures: PeriodFigures) -> list[Text]:
    lines: list[Text] = []
    if figures.repeats:
        lines.append(Text(f"Repeat incidents: {len(figures.repeats)}", style="bold"))
    for repeat in figures.repeats:
        why = f"root cause {repeat.root_cause_key}" if repeat.root_cause_key else "alert group"
        lines.append(Text(f"  {repeat.incident_id} repeats {repeat.repeats} ({render.safe(why)})"))
    actions = figures.actions
    lines.append(
        Text(
            f"Action items: {actions.done_on_time} on time, {actions.done_late} late, "
            f"{actions.missed} missed ({_ratio(actions.completion)} on time); "
            f"{actions.dropped} dropped, {actions.pending} not yet due",
            style="bold",
        )
    )
    if actions.overdue_now:
        lines.append(Text(f"Overdue now: {len(actions.overdue_now)}", style="bold red"))
    for item in actions.overdue_now:
        lines.append(
            Text(
                f"  {item.id} ({item.incident_id}) {render.safe(item.owner)} due "
                f"{item.due:%Y-%m-%d %H:%M} — {render.safe(item.title, single_line=True)}"
            )
        )
    pm = figures.postmortems
    lines.append(
        Text(
            f"Post-mortems: {pm.on_time} on time, {pm.late} late, {pm.missed} missed "
            f"({_ratio(pm.rate)} on time); {pm.pending} not yet due",
            style="bold",
        )
    )
    if figures.unmeasured:
        lines.append(
            Text(
                f"Not measurable (first-release incidents, no measures): "
                f"{len(figures.unmeasured)} — {', '.join(figures.unmeasured[:10])}",
                style="yellow",
            )
        )
    return lines


def _abandoned(count: int) -> str:
    return f"; {count} abandoned (workflow ended while open)" if count else ""


def print_figures(figures: PeriodFigures) -> None:
    """The figures as tables a person reads at a glance."""
    scope = [f"severity {figures.severity.value}"] if figures.severity else []
    scope += [f"service {render.safe(figures.service)}"] if figures.service else []
    heading = Text.assemble(
        (f"Incident metrics {figures.period.label}", "bold"),
        f" ({', '.join(scope)})" if scope else "",
        (f"  as of {render.timestamp(figures.as_of)}", "dim"),
    )
    if figures.previous is not None:
        heading.append(f"; Δ against {figures.previous.period.label}", style="dim")
    phases = ", ".join(f"{p.value} {n}" for p, n in figures.open_by_phase.items() if n)
    parts: list[RenderableType] = [
        heading,
        _severity_table(figures),
        _time_table(figures),
        Text(f"Open: {phases or 'none'}" + _abandoned(figures.overall.abandoned)),
        _target_table(figures),
        *_lines(figures),
    ]
    Console(highlight=False, soft_wrap=True).print(Group(*parts))
