"""An incident's phase checklists: built from the policy, ticked by responders and by
what the system itself did. Pure functions of the state (deterministic)."""

from __future__ import annotations

from datetime import datetime

from domain.checklists import AutoTick, ChecklistItem, Checklists, checklists_from, open_items
from domain.incident import IncidentState
from domain.models import Phase
from domain.policy import Policy

STATUS_RESOLVED = "resolved"
STATUS_PAGE_CHANNEL = "statuspage"
"""Name of the channel that updates an external status page."""
"""What the status-page channel reports in ``statuspage.status`` once it shows Resolved."""


def lists(state: IncidentState, policy: Policy) -> Checklists:
    """The incident's checklists, without changing the state (queries, validators)."""
    if state.checklists is None:
        return checklists_from(policy.checklists)
    return state.checklists


def kept_lists(state: IncidentState, policy: Policy) -> Checklists:
    """The incident's checklists, kept in the state from the first time they are needed
    (workflow code only: queries and validators must not change the state)."""
    if state.checklists is None:
        state.checklists = checklists_from(policy.checklists)
    return state.checklists


def items_of(state: IncidentState, policy: Policy, phase: Phase) -> list[ChecklistItem]:
    """The checklist of ``phase`` (empty for Dismissed), without changing the state."""
    return lists(state, policy).get(phase, [])


def known_facts(state: IncidentState) -> dict[AutoTick, str]:
    """Facts the incident already holds, each with what established it."""
    facts: dict[AutoTick, str] = {AutoTick.SEVERITY: f"declared {state.severity.value}"}
    record = state.record
    if state.alerts or state.alerts_untracked:
        facts[AutoTick.ALERTS] = f"{len(state.alerts) + state.alerts_untracked} alert(s) joined"
    if record.users_affected is not None or record.services_down is not None:
        facts[AutoTick.IMPACT] = "impact recorded"
    if state.commander and state.acknowledged_at is not None:
        facts[AutoTick.COMMANDER] = f"{state.commander} acknowledged as IC"
    if "slack.channel" in state.refs:
        name = state.refs.get("slack.channel_name", state.refs["slack.channel"])
        facts[AutoTick.CHANNEL] = f"channel #{name} created"
    if record.fix_strategy is not None:
        facts[AutoTick.FIX_STRATEGY] = f"fix strategy {record.fix_strategy.value} recorded"
    if Phase.MONITOR in state.phases().first_entered:
        facts[AutoTick.FIX_DEPLOYED] = "entered Monitor"
    if record.root_cause is not None:
        facts[AutoTick.ROOT_CAUSE] = "root cause recorded"
    if state.alerts and not any(alert.firing for alert in state.alerts.values()):
        facts[AutoTick.ALERTS_QUIET] = "every alert recovered"
    if state.refs.get("statuspage.status") == STATUS_RESOLVED:
        facts[AutoTick.STATUS_PAGE] = "status page shows Resolved"
    elif _built_in_status_page(state) and not state.phase.is_open:
        facts[AutoTick.STATUS_PAGE] = "the built-in status page shows it resolved"
    if "email.customer" in state.refs and state.resolved_at is not None:
        facts[AutoTick.CUSTOMERS] = "customer e-mail sent"
    if state.review is not None:
        facts[AutoTick.POSTMORTEM_SCHEDULED] = (
            f"review scheduled for {state.review.at:%Y-%m-%d %H:%M} UTC"
        )
    elif state.postmortem_recorded_at is not None:
        facts[AutoTick.POSTMORTEM_SCHEDULED] = "post-mortem recorded"
    return facts


def _built_in_status_page(state: IncidentState) -> bool:
    """Whether the public page is the HTTP service's own ``/status``, which reads the
    incidents themselves (no status-page channel delivers to an external one)."""
    external = STATUS_PAGE_CHANNEL in state.channels
    return not external and bool(state.policy and state.policy.notifications.status_page_url)


def tick_known(state: IncidentState, policy: Policy, now: datetime) -> None:
    """Tick every unticked item whose fact is known, naming the fact as who ticked it."""
    facts = known_facts(state)
    for items in kept_lists(state, policy).values():
        for item in items:
            if not item.done and item.auto is not None and item.auto in facts:
                item.done_at, item.done_by = now, f"system ({facts[item.auto]})"


def open_texts(state: IncidentState, policy: Policy, phase: Phase) -> list[str]:
    """The open items of ``phase``, numbered as ``incident check`` takes them."""
    return [f"{number}. {item.text}" for number, item in open_items(items_of(state, policy, phase))]
