"""The common shape every payload is turned into, and routing it into a delivery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field

from domain.models import MAX_TEXT, AlertEvent, Declaration, Severity, cap_text
from domain.routing import DEFAULT_RULE, AlertSource, RoutingPolicy
from workflows.alert_group import AlertDelivery

MAX_LABELS = 64
MAX_LABEL_NAME = 100
MAX_LABEL_VALUE = 500
MAX_LINKS = 10
MAX_LINK = 1000
MAX_KEY = 255
"""Longest deduplication key accepted (PagerDuty's own limit)."""


def _assume_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


Timestamp = Annotated[datetime, AfterValidator(_assume_utc)]
"""An RFC 3339 time; one without an offset is taken as UTC."""


def plausible(value: datetime | None, now: datetime) -> datetime | None:
    """``value`` if it can be an alert's start time, else None.

    Alertmanager sends ``0001-01-01T00:00:00Z`` for unknown times; a clock far
    in the future is a sender's mistake. Neither may reach the incident's
    time-to-detect.
    """
    if value is None:
        return None
    try:
        if value.year < 1971 or value > now + timedelta(days=1):
            return None
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def cap_labels(labels: dict[str, str]) -> dict[str, str]:
    """At most :data:`MAX_LABELS` labels, names and values cut to size."""
    capped: dict[str, str] = {}
    for name, value in list(labels.items())[:MAX_LABELS]:
        capped[cap_text(name, MAX_LABEL_NAME)] = cap_text(value, MAX_LABEL_VALUE)
    return capped


def cap_links(links: list[str]) -> list[str]:
    """Non-empty links, at most :data:`MAX_LINKS`, each cut to size."""
    return [cap_text(link, MAX_LINK) for link in links if link.strip()][:MAX_LINKS]


class IncomingAlert(BaseModel):
    """One alert from any source, before routing."""

    source: AlertSource
    """Which endpoint it arrived on."""
    dedup_key: str
    """The key choosing the alert group (and so the incident)."""
    alert_key: str
    """The alert's own identity inside the incident (fingerprint, dedup_key...)."""
    status: Literal["firing", "resolved"]
    """Whether it fires or recovered."""
    title: str
    """Summary used as incident title and alert summary."""
    description: str = ""
    """Longer text (annotations, details)."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Labels matched by routing rules."""
    started_at: datetime | None = None
    """The alert's own start time, for time-to-detect."""
    links: list[str] = Field(default_factory=list)
    """Generator, dashboard and runbook URLs."""
    severity_hint: Severity | None = None
    """Severity named by the sender (generic alerts), used when no routing rule matches."""

    def delivery(self, routing: RoutingPolicy, *, received_at: datetime) -> AlertDelivery:
        """Route the alert and build what its group receives."""
        labels = cap_labels(self.labels)
        route = routing.route(self.source, labels)
        severity = route.severity
        if route.rule == DEFAULT_RULE and self.severity_hint is not None:
            severity = self.severity_hint
        title = cap_text(self.title.strip() or self.alert_key, 300)
        started = plausible(self.started_at, received_at)
        declaration = Declaration(
            title=title,
            severity=severity,
            service=cap_text(route.service, 200),
            declared_by=self.source.value,
            description=cap_text(self.description, MAX_TEXT),
            detected_at=started,
            source=self.source.value,
            routing_rule=route.rule,
            targets=route.targets,
            links=cap_links(self.links),
        )
        alert = AlertEvent(
            key=self.alert_key,
            source=self.source.value,
            summary=cap_text(title, 500),
            started_at=started,
            received_at=received_at,
            labels=labels,
        )
        return AlertDelivery(status=self.status, alert=alert, declaration=declaration)
