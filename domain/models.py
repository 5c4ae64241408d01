"""Models exchanged between the workflow, its activities, the CLI and the webhooks.

Every workflow, activity, signal and update takes exactly one of these models,
so fields can be added later without breaking running incidents.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

MAX_TEXT = 4000
"""Longest free text (title, note, annotation) kept on an incident; longer input is cut."""


class Severity(StrEnum):
    """Incident severity, from the response process (P0 is the most severe)."""

    P0 = "P0"
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"


class Phase(StrEnum):
    """Where an incident is in its lifecycle."""

    DETECT = "Detect"
    INVESTIGATE = "Investigate"
    FIX = "Fix"
    MONITOR = "Monitor"
    RESOLVE = "Resolve"
    DISMISSED = "Dismissed"

    @property
    def is_open(self) -> bool:
        """Whether responders are still working on the incident."""
        return self not in (Phase.RESOLVE, Phase.DISMISSED)

    @property
    def public_status(self) -> str:
        """The status-page word for this phase (Investigating/Identified/Monitoring/Resolved)."""
        return _PUBLIC_STATUS[self]


_PUBLIC_STATUS = {
    Phase.DETECT: "Investigating",
    Phase.INVESTIGATE: "Investigating",
    Phase.FIX: "Identified",
    Phase.MONITOR: "Monitoring",
    Phase.RESOLVE: "Resolved",
    Phase.DISMISSED: "Resolved",
}


def cap_text(text: str, limit: int = MAX_TEXT) -> str:
    """Cut untrusted text to ``limit`` characters so it fits in workflow payloads."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class EventKind(StrEnum):
    """What a timeline entry records."""

    DECLARED = "declared"
    ACKNOWLEDGED = "acknowledged"
    PHASE_CHANGED = "phase_changed"
    SEVERITY_CHANGED = "severity_changed"
    UPDATE_POSTED = "update_posted"
    STAKEHOLDER_UPDATE = "stakeholder_update"
    NUDGE = "nudge"
    ACK_SLA_BREACHED = "ack_sla_breached"
    ESCALATION_PAGE = "escalation_page"
    RESOLVE_SLA_BREACHED = "resolve_sla_breached"
    ALERT_FIRED = "alert_fired"
    ALERT_RESOLVED = "alert_resolved"
    ALERT_FLAPPING = "alert_flapping"
    RECURRENCE = "recurrence"
    NOTE = "note"
    DISMISSED = "dismissed"
    RESOLVED = "resolved"
    POSTMORTEM_REMINDER = "postmortem_reminder"
    POSTMORTEM_OVERDUE = "postmortem_overdue"
    POSTMORTEM_RECORDED = "postmortem_recorded"
    NOTIFICATION_FAILED = "notification_failed"
    NOTIFICATION_SENT = "notification_sent"
    CLOSED = "closed"
    RECORD_CHANGED = "record_changed"


class TimelineEvent(_Model):
    """One entry of the incident timeline."""

    at: datetime
    """Workflow time of the event."""
    kind: EventKind
    """What happened."""
    text: str
    """Human-readable description (may contain responder or alert text, unescaped)."""
    actor: str | None = None
    """Who caused it: a responder name, ``system`` for timers, or the alert source."""
    phase: Phase | None = None
    """Phase right after the event (the public status history is derived from it)."""
    seq: int = 0
    """Position in the incident's whole timeline, from 1 (0: recorded before numbering);
    entries moved to the timeline archive keep theirs."""


class AlertState(_Model):
    """What the incident knows about one deduplicated alert."""

    key: str
    """Deduplication key (fingerprint, dedup_key, ...)."""
    source: str
    """Where it came from: alertmanager, grafana, pagerduty, generic."""
    summary: str
    """Latest summary text of the alert."""
    firing: bool = True
    """False once a resolved notification arrived and no new firing since."""
    count: int = 0
    """How many firing notifications joined this incident."""
    first_at: datetime
    """When the first notification arrived (workflow time)."""
    last_at: datetime
    """When the latest notification arrived (workflow time)."""
    started_at: datetime | None = None
    """The alert's own start time (``startsAt``), for time-to-detect."""
    changed_at: datetime | None = None
    """When it last started firing or recovered (workflow time)."""
    recoveries: int = 0
    """How many times it recovered."""
    flaps: int = 0
    """Status changes that came within the settle window of the previous one."""
    flap_entry: int | None = None
    """Sequence number of the timeline entry that counts the current flapping."""


