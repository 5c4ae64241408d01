"""The process's documents, in Markdown, from an incident's view: pure functions, no I/O.

:func:`incident_document` fills the "Incident Response Template" and
:func:`postmortem_draft` the "Post-Mortem Template" of
``docs/incident_response.md``. Everything a person typed is escaped, so no
text can open a heading, a list, a link or a table cell of its own; what the
incident does not know is written as "not recorded", never left blank.
Rendering is linear in the timeline's length.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from domain.incident import IncidentView
from domain.models import EventKind, Phase, TimelineEvent
from domain.text import strip_unsafe

NOT_RECORDED = "not recorded"
SYSTEM_ACTORS = frozenset({"system", "alertmanager", "grafana", "pagerduty", "generic"})
"""Timeline actors that are not people (timers and monitoring sources)."""
NO_ACTION_ITEMS = "No action items recorded yet."

_INLINE_SPECIALS = re.compile(r"([\\`*_{}\[\]<>|#~&!])")
_BLOCK_START = re.compile(r"^(\s*)([-+=>]|\d+[.)])")


@dataclass(frozen=True)
class ActionItemRow:
    """One row of the post-mortem's action-item table (filled by the action-item tracker)."""

    action: str
    """What is to be done."""
    owner: str
    """Who owns it."""
    due: date | None
    """When it is due."""
    status: str
    """Its status as shown (e.g. "⏳ open", "✅ done on time")."""


def inline(text: str | None) -> str:
    """Untrusted text as one line of inert Markdown (also safe in a table cell)."""
    flat = strip_unsafe(text, single_line=True)
    escaped = _INLINE_SPECIALS.sub(r"\\\1", flat)
    return _BLOCK_START.sub(r"\1\\\2", escaped)


def block(text: str | None) -> str:
    """Untrusted multi-line text as inert Markdown paragraphs (line breaks kept)."""
    lines = [inline(line) for line in strip_unsafe(text).split("\n")]
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        if line:
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    return "\n\n".join("  \n".join(lines) for lines in paragraphs if lines) or NOT_RECORDED


def when(moment: datetime | None) -> str:
    """A timestamp as the documents show it (UTC, to the minute)."""
    return NOT_RECORDED if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"


def minutes(delta: timedelta | None) -> str:
    """A duration in whole minutes (never negative), or "not measurable"."""
    if delta is None:
        return "not measurable"
    return f"{max(round(delta.total_seconds() / 60), 0)} min"


def with_archived(view: IncidentView, archived: Sequence[TimelineEvent]) -> IncidentView:
    """``view`` with the archived entries before its kept ones (each entry once).

    ``timeline_archived`` drops by the entries joined, so the documents only
    mention the archive for what is still missing.
    """
    kept_from = view.timeline[0].seq if view.timeline else None
    older = [event for event in archived if kept_from is None or event.seq < kept_from]
    return view.model_copy(
        update={
            "timeline": [*older, *view.timeline],
            "timeline_archived": max(view.timeline_archived - len(older), 0),
        }
    )


# ------------------------------------------------------------------ facts


@dataclass(frozen=True)
class KeyMoments:
    """The process's key moments, found in one pass over the kept timeline."""

    fix_first: datetime | None
    """First entry into Fix: root cause identified."""
    monitor_first: datetime | None
    """First entry into Monitor: fix deployed."""
    monitor_last: datetime | None
    """Latest entry into Monitor: monitoring for stability."""


def key_moments(view: IncidentView) -> KeyMoments:
    """When the incident first entered Fix and Monitor, and last entered Monitor.

    First entries come from the phase clock, which outlives the kept timeline; the
    latest Monitor entry is read from the timeline, else it is the first one.
    """
    first = view.phase_clock.first_entered if view.phase_clock else {}
    fix_first, monitor_first = first.get(Phase.FIX), first.get(Phase.MONITOR)
    monitor_last = None
    for event in view.timeline:
        if event.kind is not EventKind.PHASE_CHANGED:
            continue
        if event.phase is Phase.FIX and fix_first is None:
            fix_first = event.at
        elif event.phase is Phase.MONITOR:
            monitor_first = monitor_first or event.at
            monitor_last = event.at
    return KeyMoments(fix_first, monitor_first, monitor_last or monitor_first)


def impact_start(view: IncidentView) -> datetime | None:
    """When users were first hurt: as a responder set it, else the earliest alert start."""
    return view.record.impact_started or view.detected_at


