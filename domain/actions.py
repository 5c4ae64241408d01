"""Action items: the follow-ups an incident leaves behind, each a workflow of its own.

The models here are the action-item workflow's input, state, commands and
answers, plus the pure ``check_*`` rules that its update validators and
handlers share (so the two can never disagree) and the CLI applies before it
starts anything.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import Field

from domain.models import Notification, Phase, Severity, _Model, cap_text
from domain.policy import ActionsPolicy

ACTION_WORKFLOW_TYPE = "ActionItem"
"""Workflow type of action items (listings filter on it)."""
MAX_TITLE = 300
"""Longest action-item title kept."""
MAX_NOTE = 2000
"""Longest completion note or drop reason kept."""
MAX_OWNER = 100
"""Longest owner name accepted."""
OUTBOX_CAP = 50
"""Messages an action item holds for delivery at most: it sends a handful in its life,
so past this the oldest is dropped rather than the state growing."""
ACTION_CHANNELS = ("outbox", "slack")
"""Worker channels an action item delivers through: never the status page or the
customer e-mail, which speak to the public about the incident itself."""

_OWNER = re.compile(r"@?[\w.\-]+")
_ACTION_ID = re.compile(r"(INC-\d{8}-[0-9A-Z]{4})-A(\d+)")
_INCIDENT_ID = re.compile(r"INC-\d{8}-[0-9A-Z]{4}")
JIRA_LABEL_PREFIX = "incident-action-"
"""Prefix of the Jira label that ties an issue to its action item (the rest is the
lowercased action ID): the exactly-once search and the webhook both read it."""


class ActionStatus(StrEnum):
    """Where an action item is (the ``ActionStatus`` search attribute)."""

    OPEN = "open"
    DONE = "done"
    DROPPED = "dropped"


def action_id(incident_id: str, number: int) -> str:
    """``INC-20261127-3A7X-A2``: the ``number``-th action item of ``incident_id``."""
    return f"{incident_id}-A{number}"


def incident_of(action: str) -> str | None:
    """The incident ID inside an action ID, or None when ``action`` is not one."""
    match = _ACTION_ID.fullmatch(action)
    return match.group(1) if match else None


def is_incident_id(value: str) -> bool:
    """Whether ``value`` looks like an incident ID (safe inside a visibility query)."""
    return _INCIDENT_ID.fullmatch(value) is not None


def jira_label(action: str) -> str:
    """``incident-action-inc-20261127-3a7x-a2``: the label of ``action``'s Jira issue."""
    return JIRA_LABEL_PREFIX + action.lower()


def action_of_jira_labels(labels: list[str]) -> str | None:
    """The action ID named by the first of ``labels`` made by :func:`jira_label`, or None."""
    for label in labels:
        if label.startswith(JIRA_LABEL_PREFIX):
            action = label.removeprefix(JIRA_LABEL_PREFIX).upper()
            if incident_of(action) is not None:
                return action
    return None


def normalize_owner(owner: str) -> str:
    """``bob`` and ``@bob`` are the same owner, kept as ``@bob``."""
    owner = owner.strip()
    return owner if owner.startswith("@") else f"@{owner}"


# ---------------------------------------------------------------- rules


def check_owner(owner: str) -> str | None:
    """Why ``owner`` is not acceptable, or None: ``@name`` or ``name``, printable."""
    value = owner.strip()
    if not value or value == "@":
        return "the owner must not be empty (use @name or name)"
    if len(value) > MAX_OWNER:
        return f"the owner is longer than {MAX_OWNER} characters"
    if not _OWNER.fullmatch(value):
        return (
            f"unknown owner format {cap_text(value, 60)!r}: use @name or name "
            "(letters, digits, '.', '_' and '-')"
        )
    return None


def check_title(title: str) -> str | None:
    """Why ``title`` is not acceptable, or None."""
    if not title.strip():
        return "the title must not be empty"
    return None


def check_due(due: datetime, now: datetime) -> str | None:
    """Why ``due`` is not acceptable at ``now``, or None: it must lie in the future."""
    if due.tzinfo is None:
        return "the due date needs a time zone (UTC)"
    if due <= now:
        return f"the due date {due:%Y-%m-%d %H:%M} UTC is in the past"
    return None


