"""What the public may see of an incident (no internal notes).

Built from the bounded ``summary`` query of a running incident, or from the
result (an :class:`IncidentView`) of one that has completed.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from activities.status_provider import BADGES, PublicStatus, public_text, status_key
from activities.templates import Templates
from domain.comms import StatusPagePolicy
from domain.incident import IncidentSummary, IncidentView
from domain.models import EventKind, IncidentFacts, Phase, Severity, TimelineEvent

ServiceStatus = Literal["operational", "degraded_performance", "partial_outage", "major_outage"]

SERVICE_LABELS: dict[ServiceStatus, str] = {
    "operational": "Operational",
    "degraded_performance": "Degraded performance",
    "partial_outage": "Partial outage",
    "major_outage": "Major outage",
}
_RANK: list[ServiceStatus] = list(SERVICE_LABELS)
_OUTAGE: dict[Severity, ServiceStatus] = {
    Severity.P0: "major_outage",
    Severity.P1: "partial_outage",
    Severity.P2: "degraded_performance",
    Severity.P3: "degraded_performance",
}
_ARROW = re.compile(r"→\s*(\w+)")


class PublicUpdate(BaseModel):
    """One public update, in the seed's status-page wording."""

    at: datetime
    status: PublicStatus
    badge: str
    """``🔴 Investigating``, ``🟡 Identified``, ``🔵 Monitoring`` or ``🟢 Resolved``."""
    text: str


class PublicIncident(BaseModel):
    """An incident as the status page shows it."""

    id: str
    name: str
    status: PublicStatus
    badge: str
    service: str = ""
    started_at: datetime
    resolved_at: datetime | None = None
    service_status: ServiceStatus
    updates: list[PublicUpdate] = Field(default_factory=list)
    """Newest first."""


class ComponentState(BaseModel):
    """One service (component) and its current status."""

    name: str
    status: ServiceStatus
    label: str


class StatusSnapshot(BaseModel):
    """Everything the page shows, as of ``generated_at``."""

    title: str
    generated_at: datetime
    current: list[PublicIncident] = Field(default_factory=list)
    recent: list[PublicIncident] = Field(default_factory=list)
    components: list[ComponentState] = Field(default_factory=list)
    overall: ServiceStatus = "operational"
    overall_label: str = "All systems operational"
    available: bool = True
    """False when Temporal could not be read; the page then says so."""


def _phase_of(event: TimelineEvent) -> Phase | None:
    """The phase after ``event`` (events recorded before phases were kept are inferred)."""
    if event.phase is not None:
        return event.phase
    if event.kind is EventKind.DECLARED:
        return Phase.DETECT
    if event.kind is EventKind.PHASE_CHANGED and (match := _ARROW.search(event.text)):
        try:
            return Phase(match.group(1))
        except ValueError:
            return None
    if event.kind is EventKind.DISMISSED:
        return Phase.DISMISSED
    return None


def _update(at: datetime, status: PublicStatus, text: str) -> PublicUpdate:
    return PublicUpdate(at=at, status=status, badge=BADGES[status], text=text)


def service_status(facts: IncidentFacts) -> ServiceStatus:
    """How the incident's service is doing right now."""
    status = status_key(facts.phase)
    if status == "resolved":
        return "operational"
    if status == "monitoring":
        return "degraded_performance"
    return _OUTAGE[facts.severity]


MAX_UPDATES = 30
"""Public updates shown per incident (the newest)."""


def public_incident(
    incident: IncidentSummary | IncidentView, *, templates: Templates, policy: StatusPagePolicy
) -> PublicIncident:
    """The public side of an incident: a status history in the seed's wording."""
    history = (
        incident.public_history if isinstance(incident, IncidentSummary) else incident.timeline
    )
    updates: list[PublicUpdate] = []
    last = ""
    for event in history:
        phase = _phase_of(event)
        if phase is None:
            continue
        status = status_key(phase)
        if status != last:
            template = "dismissed" if phase is Phase.DISMISSED else status
            updates.append(_update(event.at, status, public_text(templates, template, incident)))
            last = status
        elif (
            policy.publish_updates
            and event.kind is EventKind.UPDATE_POSTED
            and event.actor not in (None, "system")
            and phase.is_open
        ):
            text = public_text(templates, "update", incident, event.text)
            updates.append(_update(event.at, status, text))
    status = status_key(incident.phase)
    return PublicIncident(
        id=incident.id,
        name=public_text(templates, "name", incident),
        status=status,
        badge=BADGES[status],
        service=incident.service,
        started_at=incident.detected_at or incident.declared_at,
        resolved_at=incident.resolved_at,
        service_status=service_status(incident),
        updates=list(reversed(updates[-MAX_UPDATES:])),
    )


def components(policy: StatusPagePolicy, current: list[PublicIncident]) -> list[ComponentState]:
    """Configured services plus those with a current incident, each with its worst status."""
    worst: dict[str, ServiceStatus] = {name: "operational" for name in policy.components}
    for incident in current:
        if not incident.service:
            continue
        known = worst.get(incident.service, "operational")
        worst[incident.service] = max(known, incident.service_status, key=_RANK.index)
    return [
        ComponentState(name=name, status=status, label=SERVICE_LABELS[status])
        for name, status in sorted(worst.items())
    ]


def overall(current: list[PublicIncident]) -> tuple[ServiceStatus, str]:
    """The banner: the worst current status, or all operational."""
    if not current:
        return "operational", "All systems operational"
    worst = max((incident.service_status for incident in current), key=_RANK.index)
    return worst, {
        "operational": "All systems operational",
        "degraded_performance": "Some systems are degraded",
        "partial_outage": "Partial outage",
        "major_outage": "Major outage",
    }[worst]