def started(view: IncidentView) -> datetime:
    """When the incident started for the documents: impact start, else the declaration."""
    start = impact_start(view)
    return start if start is not None and start < view.declared_at else view.declared_at


def duration(view: IncidentView) -> timedelta | None:
    """From the start to resolution (None while open)."""
    return None if view.resolved_at is None else view.resolved_at - started(view)


def _duration_text(view: IncidentView) -> str:
    return "ongoing" if view.resolved_at is None else minutes(duration(view))


def attendees(view: IncidentView) -> list[str]:
    """Everyone who acted on the incident (kept timeline), commander first."""
    sources = {alert.source for alert in view.alerts}
    people = [view.commander] if view.commander else []
    people += [event.actor for event in view.timeline if event.actor]
    return [
        person
        for person in dict.fromkeys(people)
        if person.lower() not in SYSTEM_ACTORS and person not in sources
    ]


def _money(amount: float | None) -> str:
    return NOT_RECORDED if amount is None else f"${amount:,.2f}".removesuffix(".00")


def _count(value: int | None) -> str:
    return NOT_RECORDED if value is None else str(value)


def _yes_no(value: bool | None) -> str:
    return NOT_RECORDED if value is None else ("Yes" if value else "No")


def _text(value: str | None) -> str:
    return NOT_RECORDED if not value else inline(value)


def _services(view: IncidentView) -> str:
    services = view.record.services_down
    if services is None:
        return NOT_RECORDED
    return ", ".join(inline(service) for service in services) or "none"


def _moment(moment: datetime | None, view: IncidentView) -> str:
    if moment is not None:
        return f"{moment:%Y-%m-%d %H:%M}"
    return "in the timeline archive" if view.timeline_archived else NOT_RECORDED


# ------------------------------------------------------- incident document


def incident_document(view: IncidentView, *, action_items: Sequence[ActionItemRow] = ()) -> str:
    """The process's "Incident Response Template", filled from the incident.

    Args:
        view: The incident as the ``view`` query shows it.
        action_items: The incident's action items, when the tracker has any.
    """
    record = view.record
    moments = key_moments(view)
    how = f"declared by {inline(view.declared_by)} via {inline(view.source)}"
    commander = f"@{inline(view.commander)}" if view.commander else NOT_RECORDED
    lines = [
        f"# Incident: {inline(view.id)} - {inline(view.title)}",
        "",
        f"**Severity:** {view.severity.value}  ",
        f"**Status:** {view.phase.public_status}  ",
        f"**Started:** {when(started(view))}  ",
        f"**Resolved:** {when(view.resolved_at)}  ",
        f"**Duration:** {_duration_text(view)}  ",
        f"**Incident Commander:** {commander}  ",
        "",
        "## Impact",
        "",
        f"**Users Affected:** {_text(record.users_affected)}  ",
        f"**Services Down:** {_services(view)}  ",
        f"**Data Loss:** {_yes_no(record.data_loss)}  ",
        f"**Revenue Impact:** {_money(record.revenue_impact)}  ",
        f"**Customer Complaints:** {_count(record.customer_complaints)}  ",
        f"**Impact Started:** {when(record.impact_started)}  ",
        "",
        "## Timeline",
        "",
        f"- **{_moment(view.declared_at, view)}** - Incident detected ({how})",
        f"- **{_moment(view.acknowledged_at, view)}** - Incident commander assigned"
        + (f" ({commander})" if view.commander else ""),
        f"- **{_moment(moments.fix_first, view)}** - Root cause identified",
        f"- **{_moment(moments.monitor_first, view)}** - Fix deployed"
        + (f" ({record.fix_strategy.value})" if record.fix_strategy else ""),
        f"- **{_moment(moments.monitor_last, view)}** - Monitoring for stability",
        f"- **{_moment(view.resolved_at, view)}** - Incident resolved",
        "",
        "## Root Cause",
        "",
        block(record.root_cause),
    ]
    if record.root_cause_key:
        lines += ["", f"Root-cause key: `{record.root_cause_key}`"]
    lines += ["", "## Resolution", "", block(record.resolution), ""]
    lines += ["## Action Items", "", *_process_checklist(view, moments), ""]
    lines += ["### Follow-ups", "", *_checklist(action_items), ""]
    lines += ["## Communication", "", *_communication(view), ""]
    lines += ["## Lessons Learned", "", "_To be filled in post-mortem._", ""]
    return "\n".join(lines)


