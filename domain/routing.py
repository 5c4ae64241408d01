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


class WebhookPolicy(_Strict):
    """``[routing.webhooks]``: what senders may do, and how strictly they are checked."""

    require_signed_timestamp: bool = False
    """HMAC-signed requests must sign a fresh timestamp (``X-Signature-Timestamp``, or
    Grafana's ``X-Grafana-Alerting-Timestamp``), so a captured request cannot be replayed
    later. Bearer tokens are not affected."""
    pagerduty_acknowledge: bool = False
    """Whether a PagerDuty ``acknowledge`` event may acknowledge an incident (and so stop
    its escalation). Off: such events are refused with 403 naming this key."""


_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,30}$")
_SLACK_GROUP = re.compile(r"^S[A-Z0-9]{2,30}$")


class SlackCommandAccess(_Strict):
    """``[routing.slack_commands]``: who may run ``/incident`` in Slack.

    Both lists empty: everyone in the workspace (requests are still verified
    with the signing secret). Otherwise only these users and the members of
    these user groups; others get an ephemeral refusal.
    """

    users: list[str] = Field(default_factory=list)
    """Slack user IDs (``U…``/``W…``) allowed to run commands."""
    groups: list[str] = Field(default_factory=list)
    """Slack user-group IDs (``S…``) whose members may run commands (needs
    ``SLACK_BOT_TOKEN`` with ``usergroups:read`` on the HTTP service)."""

    @field_validator("users")
    @classmethod
    def _user_ids(cls, users: list[str]) -> list[str]:
        for user in users:
            if not _SLACK_USER.match(user):
                raise ValueError(f"{user!r} is not a Slack user ID (U… or W…)")
        return users

    @field_validator("groups")
    @classmethod
    def _group_ids(cls, groups: list[str]) -> list[str]:
        for group in groups:
            if not _SLACK_GROUP.match(group):
                raise ValueError(f"{group!r} is not a Slack user-group ID (S…)")
        return groups

    @property
    def restricted(self) -> bool:
        """Whether an allowlist is in force."""
        return bool(self.users or self.groups)


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
    webhooks: WebhookPolicy = Field(default_factory=WebhookPolicy)
    slack_commands: SlackCommandAccess = Field(default_factory=SlackCommandAccess)
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

    def label_names(self) -> list[str]:
        """The label names routing looks at (kept first when an alert's labels are cut)."""
        names = ["alertname", "severity", self.service_label]
        for rule in self.rules:
            names += [*rule.match, *rule.match_re]
        return list(dict.fromkeys(names))

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
