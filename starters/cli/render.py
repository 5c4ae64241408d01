"""Human and JSON output of the CLI.

Incident text comes from responders and alerts, so it is untrusted: control
characters (terminal escapes), bidi controls and zero-width characters are
stripped and it is always wrapped in :class:`rich.text.Text`, never parsed as
Rich markup.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from domain.incident import IncidentView
from domain.models import CommandResult, Phase, Severity
from domain.text import strip_unsafe
from starters.cli.listing import IncidentSummary
from workflows.transitions import DISMISSABLE, MOVES

_SEVERITY_STYLE = {"P0": "bold white on red", "P1": "bold red", "P2": "yellow", "P3": "cyan"}
_PHASE_STYLE = {
    "Detect": "bold red",
    "Investigate": "yellow",
    "Fix": "magenta",
    "Monitor": "blue",
    "Resolve": "green",
    "Dismissed": "dim",
}


def safe(text: str | None, *, single_line: bool = False) -> str:
    """Untrusted text without control, bidi or zero-width characters (newlines folded if asked)."""
    return strip_unsafe(text, single_line=single_line)


def _stdout() -> Console:
    return Console(highlight=False, soft_wrap=False)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False)


# ----------------------------------------------------------------- formatting


def duration(delta: timedelta) -> str:
    """A short human duration: ``45s``, ``4m 10s``, ``3h 48m``, ``2d 3h``."""
    seconds = int(abs(delta).total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


def relative(moment: datetime, now: datetime, *, coarse: bool = False) -> str:
    """``in 4m 10s`` or ``12m ago`` (only the largest unit when ``coarse``)."""
    text = duration(moment - now)
    if coarse:
        text = text.split()[0]
    return f"in {text}" if moment > now else f"{text} ago"


def timestamp(moment: datetime) -> str:
    """A UTC timestamp."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _when(moment: datetime | None, now: datetime) -> Text:
    if moment is None:
        return Text("—", style="dim")
    return Text.assemble(timestamp(moment), (f" ({relative(moment, now)})", "dim"))


def _severity(value: str) -> Text:
    return Text(safe(value), style=_SEVERITY_STYLE.get(value, ""))


def _phase(value: str) -> Text:
    return Text(safe(value), style=_PHASE_STYLE.get(value, ""))


# ---------------------------------------------------------------------- JSON


def print_json(data: BaseModel | Sequence[BaseModel]) -> None:
    """Plain JSON on stdout for scripts (no colour, no wrapping)."""
    payload: Any = (
        data.model_dump(mode="json")
        if isinstance(data, BaseModel)
        else [item.model_dump(mode="json") for item in data]
    )
    print(json.dumps(payload, indent=2, ensure_ascii=False))


# ------------------------------------------------------------------- messages


def print_error(message: str) -> None:
    """One line on stderr."""
    _stderr().print(Text.assemble(("error: ", "bold red"), safe(message)), soft_wrap=True)


def print_warning(message: str) -> None:
    """One line on stderr that does not change the exit code."""
    _stderr().print(Text.assemble(("warning: ", "bold yellow"), safe(message)), soft_wrap=True)


def print_note(message: str) -> None:
    """One informational line on stderr (stdout keeps only what scripts capture)."""
    _stderr().print(Text.assemble(("✓ ", "green"), safe(message)), soft_wrap=True)


def print_result(result: CommandResult) -> None:
    """The workflow's one-line summary of a command."""
    line = Text.assemble(("✓ ", "green"), safe(result.message))
    if result.phase.value not in result.message:
        line.append_text(
            Text.assemble((" (phase ", "dim"), _phase(result.phase.value), (")", "dim"))
        )
    _stdout().print(line, soft_wrap=True)


def print_line(message: str, *, ok: bool) -> None:
    """One outcome of a bulk command on stdout: ``✓`` done, ``✗`` refused."""
    mark = ("✓ ", "green") if ok else ("✗ ", "yellow")
    _stdout().print(Text.assemble(mark, safe(message)), soft_wrap=True)


