"""Every durable deadline of an incident, derived from its state and the policy.

Deadlines are absolute times computed from facts (declaration time, severity,
acknowledgement, interval anchors), never stored, so a severity change or a
continue-as-new re-arms them correctly and marks in the state keep each one
from firing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from domain.incident import IncidentState
from domain.models import Phase
from domain.policy import Policy


class ClockKind(StrEnum):
    """The timers an incident runs."""

    ESCALATION_PAGE = "escalation page"
    RESOLVE_SLA = "resolve SLA"
    NUDGE = "commander nudge"
    STAKEHOLDER_UPDATE = "stakeholder update"
    MONITOR_END = "monitor window end"
    POSTMORTEM_REMINDER = "post-mortem reminder"
    POSTMORTEM_DEADLINE = "post-mortem deadline"
    ALERTS_SETTLED = "alerts settled"
    REVIEW_REMINDER = "post-mortem review reminder"


@dataclass(frozen=True)
class Clock:
    """One armed deadline."""

    kind: ClockKind
    when: datetime

    @property
    def label(self) -> str:
        """Timer summary shown in the Temporal UI."""
        return f"{self.kind.value} at {self.when:%Y-%m-%d %H:%M:%S} UTC"


def ack_deadline(state: IncidentState, policy: Policy) -> datetime:
    """When the incident must be acknowledged (from the original declaration time)."""
    return state.declared_at + policy.for_severity(state.severity).ack_sla


def resolve_deadline(state: IncidentState, policy: Policy) -> datetime:
    """When the incident must be resolved (from the original declaration time)."""
    return state.declared_at + policy.for_severity(state.severity).resolve_sla


def page_offset(step: int, policy: Policy) -> timedelta:
    """Time after the acknowledge deadline at which escalation step ``step`` pages."""
    levels = policy.escalation.levels
    cycles, level = divmod(step, len(levels))
    within = sum((lvl.delay for lvl in levels[:level]), timedelta())
    return cycles * policy.escalation_cycle() + within


def total_pages(policy: Policy) -> int:
    """How many pages the whole chain sends, repeats included."""
    return len(policy.escalation.levels) * policy.escalation.repeat


def page_time(state: IncidentState, policy: Policy, step: int) -> datetime:
    """Absolute time of escalation step ``step``."""
    return ack_deadline(state, policy) + page_offset(step, policy)


def next_update_at(state: IncidentState, policy: Policy) -> datetime | None:
    """When the next stakeholder update is due, while the incident is open."""
    if not state.phase.is_open:
        return None
    return state.marks.update_anchor + policy.for_severity(state.severity).update_interval


def monitor_until(state: IncidentState, policy: Policy) -> datetime | None:
    """End of the Monitor stability window, while in Monitor."""
    if state.phase is not Phase.MONITOR or state.marks.monitor_started_at is None:
        return None
    return state.marks.monitor_started_at + policy.for_severity(state.severity).monitor_window


def alerts_settled_at(state: IncidentState, policy: Policy) -> datetime | None:
    """When recovered alerts may move the incident on by themselves, if they asked to."""
    if state.auto_transition is None or not state.phase.is_open:
        return None
    return state.auto_transition.since + policy.alerts.settle_window


def postmortem_required(state: IncidentState, policy: Policy) -> bool:
    """Whether this incident owes a post-mortem (decided by its final severity)."""
    return state.phase is Phase.RESOLVE and policy.for_severity(state.severity).postmortem_required


def postmortem_due_at(state: IncidentState, policy: Policy) -> datetime | None:
    """When the post-mortem is due, once resolved and if one is required."""
    if state.resolved_at is None or not postmortem_required(state, policy):
        return None
    return state.resolved_at + policy.postmortem.deadline


def armed_clocks(state: IncidentState, policy: Policy) -> list[Clock]:
    """Every deadline still to fire, earliest first."""
    if state.closed:
        return []
    clocks: list[Clock] = []
    marks = state.marks
    if state.phase is Phase.DETECT and marks.pages_sent < total_pages(policy):
        clocks.append(Clock(ClockKind.ESCALATION_PAGE, page_time(state, policy, marks.pages_sent)))
    if state.phase.is_open and not marks.resolve_breach_notified:
        clocks.append(Clock(ClockKind.RESOLVE_SLA, resolve_deadline(state, policy)))
    update_at = next_update_at(state, policy)
    if update_at is not None:
        clocks.append(Clock(ClockKind.STAKEHOLDER_UPDATE, update_at))
        if state.commander and marks.nudged_for != marks.update_anchor:
            nudge = policy.for_severity(state.severity).nudge_before
            clocks.append(Clock(ClockKind.NUDGE, update_at - nudge))
    monitor_end = monitor_until(state, policy)
    if monitor_end is not None:
        clocks.append(Clock(ClockKind.MONITOR_END, monitor_end))
    settled = alerts_settled_at(state, policy)
    if settled is not None:
        clocks.append(Clock(ClockKind.ALERTS_SETTLED, settled))
    due = postmortem_due_at(state, policy)
    if due is not None and state.postmortem_recorded_at is None:
        if not marks.postmortem_reminded:
            reminder = due - policy.postmortem.reminder_before
            clocks.append(Clock(ClockKind.POSTMORTEM_REMINDER, reminder))
        if not marks.postmortem_escalated:
            clocks.append(Clock(ClockKind.POSTMORTEM_DEADLINE, due))
    if state.review is not None and not state.review.reminded:
        reminder = state.review.at - policy.postmortem.review_reminder_before
        clocks.append(Clock(ClockKind.REVIEW_REMINDER, reminder))
    return sorted(clocks, key=lambda clock: clock.when)


def latest_due_page(state: IncidentState, policy: Policy, now: datetime) -> int:
    """The last escalation step whose time has come: a late page covers every step since the
    last one in one message, not a burst."""
    step = state.marks.pages_sent
    while step + 1 < total_pages(policy) and page_time(state, policy, step + 1) <= now:
        step += 1
    return step
