"""Public status updates: what the public is told, and the interface of status-page providers.

The status-page channel decides which notifications change what the public
sees (status transitions following the phases, resolution, optionally the
responders' updates), renders the seed's wording from the ``statuspage``
templates and hands the result to a provider (Atlassian Statuspage). The
built-in ``/status`` page needs no provider: it reads the same wording from
the incidents themselves (see :mod:`starters.status_page`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from activities.templates import Templates
from domain.comms import PUBLIC_STATUS_KEYS, StatusPagePolicy
from domain.models import (
    IncidentFacts,
    Notification,
    NotificationKind,
    NotifyResult,
    Phase,
    Severity,
)

PublicStatus = Literal["investigating", "identified", "monitoring", "resolved"]
ComponentStatus = Literal[
    "operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"
]

BADGES: dict[str, str] = {
    "investigating": "🔴 Investigating",
    "identified": "🟡 Identified",
    "monitoring": "🔵 Monitoring",
    "resolved": "🟢 Resolved",
}
"""Headings of public updates, in the seed's status-page wording."""

_OUTAGE: dict[Severity, ComponentStatus] = {
    Severity.P0: "major_outage",
    Severity.P1: "partial_outage",
    Severity.P2: "degraded_performance",
    Severity.P3: "degraded_performance",
}

REF_ID = "statuspage.incident_id"
REF_STATUS = "statuspage.status"


class PublicIncident(BaseModel):
    """One public update of a status-page incident."""

    name: str
    """Public incident name."""
    status: PublicStatus
    """Statuspage incident status."""
    body: str
    """The update's text."""
    component_ids: list[str] = Field(default_factory=list)
    """Affected components."""
    components: dict[str, ComponentStatus] = Field(default_factory=dict)
    """Status of each affected component after this update."""
    deliver_notifications: bool = True
    """Whether subscribers are notified."""


class OpenIncident(BaseModel):
    """An unresolved incident found on the provider."""

    id: str
    status: str


class StatusProvider(Protocol):
    """A status-page service holding public incidents."""

    name: str

    async def create(self, incident: PublicIncident) -> str:
        """Open a public incident; returns its provider ID."""
        ...

    async def update(self, provider_id: str, incident: PublicIncident) -> None:
        """Post an update to an open public incident."""
        ...

    async def find_open(self, name: str, since: datetime) -> OpenIncident | None:
        """An unresolved incident named ``name`` created after ``since``, if any
        (one opened for this incident whose ID never reached the workflow)."""
        ...


def update_every(facts: IncidentFacts) -> str:
    """``15 minutes``, ``hour``, ``24 hours``: the update cadence in words."""
    minutes = round((facts.update_interval_seconds or 900) / 60)
    if minutes % 60 == 0:
        hours = minutes // 60
        return "hour" if hours == 1 else f"{hours} hours"
    return f"{minutes} minutes"


def status_key(phase: Phase) -> PublicStatus:
    """The public status of ``phase``."""
    key = PUBLIC_STATUS_KEYS[phase]
    assert key in BADGES
    return key  # type: ignore[return-value]


def public_text(templates: Templates, kind: str, facts: IncidentFacts, text: str = "") -> str:
    """Render one ``statuspage`` template (a status name, ``update`` or ``name``)."""
    return templates.render_named(
        "statuspage", kind, i=facts, text=text, update_every=update_every(facts)
    )


def component_statuses(
    policy: StatusPagePolicy, facts: IncidentFacts, status: PublicStatus
) -> dict[str, ComponentStatus]:
    """Status of each component of the incident's service after an update."""
    if status == "resolved":
        value: ComponentStatus = "operational"
    elif status == "monitoring":
        value = "degraded_performance"
    else:
        value = _OUTAGE[facts.severity]
    return {component: value for component in policy.components.get(facts.service, [])}


def _template_for(notification: Notification, policy: StatusPagePolicy, last: str) -> str | None:
    """Which public template a notification calls for, or None when the public hears nothing."""
    kind, facts = notification.kind, notification.incident
    current = status_key(facts.phase)
    if kind is NotificationKind.DISMISSED:
        return "dismissed" if last else None
    if kind is NotificationKind.UPDATE:
        from_responder = notification.actor not in (None, "system") and notification.text
        if policy.publish_updates and from_responder and facts.phase.is_open:
            return "update"
        return None if last else current
    if current != last:
        return current
    return None


class StatusPageChannel:
    """Publishes status transitions to a status-page provider, once per incident.

    The provider's incident ID and the last published status live in the
    incident's refs, so retries and continue-as-new update the same public
    incident instead of opening another; without an ID, an open public incident
    of the same name created since the declaration is adopted before a new one
    is opened.

    Args:
        provider: where public incidents live (e.g. Atlassian Statuspage).
        templates: templates with the ``statuspage`` medium.
        policy: the ``[comms.status_page]`` policy.
    """

    name = "statuspage"

    def __init__(
        self, provider: StatusProvider, templates: Templates, policy: StatusPagePolicy
    ) -> None:
        self._provider = provider
        self._templates = templates
        self._policy = policy

    async def deliver(self, notification: Notification) -> NotifyResult:
        """Create or update the public incident when what the public sees changes."""
        facts = notification.incident
        existing = notification.refs.get(REF_ID)
        last = notification.refs.get(REF_STATUS, "") if existing else ""
        if not existing and not (self._policy.publishes(facts.severity) and facts.phase.is_open):
            return NotifyResult()
        template = _template_for(notification, self._policy, last)
        if template is None:
            return NotifyResult()
        status = status_key(facts.phase)
        incident = PublicIncident(
            name=public_text(self._templates, "name", facts),
            status=status,
            body=public_text(self._templates, template, facts, notification.text),
            component_ids=list(self._policy.components.get(facts.service, [])),
            components=component_statuses(self._policy, facts, status),
            deliver_notifications=self._policy.deliver_notifications,
        )
        if existing:
            await self._provider.update(existing, incident)
            return NotifyResult(refs={REF_STATUS: status})
        # The ID can be missing although the public incident exists: an attempt whose
        # answer was lost, or a notify activity that failed for another channel's sake.
        found = await self._provider.find_open(incident.name, facts.declared_at)
        if found is None:
            provider_id = await self._provider.create(incident)
        else:
            provider_id = found.id
            if found.status != status:
                await self._provider.update(provider_id, incident)
        return NotifyResult(refs={REF_ID: provider_id, REF_STATUS: status})
