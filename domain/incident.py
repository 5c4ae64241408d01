"""The incident's durable state, carried across continue-as-new, and its public view."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from domain.models import (
    AlertState,
    Declaration,
    IncidentFacts,
    Notification,
    Phase,
    Severity,
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


class IncidentState(_Model):
    """Everything the incident workflow remembers."""

    id: str
    title: str
    severity: Severity
    phase: Phase = Phase.DETECT
    service: str = ""
    commander: str | None = None
    impact: str = ""
    eta: str | None = None
    description: str = ""
    declared_by: str = "unknown"
    source: str = "cli"
    declared_at: datetime
    detected_at: datetime | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    dismissed_reason: str | None = None
    sla_breached: bool = False
    related_incident: str | None = None
    routing_rule: str | None = None
    targets: list[str] = Field(default_factory=list)
    links: list[str] = Field(default_factory=list)
    postmortem_url: str | None = None
    postmortem_recorded_at: datetime | None = None
    closed: bool = False
    """True once nothing is left to do; the workflow then completes."""
    alerts: dict[str, AlertState] = Field(default_factory=dict)
    timeline: list[TimelineEvent] = Field(default_factory=list)
    marks: ClockMarks
    refs: dict[str, str] = Field(default_factory=dict)
    """Delivery references returned by the notify activity (channel ids, message ts...)."""
    outbox: list[Notification] = Field(default_factory=list)
    """Notifications queued but not yet delivered."""
    notification_seq: int = 0
    policy: Policy | None = None
    """The worker's policy, loaded once when the incident was declared."""

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
            routing_rule=declaration.routing_rule,
            targets=list(declaration.targets),
            links=[cap_text(link, 2000) for link in declaration.links[:20]],
            marks=ClockMarks(update_anchor=now),
        )


class IncidentView(IncidentFacts):
    """What ``incident show`` and the query return: the facts plus history."""

    declared_by: str = "unknown"
    source: str = "cli"
    sla_breached: bool = False
    dismissed_reason: str | None = None
    routing_rule: str | None = None
    monitor_until: datetime | None = None
    postmortem_recorded_at: datetime | None = None
    pages_sent: int = 0
    closed: bool = False
    alerts: list[AlertState] = Field(default_factory=list)
    timeline: list[TimelineEvent] = Field(default_factory=list)
