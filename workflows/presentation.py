"""How an incident presents itself: facts for messages, the query view, the
Temporal UI's current details and search attributes. Pure functions of the state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio.common import SearchAttributeKey

from domain import search_attributes as sa
from domain.incident import PUBLIC_HISTORY_KEPT, IncidentState, IncidentSummary, IncidentView
from domain.measures import IncidentMeasures
from domain.models import EventKind, IncidentFacts, Phase, TimelineEvent, cap_text
from domain.text import escape_markdown
from workflows import checklist, clocks, progress


def facts_of(state: IncidentState) -> IncidentFacts:
    """The incident's facts with its derived deadlines."""
    policy = state.policy
    severity = policy.for_severity(state.severity) if policy else None
    return IncidentFacts(
        id=state.id,
        title=state.title,
        severity=state.severity,
        phase=state.phase,
        service=state.service,
        commander=state.commander,
        impact=state.impact,
        eta=state.eta,
        description=state.description,
        declared_at=state.declared_at,
        detected_at=state.detected_at,
        acknowledged_at=state.acknowledged_at,
        resolved_at=state.resolved_at,
        ack_deadline=clocks.ack_deadline(state, policy) if policy else None,
        resolve_deadline=clocks.resolve_deadline(state, policy) if policy else None,
        next_update_at=clocks.next_update_at(state, policy) if policy else None,
        update_interval_seconds=severity.update_interval.total_seconds() if severity else None,
        postmortem_due_at=clocks.postmortem_due_at(state, policy) if policy else None,
        postmortem_url=state.postmortem_url,
        related_incident=state.related_incident,
        links=list(state.links),
        status_page_url=policy.notifications.status_page_url if policy else "",
        public_title=state.public_title,
        public_resolution=state.public_resolution,
        impact_started=state.record.impact_started,
        review_at=state.review.at if state.review else None,
        review_attendees=list(state.review.attendees) if state.review else [],
    )


def view_of(state: IncidentState) -> IncidentView:
    """What the ``view`` query returns: facts, deadlines, alerts and timeline."""
    policy = state.policy
    return IncidentView(
        **facts_of(state).model_dump(),
        declared_by=state.declared_by,
        source=state.source,
        sla_breached=state.sla_breached,
        dismissed_reason=state.dismissed_reason,
        routing_rule=state.routing_rule,
        alert_group=state.alert_group,
        monitor_until=clocks.monitor_until(state, policy) if policy else None,
        postmortem_recorded_at=state.postmortem_recorded_at,
        pages_sent=state.marks.pages_sent,
        closed=state.closed,
        alerts=list(state.alerts.values()),
        alerts_untracked=state.alerts_untracked,
        alert_notifications=state.alert_notifications,
        timeline=list(state.timeline),
        timeline_archived=state.timeline_archived,
        delivery_failed=state.delivery_failed,
        record=state.record,
        refs=dict(state.refs),
        phase_clock=state.phases().model_copy(deep=True),
        checklists=checklist.lists(state, policy) if policy else {},
        review=state.review,
        postmortem_document=state.postmortem_document,
    )


def measures_of(state: IncidentState) -> IncidentMeasures:
    """The facts the metrics read, published in the memo (see :mod:`domain.measures`)."""
    policy = state.policy
    ack_deadline = clocks.ack_deadline(state, policy) if policy else None
    acknowledged = state.acknowledged_at
    ack_missed = state.marks.pages_sent > 0 or (
        acknowledged is not None and ack_deadline is not None and acknowledged > ack_deadline
    )
    return IncidentMeasures(
        severity=state.severity,
        phase=state.phase,
        source=state.source,
        service=state.service,
        declared_at=state.declared_at,
        detected_at=state.detected_at,
        impact_started=state.record.impact_started,
        acknowledged_at=acknowledged,
        mitigated_at=state.phases().first_entered.get(Phase.MONITOR),
        resolved_at=state.resolved_at,
        dismissed=state.phase is Phase.DISMISSED,
        ack_deadline=ack_deadline,
        resolve_deadline=clocks.resolve_deadline(state, policy) if policy else None,
        ack_sla_missed=ack_missed,
        resolve_sla_missed=state.sla_breached,
        pages_sent=state.marks.pages_sent,
        root_cause_key=state.record.root_cause_key,
        repeat_of=state.related_incident,
        postmortem_due_at=clocks.postmortem_due_at(state, policy) if policy else None,
        postmortem_recorded_at=state.postmortem_recorded_at,
    )