def print_declared(incident_id: str, *, severity: Severity, title: str) -> None:
    """The new ID alone on stdout (for ``$(incident declare ...)``), guidance on stderr."""
    print(incident_id)
    _stderr().print(
        Text.assemble(
            ("✓ declared ", "green"),
            _severity(severity.value),
            " ",
            safe(title, single_line=True),
            ("\n  next: ", "dim"),
            f"incident ack {incident_id}",
            ("  ·  ", "dim"),
            f"incident show {incident_id}",
        ),
        soft_wrap=True,
    )


# ---------------------------------------------------------------------- list


def print_list(rows: Sequence[IncidentSummary], *, include_closed: bool, now: datetime) -> None:
    """Incidents as a table."""
    console = _stdout()
    if not rows:
        console.print("No incidents." if include_closed else "No open incidents.")
        return
    headers = ("ID", "SEV", "PHASE", "TITLE", "SERVICE", "COMMANDER", "DETECTED")
    cells: list[list[Text]] = []
    for row in rows:
        phase = _phase(row.phase)
        if row.status not in ("running", "completed"):
            phase.append(f" {row.status.replace('_', ' ').upper()}", style="bold red")
        if row.sla_breached:
            phase.append(" SLA!", style="bold red")
        cells.append(
            [
                Text(row.id),
                _severity(row.severity),
                phase,
                Text(safe(row.title, single_line=True)),
                Text(safe(row.service, single_line=True)[:24] or "—"),
                Text(safe(row.commander, single_line=True)[:24] or "unassigned"),
                Text(
                    relative(row.detected_at, now, coarse=True) if row.detected_at else "—",
                    style="dim",
                ),
            ]
        )
    title = headers.index("TITLE")
    widths = [
        max(len(header), *(cell[i].cell_len for cell in cells)) for i, header in enumerate(headers)
    ]
    # One line per incident: only the title gives way on a narrow terminal.
    others = sum(widths) - widths[title] + 2 * (len(headers) - 1)
    widths[title] = max(10, min(widths[title], console.width - others))
    table = Table(box=None, header_style="bold", pad_edge=False)
    for header, width in zip(headers, widths, strict=True):
        table.add_column(header, no_wrap=True, width=width, overflow="ellipsis")
    for cell in cells:
        table.add_row(*cell)
    console.print(table)


# ---------------------------------------------------------------------- show


def _ack_sla(view: IncidentView, now: datetime) -> Text:
    deadline = view.ack_deadline
    if deadline is None:
        return Text("—", style="dim")
    text = Text(timestamp(deadline) + " · ")
    if view.acknowledged_at is not None:
        late = view.acknowledged_at - deadline
        if late > timedelta(0):
            return text.append(f"missed by {duration(late)}", style="red")
        return text.append("met", style="green")
    if not view.phase.is_open:
        return text.append("closed before acknowledgement", style="dim")
    if now > deadline:
        pages = f"{view.pages_sent} page{'s' if view.pages_sent != 1 else ''} sent"
        return text.append(
            f"MISSED {duration(now - deadline)} ago — escalating, {pages}", "bold red"
        )
    return text.append(relative(deadline, now), style="yellow")


def _resolve_sla(view: IncidentView, now: datetime) -> Text:
    deadline = view.resolve_deadline
    if deadline is None:
        return Text("—", style="dim")
    text = Text(timestamp(deadline) + " · ")
    if view.resolved_at is not None:
        late = view.resolved_at - deadline
        if late > timedelta(0):
            return text.append(f"missed by {duration(late)}", style="red")
        return text.append("met", style="green")
    if view.sla_breached or now > deadline:
        return text.append(f"BREACHED {duration(now - deadline)} ago", style="bold red")
    return text.append(relative(deadline, now), style="yellow")


