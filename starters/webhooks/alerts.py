"""The common shape every payload is turned into, and routing it into a delivery."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator

from domain.models import MAX_TEXT, AlertEvent, Declaration, Severity, cap_text
from domain.routing import DEFAULT_RULE, AlertSource, RoutingPolicy
from starters.webhooks.limits import clean_label, clean_text, event_labels, routing_labels
from workflows.alert_group import AlertDelivery

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


def cap_links(links: list[str]) -> list[str]:
    """Non-empty links, at most :data:`MAX_LINKS`, each cut to size and cleaned."""
    return [cap_text(clean_label(link), MAX_LINK) for link in links[:50] if link.strip()][
        :MAX_LINKS
    ]


@dataclass(frozen=True, kw_only=True)
class IncomingAlert:
    """One alert from any source, before routing.

    A plain dataclass: the label maps are the parsed payload's own, shared by
    every alert of a notification and never copied until :meth:`delivery`
    keeps a bounded part of them.
    """

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
    labels: Mapping[str, str] = field(default_factory=dict)
    """Labels matched by routing rules."""
    shared_labels: Mapping[str, str] = field(default_factory=dict)
    """Labels of the whole notification (Alertmanager's ``commonLabels``); the alert's own
    ``labels`` win."""
    started_at: datetime | None = None
    """The alert's own start time, for time-to-detect."""
    links: list[str] = field(default_factory=list)
    """Generator, dashboard and runbook URLs."""
    severity_hint: Severity | None = None
    """Severity named by the sender (generic alerts), used when no routing rule matches."""

    def delivery(self, routing: RoutingPolicy, *, received_at: datetime) -> AlertDelivery:
        """Route the alert and build what its group receives."""
        labels = routing_labels(self.labels, self.shared_labels, first=routing.label_names())
        route = routing.route(self.source, labels)
        severity = route.severity
        if route.rule == DEFAULT_RULE and self.severity_hint is not None:
            severity = self.severity_hint
        title = cap_text(clean_text(self.title[:1000]).strip() or self.alert_key, 300)
        started = plausible(self.started_at, received_at)
        declaration = Declaration(
            title=title,
            severity=severity,
            service=cap_text(clean_label(route.service), 200),
            declared_by=self.source.value,
            description=cap_text(clean_text(self.description[: MAX_TEXT * 2]), MAX_TEXT),
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
            labels=event_labels(labels, first=("alertname", "severity", routing.service_label)),
        )
        return AlertDelivery(status=self.status, alert=alert, declaration=declaration)