def summary_of(state: IncidentState) -> IncidentSummary:
    """What the ``summary`` query returns: facts and a bounded public history."""
    return IncidentSummary(
        **facts_of(state).model_dump(),
        declared_by=state.declared_by,
        source=state.source,
        sla_breached=state.sla_breached,
        closed=state.closed,
        public_history=public_history(state.timeline),
    )


def public_history(timeline: list[TimelineEvent]) -> list[TimelineEvent]:
    """Entries that change the phase, and responders' updates: the first and the newest."""
    kept: list[TimelineEvent] = []
    phase = None
    for event in timeline:
        responder_update = event.kind is EventKind.UPDATE_POSTED and event.actor not in (
            None,
            "system",
        )
        if (event.phase is not None and event.phase != phase) or responder_update:
            kept.append(event)
        phase = event.phase or phase
    if len(kept) <= PUBLIC_HISTORY_KEPT:
        return kept
    return [kept[0], *kept[-(PUBLIC_HISTORY_KEPT - 1) :]]


def _when(value: datetime | None) -> str:
    return "—" if value is None else f"{value:%Y-%m-%d %H:%M:%S} UTC"


def details_of(state: IncidentState, now: datetime | None = None) -> str:
    """The current details shown on the workflow's page in the Temporal UI.

    Args:
        state: the incident.
        now: the moment relative times ("in 4m") are computed for: the workflow
            passes ``workflow.now()``; without it, the latest timeline entry's time.
    """
    at = now or _latest_change(state)
    facts = facts_of(state)
    rows = [
        f"**{facts.severity.value} · {facts.phase.value}** — {escape_markdown(facts.title)}",
        progress.path_line(state, at),
        f"**IC:** {escape_markdown(cap_text(facts.commander or 'unassigned', 100))}",
    ]
    if facts.phase is not Phase.DISMISSED:
        rows.append(_sla_row(state, facts, at))
    if facts.next_update_at is not None:
        due = progress.due_status(facts.next_update_at, now=at)
        rows.append(f"**Next update:** {_when(facts.next_update_at)} ({due})")
    if facts.postmortem_due_at is not None:
        status = progress.deadline_status(
            facts.postmortem_due_at, now=at, done_at=state.postmortem_recorded_at
        )
        rows.append(f"**Post-mortem due:** {_when(facts.postmortem_due_at)} ({status})")
    if facts.phase is Phase.DISMISSED:
        reason = escape_markdown(cap_text(state.dismissed_reason or "no reason given", 300))
        rows.append(f"**Dismissed:** {reason}")
    if state.sla_breached:
        rows.append("**SLA breached**")
    if state.delivery_failed:
        rows.append("**A page could not be delivered** (see the timeline)")
    rows.append(f"_As of {_when(at)}_")
    return "\n".join(rows)


def _latest_change(state: IncidentState) -> datetime:
    return state.timeline[-1].at if state.timeline else state.phases().since


def _sla_row(state: IncidentState, facts: IncidentFacts, now: datetime) -> str:
    """Both SLA deadlines, each met, missed or still running."""
    parts = []
    if facts.ack_deadline is not None:
        status = progress.deadline_status(
            facts.ack_deadline,
            now=now,
            done_at=state.acknowledged_at or state.resolved_at,
            missed=state.marks.pages_sent > 0,
        )
        parts.append(f"**Ack by:** {_when(facts.ack_deadline)} ({status})")
    if facts.resolve_deadline is not None:
        status = progress.deadline_status(
            facts.resolve_deadline, now=now, done_at=state.resolved_at, missed=state.sla_breached
        )
        parts.append(f"**Resolve by:** {_when(facts.resolve_deadline)} ({status})")
    return " · ".join(parts) or "**SLAs:** — (policy not loaded yet)"


def search_attribute_values(
    state: IncidentState,
) -> tuple[tuple[SearchAttributeKey[Any], Any], ...]:
    """The value each custom search attribute should have (None: unset)."""
    return (
        (sa.PHASE, state.phase.value),
        (sa.SEVERITY, state.severity.value),
        (sa.SERVICE, sa.keyword(state.service)),
        (sa.COMMANDER, sa.keyword(state.commander or "")),
        (sa.SLA_BREACHED, state.sla_breached),
        (sa.DETECTED_AT, state.detected_at or state.declared_at),
        (sa.ACKNOWLEDGED_AT, state.acknowledged_at),
        (sa.RESOLVED_AT, state.resolved_at),
        (sa.DELIVERY_FAILED, state.delivery_failed),
    )