class Declaration(_Model):
    """Everything known when an incident is declared."""

    title: str
    """Short description of what is broken."""
    severity: Severity
    """Initial severity."""
    service: str = ""
    """Affected service (used for routing and components)."""
    commander: str | None = None
    """Incident commander chosen at declaration, if any (acknowledging still required)."""
    declared_by: str = "unknown"
    """Responder name or alert source that declared it."""
    impact: str = ""
    """Customer impact as currently understood."""
    description: str = ""
    """Longer description (alert annotations, context)."""
    detected_at: datetime | None = None
    """When the problem started according to monitoring (for MTTD)."""
    source: str = "cli"
    """How it was declared: cli, alertmanager, grafana, pagerduty, generic."""
    related_incident: str | None = None
    """An earlier incident this one repeats."""
    routing_rule: str | None = None
    """Name of the routing rule that chose severity and service, when declared by an alert."""
    targets: list[str] = Field(default_factory=list)
    """Extra notification targets chosen by routing (channels, groups)."""
    links: list[str] = Field(default_factory=list)
    """Links to dashboards, runbooks, generator URLs."""
    alert_group: str | None = None
    """Workflow ID of the alert group that opened this incident; told when it closes."""


INCIDENT_CLOSED_SIGNAL = "incident_closed"
"""Signal an incident sends its alert group on entering Resolve or Dismissed."""


class IncidentClosed(_Model):
    """Payload of :data:`INCIDENT_CLOSED_SIGNAL`: the group's open incident has ended."""

    incident_id: str
    """The incident that was resolved or dismissed."""
    phase: str
    """``Resolve`` or ``Dismissed``."""


class AlertEvent(_Model):
    """A monitoring notification about one alert (signal payload)."""

    key: str
    """Deduplication key of the alert."""
    source: str
    """alertmanager, grafana, pagerduty or generic."""
    summary: str = ""
    """Alert summary or title."""
    started_at: datetime | None = None
    """The alert's own start time, when the sender provides it."""
    received_at: datetime | None = None
    """When the webhook received it (informational; the workflow uses its own clock)."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Alert labels, capped by the sender of the signal."""
    group: str | None = None
    """Workflow ID of the alert group the alert belongs to (where a closed incident hands
    a late trigger back)."""


class AlertBatch(_Model):
    """Several monitoring notifications for one incident in one signal, in arrival order."""

    fired: list[bool] = Field(default_factory=list)
    """For each alert: True if it fired, False if it recovered."""
    alerts: list[AlertEvent] = Field(default_factory=list)
    """The alerts, in the order they arrived."""


class ResponderCommand(_Model):
    """Base of every responder update: who is acting."""

    responder: str
    """Name of the responder issuing the command."""


class AcknowledgeInput(ResponderCommand):
    """``incident ack``: take the incident as commander."""

    commander: str | None = None
    """Commander to assign; defaults to the responder."""


class PhaseInput(ResponderCommand):
    """``incident phase``/``resolve``: move to another phase."""

    phase: str
    """Target phase name (case-insensitive): investigate, fix, monitor, resolve."""
    note: str = ""
    """Optional note recorded with the change (internal: never shown to the public)."""
    public_note: str | None = None
    """What the public may read about the resolution (status page, customer e-mail)."""


class DismissInput(ResponderCommand):
    """``incident dismiss``: close a false alarm."""

    reason: str
    """Why this is not an incident."""


class SeverityInput(ResponderCommand):
    """``incident severity``: change severity mid-incident."""

    severity: str
    """New severity name (P0-P3); validated by the workflow."""
    reason: str = ""
    """Optional reason recorded with the change."""


class StatusUpdateInput(ResponderCommand):
    """``incident update``: a stakeholder update from the responders."""

    text: str
    """What is going on."""
    impact: str | None = None
    """Current impact, when it changed."""
    eta: str | None = None
    """Expected resolution, free text ("~30 min", "14:30 UTC")."""
    public_title: str | None = None
    """The title the public sees from now on (status page, customer e-mail)."""


class NoteInput(ResponderCommand):
    """``incident note``: add to the timeline without notifying stakeholders."""

    text: str
    """The note."""


class PostmortemInput(ResponderCommand):
    """``incident postmortem --done``: record the post-mortem."""

    url: str | None = None
    """Where the post-mortem document lives."""
    document: StoredDocument | None = None
    """The final document as a file kept under the data directory (path and hash only:
    documents do not belong in workflow payloads)."""


class StoredDocument(_Model):
    """A file kept under the data directory, known by its path and content hash."""

    path: str
    """Path of the kept copy."""
    sha256: str
    """Hex SHA-256 of its content."""
    size: int
    """Its size in bytes."""