def _postmortem(view: IncidentView, now: datetime) -> Text | None:
    if view.postmortem_url or (view.phase is Phase.RESOLVE and view.closed):
        if view.postmortem_due_at is None:
            return Text("not required", style="dim")
        where = safe(view.postmortem_url, single_line=True)
        return Text.assemble(("recorded", "green"), f" {where}" if where else "")
    if view.postmortem_due_at is not None:
        overdue = now > view.postmortem_due_at
        return Text.assemble(
            "due ", _when(view.postmortem_due_at, now), (" OVERDUE" if overdue else "", "bold red")
        )
    return None


def _facts(view: IncidentView, now: datetime) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()

    def row(label: str, value: RenderableType | None) -> None:
        if value is not None:
            grid.add_row(label, value)

    row("Status page", Text(view.phase.public_status))
    row("Closed", Text("yes — nothing left to do", style="dim") if view.closed else None)
    row("Service", Text(safe(view.service, single_line=True) or "—"))
    row("Commander", Text(safe(view.commander, single_line=True) or "unassigned"))
    row("Impact", Text(safe(view.impact)) if view.impact else None)
    row("ETA", Text(safe(view.eta, single_line=True)) if view.eta else None)
    row("Description", Text(safe(view.description)) if view.description else None)
    row(
        "Declared",
        Text.assemble(
            _when(view.declared_at, now), f" by {safe(view.declared_by)} via {safe(view.source)}"
        ),
    )
    row("Detected", _when(view.detected_at, now) if view.detected_at else None)
    row("Acknowledged", _when(view.acknowledged_at, now) if view.acknowledged_at else None)
    row("Resolved", _when(view.resolved_at, now) if view.resolved_at else None)
    row("Dismissed", Text(safe(view.dismissed_reason)) if view.dismissed_reason else None)
    row("Ack SLA", _ack_sla(view, now))
    row("Resolve SLA", _resolve_sla(view, now) if view.phase is not Phase.DISMISSED else None)
    if view.phase.is_open:
        row("Next update", _when(view.next_update_at, now))
    row("Monitor until", _when(view.monitor_until, now) if view.monitor_until else None)
    row("Post-mortem", _postmortem(view, now))
    row("Related", Text(safe(view.related_incident)) if view.related_incident else None)
    for link in view.links:
        row("Link", Text(safe(link, single_line=True)))
    for label, value in record_rows(view):
        row(label, Text(value))
    return grid


def record_rows(view: IncidentView) -> list[tuple[str, str]]:
    """The incident record's fields that were set, as label and safe one-line text."""
    record = view.record
    rows: list[tuple[str, str]] = []
    if record.impact_started is not None:
        rows.append(("Impact started", timestamp(record.impact_started)))
    if record.users_affected is not None:
        rows.append(("Users affected", safe(record.users_affected, single_line=True)))
    if record.services_down is not None:
        services = ", ".join(safe(s, single_line=True) for s in record.services_down)
        rows.append(("Services down", services or "none"))
    if record.data_loss is not None:
        rows.append(("Data loss", "yes" if record.data_loss else "no"))
    if record.revenue_impact is not None:
        rows.append(("Revenue impact", f"${record.revenue_impact:,.2f}".removesuffix(".00")))
    if record.customer_complaints is not None:
        rows.append(("Complaints", str(record.customer_complaints)))
    if record.root_cause is not None:
        rows.append(("Root cause", safe(record.root_cause)))
    if record.root_cause_key is not None:
        rows.append(("Root-cause key", safe(record.root_cause_key, single_line=True)))
    if record.fix_strategy is not None:
        rows.append(("Fix strategy", record.fix_strategy.value))
    if record.resolution is not None:
        rows.append(("Resolution", safe(record.resolution)))
    return rows


def _alerts(view: IncidentView, now: datetime) -> Table:
    table = Table(title="Alerts", title_justify="left", box=None, header_style="bold")
    for column in ("STATE", "SOURCE", "SUMMARY", "COUNT", "LAST"):
        table.add_column(column)
    for alert in view.alerts:
        table.add_row(
            Text("firing", style="bold red") if alert.firing else Text("recovered", style="green"),
            Text(safe(alert.source, single_line=True)),
            Text(safe(alert.summary, single_line=True)),
            str(alert.count),
            Text(relative(alert.last_at, now), style="dim"),
        )
    return table


