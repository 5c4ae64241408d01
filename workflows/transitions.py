"""Which responder commands are legal in which phase, with the reason when not.

Each ``check_*`` returns ``None`` when the command is allowed, or a message
saying why not and what is allowed instead. The workflow's update validators
raise these messages, so a rejected command writes nothing to history.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta

from domain.incident import IncidentState
from domain.models import (
    MAX_ROOT_CAUSE_KEY,
    MAX_SERVICES_DOWN,
    FixStrategy,
    Phase,
    RecordInput,
    ReviewInput,
    Severity,
)

MOVES: dict[Phase, tuple[Phase, ...]] = {
    Phase.DETECT: (),
    Phase.INVESTIGATE: (Phase.FIX, Phase.MONITOR, Phase.RESOLVE),
    Phase.FIX: (Phase.INVESTIGATE, Phase.MONITOR, Phase.RESOLVE),
    Phase.MONITOR: (Phase.INVESTIGATE, Phase.FIX, Phase.RESOLVE),
    Phase.RESOLVE: (),
    Phase.DISMISSED: (),
}
"""Phase changes a responder may request, by current phase (acknowledge leaves Detect)."""

DISMISSABLE = (Phase.DETECT, Phase.INVESTIGATE)
COMMAND_PHASES = (Phase.INVESTIGATE, Phase.FIX, Phase.MONITOR, Phase.RESOLVE)


def parse_phase(name: str) -> Phase | None:
    """A phase from its case-insensitive name, or None."""
    for phase in Phase:
        if phase.value.lower() == name.strip().lower():
            return phase
    return None


def parse_severity(name: str) -> Severity | None:
    """A severity from its case-insensitive name, or None."""
    try:
        return Severity(name.strip().upper())
    except ValueError:
        return None


def _closed_reason(state: IncidentState) -> str | None:
    if state.phase is Phase.DISMISSED:
        return f"{state.id} was dismissed as a false alarm ({state.dismissed_reason})"
    if state.phase is Phase.RESOLVE:
        return f"{state.id} is resolved"
    return None


def _listing(phases: tuple[Phase, ...]) -> str:
    return ", ".join(phase.value.lower() for phase in phases) or "none"


def check_acknowledge(state: IncidentState) -> str | None:
    """Acknowledging is only possible in Detect."""
    closed = _closed_reason(state)
    if closed:
        return f"cannot acknowledge: {closed}"
    if state.phase is not Phase.DETECT:
        return (
            f"{state.id} is already acknowledged by {state.commander} "
            f"(phase {state.phase.value}); nothing to do"
        )
    return None


def check_phase(state: IncidentState, name: str) -> str | None:
    """A phase change must be one of :data:`MOVES`."""
    target = parse_phase(name)
    if target is None or target not in COMMAND_PHASES:
        return f"unknown phase {name!r}; use one of: {_listing(COMMAND_PHASES)}"
    closed = _closed_reason(state)
    if closed:
        return f"cannot move to {target.value}: {closed}"
    if state.phase is Phase.DETECT:
        return (
            f"cannot move {state.id} from Detect to {target.value}: acknowledge it first "
            f"(incident ack {state.id}), or dismiss it as a false alarm"
        )
    if target is state.phase:
        return f"{state.id} is already in {target.value}"
    allowed = MOVES[state.phase]
    if target not in allowed:
        return (
            f"cannot move {state.id} from {state.phase.value} to {target.value}; "
            f"allowed from {state.phase.value}: {_listing(allowed)}"
        )
    return None


def check_dismiss(state: IncidentState, reason: str) -> str | None:
    """Only unconfirmed incidents (Detect, Investigate) can be dismissed, with a reason."""
    if not reason.strip():
        return "a reason is required to dismiss an incident"
    if state.phase not in DISMISSABLE:
        return (
            f"cannot dismiss {state.id} in phase {state.phase.value}: only incidents in "
            "Detect or Investigate can be dismissed as false alarms"
        )
    return None


def check_severity(state: IncidentState, name: str) -> str | None:
    """Severity changes need a known severity and an open incident."""
    severity = parse_severity(name)
    if severity is None:
        return f"unknown severity {name!r}; use one of: {', '.join(s.value for s in Severity)}"
    closed = _closed_reason(state)
    if closed:
        return f"cannot change severity: {closed}"
    if severity is state.severity:
        return f"{state.id} is already {severity.value}"
    return None


def check_update(state: IncidentState, text: str) -> str | None:
    """Stakeholder updates are for open incidents."""
    if not text.strip():
        return "an update needs some text"
    closed = _closed_reason(state)
    if closed:
        return f"cannot post an update: {closed}"
    return None


def check_note(state: IncidentState, text: str) -> str | None:
    """Notes are welcome until the incident is closed."""
    if not text.strip():
        return "a note needs some text"
    if state.closed:
        return f"{state.id} is closed"
    return None


def check_postmortem(state: IncidentState, required: bool) -> str | None:
    """A post-mortem is recorded once, after Resolve, when one is owed."""
    if state.phase is Phase.DISMISSED:
        return f"{state.id} was dismissed; no post-mortem is needed"
    if state.phase.is_open:
        return (
            f"{state.id} is still open (phase {state.phase.value}); "
            "a post-mortem is recorded after Resolve"
        )
    if state.postmortem_recorded_at is not None:
        return f"the post-mortem of {state.id} is already recorded ({state.postmortem_url})"
    if not required:
        return f"{state.id} ({state.severity.value}) does not require a post-mortem"
    return None


MAX_NAME = 100
"""Longest responder or commander name (it becomes a search attribute and a Slack mention)."""


def check_name(name: str, what: str) -> str | None:
    """A person's name: not empty, at most :data:`MAX_NAME` characters, printable."""
    if not name.strip():
        return f"the {what} name is empty"
    if len(name) > MAX_NAME:
        return f"the {what} name is {len(name)} characters long; at most {MAX_NAME} are allowed"
    if not name.isprintable():
        return f"the {what} name contains control or non-printable characters"
    return None