def _process_checklist(view: IncidentView, moments: KeyMoments) -> list[str]:
    """The template's standing checklist, ticked where the incident shows it was done."""
    mailed = any(e.kind is EventKind.NOTIFICATION_SENT for e in view.timeline)
    items = [
        ("Immediate fix deployed", moments.monitor_first is not None),
        ("Monitoring added", False),
        ("Tests added to prevent recurrence", False),
        ("Documentation updated", False),
        ("Post-mortem scheduled", view.review is not None),
        ("Customer communication sent", mailed),
    ]
    return [f"- [{'x' if done else ' '}] {text}" for text, done in items]


def _checklist(items: Sequence[ActionItemRow]) -> list[str]:
    if not items:
        return [NO_ACTION_ITEMS]
    return [
        f"- [{'x' if item.status.startswith('✅') else ' '}] {inline(item.action)} "
        f"({_owner(item.owner)}, due {item.due or NOT_RECORDED})"
        for item in items
    ]


def _communication(view: IncidentView) -> list[str]:
    channel = view.refs.get("slack.channel_name")
    slack = f"#{inline(channel.lstrip('#'))}" if channel else "no incident channel recorded"
    updates = sum(1 for e in view.timeline if e.kind is EventKind.UPDATE_POSTED)
    interval = view.update_interval_seconds
    cadence = f"every {round(interval / 60)} minutes" if interval else NOT_RECORDED
    if "statuspage.incident_id" in view.refs:
        status_page = f"updated ({inline(view.refs.get('statuspage.status', 'posted'))})"
    elif view.status_page_url:
        status_page = f"{inline(view.status_page_url)} (built-in page)"
    else:
        status_page = "not published"
    mails = [e for e in view.timeline if e.kind is EventKind.NOTIFICATION_SENT]
    mail = f"sent ({'; '.join(inline(e.text) for e in mails)})" if mails else "not sent"
    return [
        "### Internal",
        f"- Slack: {slack}",
        f"- Status: updated {cadence} ({_times(updates, 'responder update')} in the kept timeline)",
        "",
        "### External",
        f"- Status page: {status_page}",
        f"- Customer email: {mail}",
    ]


# ----------------------------------------------------------- post-mortem


@dataclass(frozen=True)
class Figures:
    """The incident's own figures against the policy's SLAs."""

    time_to_detect: timedelta | None
    time_to_acknowledge: timedelta | None
    time_to_mitigate: timedelta | None
    time_to_resolve: timedelta | None
    ack_sla: timedelta | None
    resolve_sla: timedelta | None
    ack_late_by: timedelta | None
    """How late the acknowledgement was (zero or less: on time; None: unknown)."""
    resolve_late_by: timedelta | None
    """How late the resolution was (zero or less: on time; None: unknown)."""


def _between(start: datetime | None, end: datetime | None) -> timedelta | None:
    return None if start is None or end is None else end - start


def figures(view: IncidentView) -> Figures:
    """Time to detect, acknowledge, mitigate and resolve, and both SLAs."""
    impact = impact_start(view)
    moments = key_moments(view)
    ack_sla = _between(view.declared_at, view.ack_deadline)
    resolve_sla = _between(view.declared_at, view.resolve_deadline)
    return Figures(
        time_to_detect=_between(impact, view.declared_at),
        time_to_acknowledge=_between(view.declared_at, view.acknowledged_at),
        time_to_mitigate=_between(impact or view.declared_at, moments.monitor_first),
        time_to_resolve=_between(impact or view.declared_at, view.resolved_at),
        ack_sla=ack_sla,
        resolve_sla=resolve_sla,
        ack_late_by=_between(view.ack_deadline, view.acknowledged_at),
        resolve_late_by=_resolve_late_by(view),
    )


def _resolve_late_by(view: IncidentView) -> timedelta | None:
    late_by = _between(view.resolve_deadline, view.resolved_at)
    if late_by is not None and view.sla_breached:
        # The breach timer fired first: late, however close the resolution came.
        return max(late_by, timedelta(microseconds=1))
    return late_by


def _late(delta: timedelta) -> str:
    return "under 1 min" if delta < timedelta(minutes=1) else minutes(delta)


def _sla(late_by: timedelta | None) -> str:
    if late_by is None:
        return NOT_RECORDED
    return "met" if late_by <= timedelta() else f"missed by {_late(late_by)}"