def _timeline(view: IncidentView) -> Table:
    table = Table(title="Timeline (UTC)", title_justify="left", box=None, header_style="bold")
    table.add_column("TIME", no_wrap=True, style="dim")
    table.add_column("WHO", no_wrap=True)
    table.add_column("EVENT", no_wrap=True)
    table.add_column("DETAILS", overflow="fold")
    for event in view.timeline:
        table.add_row(
            f"{event.at.astimezone(UTC):%m-%d %H:%M:%S}",
            Text(safe(event.actor, single_line=True) or "—"),
            Text(event.kind.value.replace("_", " ")),
            Text(safe(event.text)),
        )
    return table


def next_steps(view: IncidentView) -> list[str]:
    """Commands that make sense in the incident's current phase."""
    ref = view.id
    if view.phase is Phase.DETECT:
        return [f"incident ack {ref}", f"incident dismiss {ref} --reason TEXT"]
    if view.phase.is_open:
        moves = "|".join(phase.value.lower() for phase in MOVES[view.phase])
        steps = [f"incident phase {ref} {{{moves}}}", f"incident update {ref} TEXT"]
        if view.phase in DISMISSABLE:
            steps.append(f"incident dismiss {ref} --reason TEXT")
        return steps
    if view.phase is Phase.RESOLVE and not view.closed and view.postmortem_due_at is not None:
        return [f"incident postmortem {ref} --done --url URL"]
    return []


def print_view(view: IncidentView, *, now: datetime) -> None:
    """Everything about one incident: facts, SLA deadlines, alerts, timeline, next steps."""
    header = Text.assemble(
        (view.id, "bold"),
        "  ",
        _severity(view.severity.value),
        " · ",
        _phase(view.phase.value),
        ("  SLA BREACHED" if view.sla_breached else "", "bold red"),
        "\n",
        (safe(view.title, single_line=True), "bold"),
    )
    parts: list[RenderableType] = [header, Text(), _facts(view, now)]
    if view.alerts:
        parts += [Text(), _alerts(view, now)]
    checklist = _open_checklist(view)
    if checklist is not None:
        parts += [Text(), checklist]
    parts += [Text(), _timeline(view)]
    steps = next_steps(view)
    if steps:
        parts += [Text(), Text("Next", style="bold"), *(Text(f"  {step}") for step in steps)]
    _stdout().print(Group(*parts))


def _open_checklist(view: IncidentView) -> Text | None:
    """The current phase's open checklist items, numbered as ``incident check`` takes them."""
    items = view.checklists.get(view.phase, [])
    if not items or view.closed:
        return None
    numbered = [(number, item) for number, item in enumerate(items, 1) if not item.done]
    text = Text.assemble(
        (f"Checklist · {view.phase.value}", "bold"),
        f"  {len(items) - len(numbered)}/{len(items)} done",
    )
    for number, item in numbered:
        text.append(f"\n  {number:>2}. {safe(item.text, single_line=True)}")
    if numbered:
        text.append(f"\n  tick with: incident check {view.id} N", style="dim")
    return text


def print_postmortem_status(view: IncidentView, *, now: datetime) -> None:
    """Where the post-mortem of an incident stands."""
    status = _postmortem(view, now)
    if status is None:
        status = Text(
            "not due yet: the incident is still open" if view.phase.is_open else "not required"
        )
    _stdout().print(Text.assemble((f"{view.id} post-mortem: ", "bold"), status), soft_wrap=True)
    if view.review is not None:
        who = ", ".join(safe(a, single_line=True) for a in view.review.attendees) or "nobody named"
        _stdout().print(f"review meeting: {timestamp(view.review.at)} with {who}", soft_wrap=True)
    if view.postmortem_document is not None:
        document = view.postmortem_document
        _stdout().print(
            f"document: {safe(document.path, single_line=True)} (sha256 {document.sha256})",
            soft_wrap=True,
        )
