"""The incident's durable state, carried across continue-as-new, and its public view."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from domain.checklists import Checklists
from domain.models import (
    AlertState,
    Declaration,
    IncidentFacts,
    IncidentRecord,
    Notification,
    Phase,
    Severity,
    StoredDocument,
    TimelineEvent,
    _Model,
    cap_text,
)
from domain.policy import Policy


class ClockMarks(_Model):
    """Which timers have fired, so none fires twice (also across continue-as-new)."""

    pages_sent: int = 0
    """Escalation pages sent so far (index of the next step of the chain)."""
    resolve_breach_notified: bool = False
    """Whether management has been told about the resolve-SLA breach."""
    update_anchor: datetime
    """Start of the current stakeholder-update interval."""
    nudged_for: datetime | None = None
    """The interval (by its anchor) for which the commander was already nudged."""
    monitor_started_at: datetime | None = None
    """When the incident last entered Monitor."""
    postmortem_reminded: bool = False
    """Whether the post-mortem reminder went out."""
    postmortem_escalated: bool = False
    """Whether the post-mortem deadline escalation went out."""


class PhaseClock(_Model):
    """When each phase was first entered and how long the incident spent in each."""

    since: datetime
    """When the current phase was entered."""
    first_entered: dict[Phase, datetime] = Field(default_factory=dict)
    """The first entry into each phase reached so far (key moments, metrics)."""
    spent_seconds: dict[Phase, float] = Field(default_factory=dict)
    """Time spent in each phase before the current stint."""

    @classmethod
    def start(cls, phase: Phase, at: datetime) -> PhaseClock:
        """A clock that entered ``phase`` at ``at``."""
        return cls(since=at, first_entered={phase: at})

    def move(self, old: Phase, new: Phase, at: datetime) -> None:
        """Close the stint in ``old`` and open one in ``new`` at ``at``."""
        if old == new:
            return
        elapsed = max((at - self.since).total_seconds(), 0.0)
        self.spent_seconds[old] = self.spent_seconds.get(old, 0.0) + elapsed
        self.first_entered.setdefault(new, at)
        self.since = at

    def spent(self, phase: Phase, current: Phase, now: datetime) -> float:
        """Seconds spent in ``phase`` so far, counting the current stint up to ``now``."""
        total = self.spent_seconds.get(phase, 0.0)
        if phase == current:
            total += max((now - self.since).total_seconds(), 0.0)
        return total


class ReviewMeeting(_Model):
    """The post-mortem review meeting (``incident postmortem --schedule``)."""

    at: datetime
    """When it starts."""
    attendees: list[str] = Field(default_factory=list)
    """Who is invited."""
    scheduled_by: str
    """Who scheduled it."""
    reminded: bool = False
    """Whether the attendees were reminded of it."""


class AutoTransition(_Model):
    """A phase change the alerts asked for, applied once they stay settled."""

    target: Phase
    """Monitor or Resolve."""
    since: datetime
    """When every alert was last seen recovered; the change waits a settle window from here."""
    actor: str
    """The alert source that asked for it."""


class IncidentState(_Model):
    """Everything the incident workflow remembers."""

    id: str
    """Incident ID, which is also the workflow ID."""
    title: str
    """Short description of what is broken (untrusted; escape when rendering)."""
    severity: Severity
    """Current severity."""
    phase: Phase = Phase.DETECT
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
    declared_by: str = "unknown"
    """Responder or alert source that declared the incident."""
    source: str = "cli"
    """How it was declared: cli, alertmanager, grafana, pagerduty, generic."""
    declared_at: datetime
    """Workflow time of the declaration; SLA deadlines count from here."""
    detected_at: datetime | None = None
    """When monitoring saw the problem start (for MTTD)."""
    acknowledged_at: datetime | None = None
    """When the incident commander acknowledged."""
    resolved_at: datetime | None = None
    """When the incident was resolved or dismissed."""
    dismissed_reason: str | None = None
    """Why it was dismissed as a false alarm."""
    public_title: str = ""
    """The public title (see :attr:`IncidentFacts.public_title`)."""
    public_title_confirmed: bool = False
    """Whether a human stands behind the public title (declared by hand, acknowledged, or
    set by a responder); until then an alert-opened incident shows a neutral one."""
    public_resolution: str = ""
    """What the public reads about the resolution."""
    detected_clamped: bool = False
    """Whether a sender's start time was too far back and the detection time was clamped."""
    sla_breached: bool = False
    """Whether the resolve SLA was missed (``IncidentSlaBreached``)."""
    related_incident: str | None = None
    """An earlier incident this one repeats."""
    alert_group: str | None = None
    """Workflow that opened it from alerts (an alert group, or an intake for a storm)."""
    routing_rule: str | None = None
    """Routing rule that chose severity and service for an alert."""
    targets: list[str] = Field(default_factory=list)
    """Extra announcement targets chosen by routing."""
    links: list[str] = Field(default_factory=list)
    """Dashboards, runbooks, generator URLs."""
    postmortem_url: str | None = None
    """Where the recorded post-mortem lives."""
    postmortem_recorded_at: datetime | None = None
    """When the post-mortem was recorded."""
    closed: bool = False
    """True once nothing is left to do; the workflow then completes."""
    alerts: dict[str, AlertState] = Field(default_factory=dict)
    """Alerts joined to the incident, by deduplication key (at most
    ``workflows.alerts.MAX_TRACKED_ALERTS``; later keys are only counted)."""
    alerts_untracked: int = 0
    """Notifications of alert keys beyond the tracked ones (an alert storm)."""
    alert_notifications: int = 0
    """Every alert notification the incident received."""
    auto_transition: AutoTransition | None = None
    """A phase change asked for by recovered alerts, waiting for them to settle."""
    timeline: list[TimelineEvent] = Field(default_factory=list)
    """The newest events, in order (at most ``workflows.timeline.KEPT`` plus a batch on its
    way to the timeline archive; older ones are in the archive)."""
    timeline_seq: int = 0
    """Sequence number of the latest timeline entry."""
    timeline_archived: int = 0
    """Entries moved to the timeline archive (they are the oldest ones)."""
    timeline_dropped: int = 0
    """Entries lost because the archive could not take them for too long."""
    marks: ClockMarks
    """Which timers already fired."""
    refs: dict[str, str] = Field(default_factory=dict)
    """Delivery references returned by the notify activity (channel ids, message ts...)."""
    outbox: list[Notification] = Field(default_factory=list)
    """Notifications queued but not yet delivered by every channel (bounded by coalescing
    informational ones, see ``workflows.delivery``)."""
    channels: list[str] = Field(default_factory=list)
    """Names of the worker's notification channels when the incident was declared."""
    delivery_failed: bool = False
    """Whether a page could not be delivered by some channel (``IncidentDeliveryFailed``)."""
    notification_seq: int = 0
    """Sequence of the last queued notification (keys are ``<id>/<seq>``)."""
    policy: Policy | None = None
    """The worker's policy, loaded once when the incident was declared."""
    record: IncidentRecord = Field(default_factory=IncidentRecord)
    """The process's incident record as responders filled it in (``incident set``)."""
    checklists: Checklists | None = None
    """Each phase's checklist and who ticked what (made from the policy when first needed)."""
    review: ReviewMeeting | None = None
    """The post-mortem review meeting, once scheduled."""
    postmortem_document: StoredDocument | None = None
    """The final post-mortem kept as a file, when it was recorded with one."""
    phase_clock: PhaseClock | None = None
    """Phase entries and time per phase (None only in state carried from runs before it
    existed; :meth:`phases` then starts it at the declaration)."""
    postmortem_draft_written: bool = False
    """Whether the post-mortem draft of the current record was written after Resolve (or
    given up on); a change to the record clears it, so the draft is written again."""

    def phases(self) -> PhaseClock:
        """The phase clock, without changing the state (safe in queries): state carried
        from runs before it existed gets one started at the declaration."""
        if self.phase_clock is not None:
            return self.phase_clock
        clock = PhaseClock.start(Phase.DETECT, self.declared_at)
        clock.move(Phase.DETECT, self.phase, self.declared_at)
        return clock

    def move_to(self, phase: Phase, at: datetime) -> None:
        """Change phase, keeping the phase clock in step."""
        self.phase_clock = self.phases()
        self.phase_clock.move(self.phase, phase, at)
        self.phase = phase

    @classmethod
    def declare(cls, incident_id: str, declaration: Declaration, now: datetime) -> IncidentState:
        """A fresh incident in Detect."""
        return cls(
            id=incident_id,
            title=cap_text(declaration.title, 300),
            severity=declaration.severity,
            service=declaration.service,
            commander=declaration.commander,
            impact=cap_text(declaration.impact),
            description=cap_text(declaration.description),
            declared_by=declaration.declared_by,
            source=declaration.source,
            declared_at=now,
            detected_at=declaration.detected_at,
            related_incident=declaration.related_incident,
            alert_group=declaration.alert_group,
            routing_rule=declaration.routing_rule,
            targets=list(declaration.targets),
            links=[cap_text(link, 2000) for link in declaration.links[:20]],
            marks=ClockMarks(update_anchor=now),
            phase_clock=PhaseClock.start(Phase.DETECT, now),
        )


