"""Routing rules: which severity, service and targets an alert's incident gets.

Rules live in the policy file under ``[routing]``. They are tried in order and
the first one whose conditions all hold decides; when none matches, the
defaults apply (P2, service taken from the ``service`` label). The name of the
deciding rule is recorded in the incident's timeline.

.. code-block:: toml

    [[routing.rules]]
    name = "critical"
    match = { severity = "critical" }
    severity = "P0"

    [[routing.rules]]
    name = "payments"
    match_re = { team = "payments|billing" }
    service = "payments"
    targets = ["#payments-oncall"]
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from domain.durations import Duration, parse_duration
from domain.models import Severity

DEFAULT_RULE = "default"
"""Rule name recorded when no routing rule matched."""


class AlertSource(StrEnum):
    """Monitoring systems the webhook service accepts alerts from."""

    ALERTMANAGER = "alertmanager"
    GRAFANA = "grafana"
    PAGERDUTY = "pagerduty"
    GENERIC = "generic"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RoutingRule(_Strict):
    """One rule: conditions on an alert, and what an incident it opens gets."""

    name: str = Field(min_length=1, max_length=100)
    """Name shown in the incident timeline when this rule decides."""
    sources: list[AlertSource] = Field(default_factory=list)
    """Only alerts from these sources match (empty: any source)."""
    match: dict[str, str] = Field(default_factory=dict)
    """Labels that must be equal to these values."""
    match_re: dict[str, str] = Field(default_factory=dict)
    """Labels whose whole value must match these regular expressions."""
    severity: Severity | None = None
    """Severity of the incident (default: ``routing.default_severity``)."""
    service: str | None = None
    """Affected service (default: the alert's ``routing.service_label`` label)."""
    targets: list[str] = Field(default_factory=list)
    """Extra notification targets (channels, groups) for the incident."""

    @field_validator("match_re")
    @classmethod
    def _compiles(cls, patterns: dict[str, str]) -> dict[str, str]:
        for label, pattern in patterns.items():
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"label {label!r}: invalid regular expression: {error}") from None
        return patterns

    def matches(self, source: AlertSource, labels: dict[str, str]) -> bool:
        """Whether every condition of this rule holds for the alert."""
        if self.sources and source not in self.sources:
            return False
        for label, value in self.match.items():
            if labels.get(label) != value:
                return False
        for label, pattern in self.match_re.items():
            if re.fullmatch(pattern, labels.get(label, "")) is None:
                return False
        return True


DedupKey = Literal["fingerprint", "groupKey"]


class DedupPolicy(_Strict):
    """Which field deduplicates alerts of Alertmanager-shaped sources.

    ``fingerprint`` (default) gives each alert its own incident; ``groupKey``
    puts every alert of one Alertmanager group into one incident. PagerDuty
    events always deduplicate on ``dedup_key`` and generic alerts on their
    ``dedup_key``.
    """

    alertmanager: DedupKey = "fingerprint"
    """Deduplication field for ``/webhooks/alertmanager``."""
    grafana: DedupKey = "fingerprint"
    """Deduplication field for ``/webhooks/grafana``."""


class Route(BaseModel):
    """What routing decided for one alert."""

    rule: str
    """Name of the deciding rule, or ``default``."""
    severity: Severity
    """Severity an incident opened by this alert gets."""
    service: str
    """Affected service."""
    targets: list[str] = Field(default_factory=list)
    """Extra notification targets."""


class RoutingPolicy(_Strict):
    """The ``[routing]`` part of the policy."""

    rules: list[RoutingRule] = Field(default_factory=list)
    """Tried in order; the first match decides."""
    default_severity: Severity = Severity.P2
    """Severity when no rule (or a rule without ``severity``) decides."""
    service_label: str = "service"
    """Label naming the affected service when no rule sets ``service``."""
    dedup: DedupPolicy = Field(default_factory=DedupPolicy)
    repeat_window: Duration = parse_duration("7d")
    """How long after an incident closes a new trigger of the same alert is linked to it
    as a repeat incident (the alert's group is forgotten afterwards)."""

    @model_validator(mode="after")
    def _unique_names(self) -> RoutingPolicy:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"routing rule name {rule.name!r} is used twice")
            seen.add(rule.name)
        return self

    def route(self, source: AlertSource, labels: dict[str, str]) -> Route:
        """The route of an alert from ``source`` with ``labels``."""
        default_service = labels.get(self.service_label, "")
        for rule in self.rules:
            if rule.matches(source, labels):
                return Route(
                    rule=rule.name,
                    severity=rule.severity or self.default_severity,
                    service=rule.service if rule.service is not None else default_service,
                    targets=list(rule.targets),
                )
        return Route(rule=DEFAULT_RULE, severity=self.default_severity, service=default_service)