class ReviewInput(ResponderCommand):
    """``incident postmortem --schedule``: the post-mortem review meeting."""

    at: datetime
    """When the meeting starts (aware)."""
    attendees: list[str] = Field(default_factory=list)
    """Who is invited (``@name``); the commander is always reminded too."""


class CheckInput(ResponderCommand):
    """``incident check``: tick a checklist item."""

    item: str
    """The item's number in its phase's list, or its text (or a unique part of it)."""
    phase: str | None = None
    """The phase whose list it is on; default the current phase."""


class FixStrategy(StrEnum):
    """The process's fix strategies (phase Fix)."""

    ROLLBACK = "rollback"
    HOTFIX = "hotfix"
    SCALE = "scale"
    DISABLE = "disable"
    REDIRECT = "redirect"


MAX_SERVICES_DOWN = 30
"""Services an incident record lists as down (a longer list is a whole-platform outage)."""
MAX_ROOT_CAUSE_KEY = 64
"""Longest root-cause key; it is a tag compared across incidents, not a sentence."""


class IncidentRecord(_Model):
    """The process's incident record, as responders filled it in (None: not recorded)."""

    users_affected: str | None = None
    """Users affected, as a number or a share ("12%", "~3,000")."""
    services_down: list[str] | None = None
    """Services that were down (at most :data:`MAX_SERVICES_DOWN`)."""
    data_loss: bool | None = None
    """Whether data was lost."""
    revenue_impact: float | None = None
    """Revenue lost, in the policy's currency (dollars in the process), never negative."""
    customer_complaints: int | None = None
    """Customer complaints received, never negative."""
    root_cause: str | None = None
    """What went wrong (untrusted; escape when rendering)."""
    root_cause_key: str | None = None
    """Short normalised tag (``deploy/bad-config``): how the same root cause is recognised
    across incidents."""
    resolution: str | None = None
    """What was done to fix it (internal; the public reads ``public_resolution``)."""
    fix_strategy: FixStrategy | None = None
    """Which of the process's fix strategies was used."""
    impact_started: datetime | None = None
    """When users were first hurt, as a responder confirmed it (often before any alert)."""


class RecordInput(ResponderCommand):
    """``incident set``: fill in or correct fields of the incident record.

    Every field is optional; the ones given replace what was recorded. Values are
    checked by the workflow's validator (``workflows.transitions.check_record``),
    so a bad one is refused with its reason and nothing is written.
    """

    users_affected: str | None = None
    """Users affected, as a number or a share."""
    services_down: list[str] | None = None
    """Services that were down."""
    data_loss: bool | None = None
    """Whether data was lost."""
    revenue_impact: float | None = None
    """Revenue lost (>= 0)."""
    customer_complaints: int | None = None
    """Customer complaints received (>= 0)."""
    root_cause: str | None = None
    """What went wrong."""
    root_cause_key: str | None = None
    """Short normalised tag, lower case: ``area/cause`` like ``deploy/bad-config``."""
    resolution: str | None = None
    """What was done to fix it."""
    fix_strategy: str | None = None
    """rollback, hotfix, scale, disable or redirect."""
    impact_started: datetime | None = None
    """When users were first hurt (timezone-aware; not in the future)."""


class CommandResult(_Model):
    """What a responder update returns."""

    incident_id: str
    """The incident acted on."""
    phase: Phase
    """Phase after the command."""
    message: str
    """One-line human summary of what changed."""