def check_open(state: ActionState) -> str | None:
    """Why ``state`` takes no more commands, or None while it is open."""
    if state.status is ActionStatus.DONE:
        return f"{state.id} is already done"
    if state.status is ActionStatus.DROPPED:
        return f"{state.id} was dropped: {state.reason}"
    return None


def check_jira_done(state: ActionState, issue: str | None) -> str | None:
    """Why a ``done`` reported by Jira for ``issue`` is refused, or None.

    Only the item's own issue may close it: anyone who can label an issue in Jira
    could otherwise close any item.
    """
    if issue is None or issue == state.jira_key:
        return None
    if state.jira_key is None:
        return f"{state.id} has no Jira issue recorded yet (reported by {issue})"
    return f"{state.id} is tracked by Jira issue {state.jira_key}, not {issue}"


def check_reason(reason: str) -> str | None:
    """Why a drop reason is not acceptable, or None: one is required."""
    return None if reason.strip() else "a reason is required to drop an action item"


def check_edit(state: ActionState, edit: ActionEdit, now: datetime) -> str | None:
    """Why ``edit`` cannot apply to ``state`` at ``now``, or None."""
    if (reason := check_open(state)) is not None:
        return reason
    if edit.title is None and edit.owner is None and edit.due is None:
        return "nothing to change: give --title, --owner or --due"
    if edit.title is not None and (reason := check_title(edit.title)) is not None:
        return reason
    if edit.owner is not None and (reason := check_owner(edit.owner)) is not None:
        return reason
    if edit.due is not None:
        return check_due(edit.due, now)
    return None


# ---------------------------------------------------------------- models


class ActionItemInput(_Model):
    """Input of the action-item workflow: what was added, or state carried over."""

    incident_id: str
    """The incident the item follows up."""
    title: str
    """What must be done (untrusted; escaped wherever rendered)."""
    owner: str
    """Who must do it (``@name``)."""
    due: datetime
    """When it is due (UTC)."""
    added_by: str
    """Who added it."""
    commander: str | None = None
    """The incident's IC when the item was added (reminders and escalations go there)."""
    severity: Severity = Severity.P2
    """The incident's severity when the item was added (for messages)."""
    incident_title: str = ""
    """The incident's title when the item was added (for messages)."""
    incident_phase: Phase = Phase.RESOLVE
    """The incident's phase when the item was added (for messages)."""
    incident_declared_at: datetime | None = None
    """When the incident was declared (for messages)."""
    max_history_events: int | None = None
    """Continue-as-new at this history length (default: the policy's)."""
    carried: ActionState | None = None
    """State of the previous run, when continuing as new."""


class ActionMarks(_Model):
    """What has fired, keyed by the due date it fired for: editing the due date re-arms."""

    reminded_for: datetime | None = None
    """Due date the owner was reminded of (or that became overdue before a reminder)."""
    overdue_for: datetime | None = None
    """Due date the owner was told had passed."""
    escalated_for: datetime | None = None
    """Due date whose lapse was escalated to the IC and management."""
    digests_sent: int = 0
    """Periods of ``digest_every`` since the item was added that the IC was reminded of."""