def _times(count: int, what: str) -> str:
    return f"{count} {what}" if count == 1 else f"{count} {what}s"


def went_well_and_poorly(view: IncidentView, numbers: Figures) -> tuple[list[str], list[str]]:
    """Facts-based bullets: what the figures and the timeline show went well or poorly."""
    well: list[str] = []
    poorly: list[str] = []
    if numbers.ack_late_by is not None and numbers.ack_sla is not None:
        took = minutes(numbers.time_to_acknowledge)
        against = f"against a {minutes(numbers.ack_sla)} SLA"
        if numbers.ack_late_by <= timedelta():
            well.append(f"✅ acknowledged in {took} {against}")
        else:
            poorly.append(f"❌ acknowledged in {took} {against}")
    if numbers.resolve_late_by is not None and numbers.resolve_sla is not None:
        if numbers.resolve_late_by <= timedelta():
            well.append(
                f"✅ resolved within the {minutes(numbers.resolve_sla)} resolve SLA "
                f"({minutes(_between(view.declared_at, view.resolved_at))} after declaration)"
            )
        else:
            poorly.append(f"❌ resolve SLA missed by {_late(numbers.resolve_late_by)}")
    counts: dict[EventKind, int] = {}
    for event in view.timeline:
        counts[event.kind] = counts.get(event.kind, 0) + 1
    if nudges := counts.get(EventKind.NUDGE, 0):
        poorly.append(f"❌ {_times(nudges, 'stakeholder update')} late (the commander was nudged)")
    elif view.resolved_at is not None:
        well.append("✅ no stakeholder update was late")
    if view.pages_sent:
        poorly.append(f"❌ {_times(view.pages_sent, 'escalation page')} before acknowledgement")
    if recurrences := counts.get(EventKind.RECURRENCE, 0):
        poorly.append(f"❌ {_times(recurrences, 'recurrence')} during Monitor")
    if failed := counts.get(EventKind.NOTIFICATION_FAILED, 0):
        poorly.append(f"❌ {_times(failed, 'notification')} not delivered")
    if numbers.time_to_detect is not None and numbers.time_to_detect > timedelta(minutes=5):
        poorly.append(
            f"❌ detected {minutes(numbers.time_to_detect)} after impact started "
            "(target: under 5 min)"
        )
    elif numbers.time_to_detect is not None:
        well.append(f"✅ detected {minutes(numbers.time_to_detect)} after impact started")
    return well, poorly


_NOTHING_SHOWN = "- ✍️ _Nothing the record shows; add what people saw._"


def _prompt(text: str) -> str:
    return f"> ✍️ **To fill in:** {text}"