class IncidentFacts(_Model):
    """Snapshot of an incident used to render notifications and listings."""

    id: str
    """Incident ID, which is also the workflow ID."""
    title: str
    """Short description of what is broken (untrusted; escape when rendering)."""
    severity: Severity
    """Current severity."""
    phase: Phase
    """Current phase."""
    service: str = ""
    """Affected service."""
    commander: str | None = None
    """Incident commander, once assigned."""
    impact: str = ""
    """Customer impact as last reported."""
    eta: str | None = None
    """Expected resolution as last reported (free text)."""
    description: str = ""
    """Longer context (alert annotations, notes at declaration)."""
    declared_at: datetime
    """Workflow time of the declaration; SLA deadlines count from here."""
    detected_at: datetime | None = None
    """When monitoring saw the problem start (for MTTD)."""
    acknowledged_at: datetime | None = None
    """When the incident commander acknowledged."""
    resolved_at: datetime | None = None
    """When the incident was resolved or dismissed."""
    ack_deadline: datetime | None = None
    """Acknowledge SLA deadline for the current severity."""
    resolve_deadline: datetime | None = None
    """Resolve SLA deadline for the current severity."""
    next_update_at: datetime | None = None
    """When the next stakeholder update is due (open incidents)."""
    update_interval_seconds: float | None = None
    """Stakeholder update cadence for the current severity."""
    postmortem_due_at: datetime | None = None
    """Post-mortem deadline, once resolved and if one is owed."""
    postmortem_url: str | None = None
    """Where the recorded post-mortem lives."""
    related_incident: str | None = None
    """An earlier incident this one repeats."""
    links: list[str] = Field(default_factory=list)
    """Dashboards, runbooks, generator URLs."""
    status_page_url: str = ""
    """Public status page shown in announcements."""
    public_title: str = ""
    """What the public sees as the title. Incidents opened by alerts show a neutral title
    from the policy until a responder acknowledges or sets one; empty: ``title``."""
    public_resolution: str = ""
    """What the public reads about the resolution (never a responder's internal note)."""
    impact_started: datetime | None = None
    """When users were first hurt, when a responder set it (``incident set --impact-started``);
    customer-facing downtime counts from here."""
    review_at: datetime | None = None
    """The post-mortem review meeting, once scheduled."""
    review_attendees: list[str] = Field(default_factory=list)
    """Who is invited to the review meeting."""

    @property
    def public_name(self) -> str:
        """The incident's public title."""
        return self.public_title or self.title

    @property
    def status(self) -> str:
        """Public status word for the current phase."""
        return self.phase.public_status


class NotificationKind(StrEnum):
    """Which of the process's messages a notification is."""

    DECLARED = "declared"
    ACKNOWLEDGED = "acknowledged"
    UPDATE = "update"
    NUDGE = "nudge"
    PAGE = "page"
    PHASE_CHANGED = "phase_changed"
    SEVERITY_CHANGED = "severity_changed"
    SLA_BREACH = "sla_breach"
    ALERT_RECOVERED = "alert_recovered"
    RECURRENCE = "recurrence"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"
    POSTMORTEM_REMINDER = "postmortem_reminder"
    POSTMORTEM_OVERDUE = "postmortem_overdue"
    POSTMORTEM_DONE = "postmortem_done"
    POSTMORTEM_REVIEW = "postmortem_review"
    ACTION_REMINDER = "action_reminder"
    ACTION_OVERDUE = "action_overdue"
    ACTION_ESCALATED = "action_escalated"
    ACTION_DIGEST = "action_digest"
    ACTION_DONE = "action_done"
    ACTION_DROPPED = "action_dropped"
    MONTHLY_REPORT = "monthly_report"


class Notification(_Model):
    """One outgoing message, handed to the notify activity.

    ``key`` is unique per incident and stable across retries and
    continue-as-new, so channels can deliver exactly once.
    """

    key: str
    """Idempotency key: ``<incident id>/<sequence>``."""
    kind: NotificationKind
    """Which message this is."""
    incident: IncidentFacts
    """The incident as it was when the message was queued."""
    at: datetime
    """Workflow time when it was queued."""
    targets: list[str] = Field(default_factory=list)
    """People, groups or channels this message is addressed to (pages, nudges, escalations)."""
    text: str = ""
    """Free text from a responder or alert (untrusted; escape when rendering)."""
    actor: str | None = None
    """Who caused it."""
    refs: dict[str, str] = Field(default_factory=dict)
    """Delivery references from earlier notifications of this incident (channel ids, message ts)."""
    pending: list[str] = Field(default_factory=list)
    """Channels that have not delivered it yet (the incident's outbox only)."""
    priority: bool = False
    """Delivered before informational messages (pages, breaches, responders' messages)."""
    coalesced: int = 0
    """How many later informational messages of the same kind this one stands for."""
    checklist: list[str] = Field(default_factory=list)
    """The open checklist items of the phase this message announces, numbered."""


class ChannelDelivery(_Model):
    """Input of the ``deliver_via`` activity: one notification through one channel."""

    channel: str
    """Name of the channel that delivers it."""
    notification: Notification
    """What to deliver (its ``refs`` are the incident's references at hand-off)."""


class NotifyResult(_Model):
    """What delivering a notification produced."""

    refs: dict[str, str] = Field(default_factory=dict)
    """References to remember for later notifications (merged into the incident's refs)."""
    failures: list[str] = Field(default_factory=list)
    """Permanent per-channel failures, recorded in the timeline."""
    sent: list[str] = Field(default_factory=list)
    """Deliveries worth a timeline entry of their own (e.g. the customer e-mail)."""
