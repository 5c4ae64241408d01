"""The facts each incident publishes in its memo for the metrics (``measures``).

Metrics are computed from visibility listings only, never from each workflow's
history or a query; this small, bounded record is what a listing carries per
incident. The definitions that read it are in the README ("Metrics").
"""

from __future__ import annotations

from datetime import datetime

from domain.models import Phase, Severity, _Model

MEASURES_MEMO = "measures"
"""Memo key under which an incident publishes its :class:`IncidentMeasures`."""


class IncidentMeasures(_Model):
    """Durable facts of one incident, as of its latest change."""

    severity: Severity
    """Current severity."""
    phase: Phase
    """Current phase (Resolve or Dismissed once closed)."""
    source: str
    """How it was declared: cli, alertmanager, grafana, pagerduty, generic, storm."""
    service: str = ""
    """Affected service (as declared or routed)."""
    declared_at: datetime
    """When the incident was declared (workflow time)."""
    detected_at: datetime | None = None
    """The earliest alert start a sender reported (clamped to ``alerts.max_start_age``)."""
    impact_started: datetime | None = None
    """When users were first hurt, as a responder recorded it (``incident set``)."""
    acknowledged_at: datetime | None = None
    """First acknowledgement."""
    mitigated_at: datetime | None = None
    """First entry into Monitor (the fix was deployed)."""
    resolved_at: datetime | None = None
    """When it was resolved (or dismissed)."""
    dismissed: bool = False
    """Closed as a false alarm."""
    ack_deadline: datetime | None = None
    """The acknowledge SLA's deadline for the severity (None without a policy)."""
    resolve_deadline: datetime | None = None
    """The resolve SLA's deadline for the severity."""
    ack_sla_missed: bool = False
    """Acknowledged after the deadline, or escalated because nobody acknowledged."""
    resolve_sla_missed: bool = False
    """The resolve SLA passed before the incident was resolved."""
    pages_sent: int = 0
    """Escalation pages sent."""
    root_cause_key: str | None = None
    """The normalised root-cause tag (``incident set --root-cause-key``)."""
    repeat_of: str | None = None
    """An earlier incident the alert group linked this one to as a repeat."""
    postmortem_due_at: datetime | None = None
    """When the post-mortem is due, if one is required (set once resolved)."""
    postmortem_recorded_at: datetime | None = None
    """When the post-mortem was recorded."""