def check_responder(responder: str) -> str | None:
    """Every command names who issued it."""
    if not responder.strip():
        return "the responder name is empty (use --as NAME or INCIDENT_USER)"
    return check_name(responder, "responder")


ROOT_CAUSE_KEY = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*){0,3}")
"""A root-cause key: lower-case words joined by ``-``, ``_`` or ``.``, up to four
``/``-separated levels (``deploy/bad-config``, ``db/pool-exhausted``)."""
_RECORD_FIELDS = tuple(name for name in RecordInput.model_fields if name != "responder")


def parse_fix_strategy(name: str) -> FixStrategy | None:
    """A fix strategy from its case-insensitive name, or None."""
    try:
        return FixStrategy(name.strip().lower())
    except ValueError:
        return None


def check_record(state: IncidentState, record: RecordInput, now: datetime) -> str | None:
    """Record fields are checked one by one; the first bad one is named with its reason."""
    if state.closed:
        return f"{state.id} is closed; its record can no longer change"
    if all(getattr(record, name) is None for name in _RECORD_FIELDS):
        return "nothing to set: give at least one field of the incident record"
    revenue = record.revenue_impact
    if revenue is not None and not (math.isfinite(revenue) and revenue >= 0):
        return f"revenue impact must be a finite amount of 0 or more, not {revenue:g}"
    if record.customer_complaints is not None and record.customer_complaints < 0:
        return f"customer complaints must be 0 or more, not {record.customer_complaints}"
    if record.root_cause_key is not None:
        key = record.root_cause_key
        if len(key) > MAX_ROOT_CAUSE_KEY or not ROOT_CAUSE_KEY.fullmatch(key):
            return (
                f"root-cause key {key[:80]!r} is not a short normalised tag: lower-case words "
                "joined by '-', '_' or '.', '/' between levels, e.g. deploy/bad-config "
                f"(at most {MAX_ROOT_CAUSE_KEY} characters)"
            )
    if record.fix_strategy is not None and parse_fix_strategy(record.fix_strategy) is None:
        return f"unknown fix strategy {record.fix_strategy[:40]!r}; use one of: " + ", ".join(
            strategy.value for strategy in FixStrategy
        )
    if record.services_down is not None:
        if len(record.services_down) > MAX_SERVICES_DOWN:
            return f"at most {MAX_SERVICES_DOWN} services down can be listed"
        if any(not service.strip() for service in record.services_down):
            return "a service name in services down is empty"
    for name in ("users_affected", "root_cause", "resolution"):
        value = getattr(record, name)
        if value is not None and not value.strip():
            return f"{name.replace('_', ' ')} is empty"
    started = record.impact_started
    if started is not None:
        if started.tzinfo is None:
            return "impact started needs a time zone (the CLI reads times as UTC)"
        if started > now:
            return (
                f"impact started {started:%Y-%m-%d %H:%M} UTC is in the future "
                f"(now {now:%Y-%m-%d %H:%M} UTC)"
            )
    return None


MAX_ATTENDEES = 30
"""People one review meeting may invite."""
MAX_REVIEW_AHEAD = timedelta(days=90)
"""How far ahead a review meeting may be scheduled."""


def check_review(state: IncidentState, command: ReviewInput, now: datetime) -> str | None:
    """A review meeting is scheduled for a resolved incident that owes a post-mortem, in the
    future, with named attendees."""
    if state.phase is Phase.DISMISSED:
        return f"{state.id} was dismissed; no post-mortem review is needed"
    if state.closed:
        return f"{state.id} is closed"
    if command.at.tzinfo is None:
        return "the meeting time needs a time zone"
    if command.at <= now:
        return f"the meeting time {command.at:%Y-%m-%d %H:%M %Z} is in the past"
    if command.at - now > MAX_REVIEW_AHEAD:
        return f"the meeting is more than {MAX_REVIEW_AHEAD.days} days ahead"
    if len(command.attendees) > MAX_ATTENDEES:
        return f"{len(command.attendees)} attendees; at most {MAX_ATTENDEES} are allowed"
    for attendee in command.attendees:
        reason = check_name(attendee, "attendee")
        if reason:
            return reason
    return None


def check_item(state: IncidentState, phase_name: str | None) -> tuple[Phase | None, str | None]:
    """The phase whose checklist a ``check`` names (default the current one), else why not."""
    if state.closed:
        return None, f"{state.id} is closed"
    if phase_name is None:
        if state.phase is Phase.DISMISSED:
            return None, f"{state.id} was dismissed; its checklists are closed"
        return state.phase, None
    phase = parse_phase(phase_name)
    if phase is None or phase is Phase.DISMISSED:
        return None, f"unknown phase {phase_name!r} (detect, investigate, fix, monitor, resolve)"
    return phase, None