PUBLIC_HISTORY_KEPT = 30
"""Status changes and responders' updates an :class:`IncidentSummary` carries (newest kept)."""


class IncidentSummary(IncidentFacts):
    """A small, bounded answer for listings and the status page (the ``summary`` query)."""

    declared_by: str = "unknown"
    """Responder or alert source that declared the incident."""
    source: str = "cli"
    """How it was declared: cli, alertmanager, grafana, pagerduty, generic."""
    sla_breached: bool = False
    """Whether the resolve SLA was missed."""
    closed: bool = False
    """Whether nothing is left to do (the workflow has completed or is completing)."""
    public_history: list[TimelineEvent] = Field(default_factory=list)
    """Timeline entries that change the public status, and responders' stakeholder updates,
    oldest first; at most :data:`PUBLIC_HISTORY_KEPT` (the first one and the newest)."""


class IncidentView(IncidentFacts):
    """What ``incident show`` and the query return: the facts plus history."""

    declared_by: str = "unknown"
    """Responder or alert source that declared the incident."""
    source: str = "cli"
    """How it was declared: cli, alertmanager, grafana, pagerduty, generic."""
    sla_breached: bool = False
    """Whether the resolve SLA was missed."""
    dismissed_reason: str | None = None
    """Why it was dismissed as a false alarm."""
    routing_rule: str | None = None
    """Routing rule that chose severity and service for an alert."""
    alert_group: str | None = None
    """Workflow that opened it from alerts (an alert group, or an intake for a storm)."""
    monitor_until: datetime | None = None
    """End of the Monitor stability window, while in Monitor."""
    postmortem_recorded_at: datetime | None = None
    """When the post-mortem was recorded."""
    pages_sent: int = 0
    """Escalation pages sent so far."""
    closed: bool = False
    """Whether nothing is left to do (the workflow has completed or is completing)."""
    alerts: list[AlertState] = Field(default_factory=list)
    """Alerts joined to the incident (the tracked ones)."""
    alerts_untracked: int = 0
    """Notifications of alert keys beyond the tracked ones."""
    alert_notifications: int = 0
    """Every alert notification the incident received."""
    timeline: list[TimelineEvent] = Field(default_factory=list)
    """The newest events, in order; ``timeline_archived`` older ones are in the archive."""
    timeline_archived: int = 0
    """Older entries moved to the timeline archive."""
    delivery_failed: bool = False
    """Whether a page could not be delivered by some channel."""
    record: IncidentRecord = Field(default_factory=IncidentRecord)
    """The process's incident record as responders filled it in."""
    refs: dict[str, str] = Field(default_factory=dict)
    """Delivery references (Slack channel, status-page incident), for the incident document."""
    phase_clock: PhaseClock | None = None
    """When each phase was first entered and the time spent in each."""
    checklists: Checklists = Field(default_factory=dict)
    """Each phase's checklist and who ticked what."""
    review: ReviewMeeting | None = None
    """The post-mortem review meeting, once scheduled."""
    postmortem_document: StoredDocument | None = None
    """The final post-mortem kept as a file, when it was recorded with one."""