class ActionState(_Model):
    """Everything an action item knows; carried whole across continue-as-new (bounded)."""

    id: str
    """Action ID (the workflow ID), e.g. ``INC-20261127-3A7X-A2``."""
    incident_id: str
    """The incident it follows up."""
    title: str
    """What must be done."""
    owner: str
    """Who must do it (``@name``)."""
    due: datetime
    """When it is due."""
    added_by: str
    """Who added it."""
    added_at: datetime
    """Workflow time it was added; the digest cadence counts from here."""
    commander: str | None = None
    """The incident's IC (snapshot)."""
    severity: Severity = Severity.P2
    """The incident's severity (snapshot)."""
    incident_title: str = ""
    """The incident's title (snapshot)."""
    incident_phase: Phase = Phase.RESOLVE
    """The incident's phase (snapshot)."""
    incident_declared_at: datetime | None = None
    """When the incident was declared (snapshot)."""
    status: ActionStatus = ActionStatus.OPEN
    """open, done or dropped."""
    completed_at: datetime | None = None
    """When it was marked done or dropped."""
    on_time: bool | None = None
    """Whether it was done by its due date (None until done)."""
    note: str = ""
    """Completion note."""
    reason: str = ""
    """Why it was dropped."""
    marks: ActionMarks = Field(default_factory=ActionMarks)
    """Which clocks have fired."""
    policy: ActionsPolicy | None = None
    """The ``[actions]`` policy, read from the worker once, when the item starts."""
    channels: list[str] | None = None
    """Channels the item delivers through (None until the worker told it)."""
    max_history_events: int = 10_000
    """Continue-as-new at this history length."""
    max_history_bytes: int = 4 * 1024 * 1024
    """…or at this history size."""
    notification_seq: int = 0
    """Messages queued so far (their keys are ``<action id>/<seq>``)."""
    outbox: list[Notification] = Field(default_factory=list)
    """Messages not yet delivered by every channel (at most :data:`OUTBOX_CAP`)."""
    refs: dict[str, str] = Field(default_factory=dict)
    """Delivery references (the incident's Slack channel) returned by channels."""
    edits: int = 0
    """How many edits were applied."""
    jira_key: str | None = None
    """Key of the item's Jira issue (``OPS-42``), once created."""
    jira_url: str | None = None
    """Browse URL of that issue."""
    jira_error: str = ""
    """Why the Jira export gave up (a permanent error such as a wrong project key)."""

    @property
    def deadline_text(self) -> str:
        """``2026-12-03 00:00 UTC``."""
        return f"{self.due:%Y-%m-%d %H:%M} UTC"


class ActionResponder(_Model):
    """Base of every action-item command: who is acting."""

    responder: str
    """Who issues the command."""


class ActionDone(ActionResponder):
    """``incident action done``."""

    note: str = ""
    """What was done (optional)."""
    jira_issue: str | None = None
    """Set by ``POST /webhooks/jira``: the issue that reached done (refused unless it is
    the item's own issue)."""


class ActionWontdo(ActionResponder):
    """``incident action wontdo``: drop the item."""

    reason: str
    """Why it will not be done (required)."""


class ActionEdit(ActionResponder):
    """``incident action edit``: change title, owner or due date."""

    title: str | None = None
    """New title."""
    owner: str | None = None
    """New owner."""
    due: datetime | None = None
    """New due date (must lie in the future)."""


class ActionResult(_Model):
    """What an action-item command returns."""

    action_id: str
    """The item acted on."""
    status: ActionStatus
    """Its status afterwards."""
    message: str
    """One-line human summary."""
    on_time: bool | None = None
    """For ``done``: whether it was done by its due date."""


class ActionSummary(_Model):
    """One row of ``incident actions`` (from visibility: search attributes and memo)."""

    id: str
    """Action ID."""
    incident_id: str
    """The incident it follows up."""
    title: str
    """What must be done (memo)."""
    owner: str
    """Who must do it."""
    status: str
    """open, done or dropped."""
    due: datetime | None = None
    """When it is due."""
    overdue: bool = False
    """Open and past its due date."""
    commander: str | None = None
    """The incident's IC (memo)."""
    completed_at: datetime | None = None
    """When it was done or dropped (memo)."""
    on_time: bool | None = None
    """Whether it was done on time (memo)."""
    jira_key: str | None = None
    """Key of its Jira issue (memo)."""
    jira_url: str | None = None
    """Browse URL of its Jira issue (memo)."""


def clamp(text: str, limit: int) -> str:
    """Untrusted text trimmed and capped."""
    return cap_text(text.strip(), limit)


def next_digest_at(state: ActionState) -> datetime | None:
    """When the IC is next reminded of the item (open items with a policy only)."""
    if state.policy is None or state.status is not ActionStatus.OPEN:
        return None
    every: timedelta = state.policy.digest_every
    return state.added_at + every * (state.marks.digests_sent + 1)


ActionItemInput.model_rebuild()