def postmortem_draft(
    view: IncidentView,
    *,
    action_items: Sequence[ActionItemRow] = (),
    action_items_unlisted: str | None = None,
) -> str:
    """The process's "Post-Mortem Template", filled with everything the incident knows.

    Sections only people can write are left as marked prompts.

    Args:
        view: The incident as the ``view`` query shows it (its kept timeline).
        action_items: The incident's action items, when the tracker has any.
        action_items_unlisted: Why the action items could not be listed, if so.
    """
    record = view.record
    numbers = figures(view)
    well, poorly = went_well_and_poorly(view, numbers)
    people = ", ".join(f"@{inline(person)}" for person in attendees(view)) or NOT_RECORDED
    lines = [
        f"# Post-Mortem: {inline(view.id)} - {inline(view.title)}",
        "",
        "_Draft generated from the incident's record and timeline. Check every figure, "
        "then fill in the marked sections._",
        "",
        f"**Date:** {started(view):%Y-%m-%d}  ",
        f"**Duration:** {_duration_text(view)}  ",
        f"**Severity:** {view.severity.value}  ",
        f"**Attendees:** {people}  ",
        f"**Review Meeting:** {_review(view)}  ",
        "",
        "## Summary",
        "",
        _prompt("2-3 sentences on what happened."),
        "",
        "## Impact",
        "",
        f"- **Users Affected:** {_text(record.users_affected)}",
        f"- **Duration:** {_duration_text(view)}",
        f"- **Revenue Loss:** {_money(record.revenue_impact)}",
        f"- **Customer Complaints:** {_count(record.customer_complaints)}",
        f"- **Services Down:** {_services(view)}",
        f"- **Data Loss:** {_yes_no(record.data_loss)}",
        f"- **Impact Started:** {when(record.impact_started)}",
        "",
        "## Timeline",
        "",
        *_timeline(view),
        "",
        "## Response Figures",
        "",
        "| Figure | Value | Policy |",
        "|--------|-------|--------|",
        f"| Time to detect | {minutes(numbers.time_to_detect)} | under 5 min |",
        f"| Time to acknowledge | {minutes(numbers.time_to_acknowledge)} | "
        f"{_within(numbers.ack_sla)} ({_sla(numbers.ack_late_by)}) |",
        f"| Time to mitigate | {minutes(numbers.time_to_mitigate)} | — |",
        f"| Time to resolve | {minutes(numbers.time_to_resolve)} | "
        f"{_within(numbers.resolve_sla)} ({_sla(numbers.resolve_late_by)}) |",
        "",
        "Detection, mitigation and resolution count from when impact started (the recorded "
        "impact start, else the earliest alert start, else the declaration); "
        "acknowledgement and the SLAs count from the declaration.",
        "",
        "## Root Cause",
        "",
        block(record.root_cause),
    ]
    if record.root_cause_key:
        lines += ["", f"Root-cause key: `{record.root_cause_key}`"]
    lines += [
        "",
        "### Contributing Factors",
        "",
        _prompt("what made it possible, or worse (1. …, 2. …)."),
        "",
        "## Resolution",
        "",
        block(record.resolution),
    ]
    if record.fix_strategy:
        lines += ["", f"Fix strategy: {record.fix_strategy.value}"]
    lines += [
        "",
        "## What Went Well",
        "",
        *([f"- {bullet}" for bullet in well] or [_NOTHING_SHOWN]),
        "",
        "## What Went Poorly",
        "",
        *([f"- {bullet}" for bullet in poorly] or [_NOTHING_SHOWN]),
        "",
        "## Action Items",
        "",
        *(
            [
                _prompt(
                    f"the action items could not be listed ({inline(action_items_unlisted)}); "
                    f"see `incident actions --incident {view.id}`."
                )
            ]
            if action_items_unlisted
            else _action_table(action_items)
        ),
        "",
        "### Checklist Items Left Open",
        "",
        *_left_open(view),
        "",
        "## Lessons Learned",
        "",
        _prompt("what the team learned (1. …, 2. …)."),
        "",
        "## Prevention",
        "",
        _prompt("how we will prevent this from happening again."),
        "",
    ]
    return "\n".join(lines)


def _review(view: IncidentView) -> str:
    review = view.review
    if review is None:
        return "not scheduled"
    who = ", ".join(f"@{inline(name.lstrip('@'))}" for name in review.attendees)
    return f"{when(review.at)}" + (f" with {who}" if who else "")


def _left_open(view: IncidentView) -> list[str]:
    """The phase checklists' items nobody ticked, by phase."""
    lines = [
        f"- [ ] {phase.value}: {inline(item.text)}"
        for phase, items in view.checklists.items()
        for item in items
        if not item.done
    ]
    if not view.checklists:
        return [NOT_RECORDED]
    return lines or ["Every checklist item was ticked."]


def _within(sla: timedelta | None) -> str:
    return NOT_RECORDED if sla is None else f"within {minutes(sla)}"


def _timeline(view: IncidentView) -> list[str]:
    rows: list[str] = []
    if view.timeline_archived:
        rows.append(
            f"_{view.timeline_archived} older entries are in the timeline archive "
            f"(incident show {inline(view.id)} --full)._"
        )
        rows.append("")
    for event in view.timeline:
        actor = f" ({inline(event.actor)})" if event.actor else ""
        kind = event.kind.value.replace("_", " ")
        rows.append(f"- **{event.at:%Y-%m-%d %H:%M:%S}** {kind}{actor}: {inline(event.text)}")
    return rows or [NOT_RECORDED]


def _owner(owner: str) -> str:
    return inline("@" + owner.lstrip("@"))


def _action_table(items: Sequence[ActionItemRow]) -> list[str]:
    if not items:
        return [NO_ACTION_ITEMS]
    rows = ["| Action | Owner | Due Date | Status |", "|--------|-------|----------|--------|"]
    for item in items:
        due = item.due.isoformat() if item.due else NOT_RECORDED
        rows.append(
            f"| {inline(item.action)} | {_owner(item.owner)} | {due} | {inline(item.status)} |"
        )
    return rows
