"""Prometheus Alertmanager webhook payloads (version 4), and Grafana's superset of them."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from domain.routing import AlertSource, DedupKey
from starters.webhooks.alerts import MAX_KEY, IncomingAlert, Timestamp
from starters.webhooks.limits import LabelMap

_VERSIONS = ("4", "1")


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class AlertmanagerAlert(_Payload):
    """One alert of a notification."""

    status: Literal["firing", "resolved"]
    """Whether the alert is firing or resolved."""
    labels: LabelMap
    """Identifying labels (``alertname``, ``severity``, ``service``...); at most 256."""
    annotations: LabelMap = Field(default_factory=dict)
    """Informational annotations (``summary``, ``description``, ``runbook_url``...);
    at most 256."""
    starts_at: Timestamp | None = Field(default=None, alias="startsAt")
    """When the alert started firing."""
    ends_at: Timestamp | None = Field(default=None, alias="endsAt")
    """When it resolved (``0001-01-01T00:00:00Z`` while firing)."""
    generator_url: str = Field(default="", alias="generatorURL", max_length=4000)
    """Link to the rule that generated the alert."""
    fingerprint: str = Field(default="", max_length=MAX_KEY)
    """Stable identity of the alert (its label set); the default deduplication key."""
    values: dict[str, float | None] | None = None
    """Grafana: values of the rule's queries and expressions."""
    value_string: str = Field(default="", alias="valueString")
    """Grafana: the values as text."""
    dashboard_url: str = Field(default="", alias="dashboardURL", max_length=4000)
    """Grafana: dashboard of the rule."""
    panel_url: str = Field(default="", alias="panelURL", max_length=4000)
    """Grafana: panel of the rule."""
    silence_url: str = Field(default="", alias="silenceURL", max_length=4000)
    """Grafana: link to silence this alert."""

    def identity(self) -> str:
        """The fingerprint, or a digest of the labels when the sender sent none."""
        if self.fingerprint:
            return self.fingerprint
        canonical = "\x00".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        return (
            "labels-" + hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        )


class AlertmanagerPayload(_Payload):
    """The body Alertmanager's ``webhook_config`` receiver posts (``version`` "4").

    Grafana's webhook contact point posts the same shape with ``version`` "1"
    and the extra ``orgId``, ``title``, ``state`` and ``message`` fields.
    """

    version: str = "4"
    """Payload version: "4" from Alertmanager, "1" from Grafana."""
    group_key: str = Field(default="", alias="groupKey", max_length=4000)
    """Identity of the Alertmanager group the notification is for."""
    truncated_alerts: int = Field(default=0, alias="truncatedAlerts", ge=0)
    """How many alerts were left out because of the receiver's ``max_alerts``."""
    status: Literal["firing", "resolved"]
    """``firing`` if at least one alert fires, else ``resolved``."""
    receiver: str = ""
    """Name of the receiver."""
    group_labels: LabelMap = Field(default_factory=dict, alias="groupLabels")
    """Labels the group is formed by; at most 256."""
    common_labels: LabelMap = Field(default_factory=dict, alias="commonLabels")
    """Labels every alert shares; at most 256."""
    common_annotations: LabelMap = Field(default_factory=dict, alias="commonAnnotations")
    """Annotations every alert shares; at most 256."""
    external_url: str = Field(default="", alias="externalURL", max_length=4000)
    """Link back to the Alertmanager."""
    alerts: list[AlertmanagerAlert] = Field(min_length=1, max_length=1000)
    """The alerts of the notification."""
    org_id: int | None = Field(default=None, alias="orgId")
    """Grafana: organization."""
    title: str = ""
    """Grafana: rendered notification title."""
    state: str = ""
    """Grafana: ``alerting`` or ``ok``."""
    message: str = ""
    """Grafana: rendered notification message."""

    @field_validator("version")
    @classmethod
    def _known_version(cls, version: str) -> str:
        if version not in _VERSIONS:
            raise ValueError(
                f"unsupported payload version {version[:20]!r} "
                "(expected '4' from Alertmanager or '1' from Grafana)"
            )
        return version

    def incoming(self, source: AlertSource, dedup: DedupKey) -> list[IncomingAlert]:
        """Each distinct alert in the common shape, deduplicated on ``dedup``.

        An alert repeated in one notification (same identity) is handed over
        once, as its last occurrence: the last status wins. Alertmanager never
        sends that, but a forged notification repeating one fingerprint a
        thousand times would otherwise cost a thousand signals.
        """
        group = f"group:{self.group_key}" if dedup == "groupKey" and self.group_key else None
        latest: dict[str, AlertmanagerAlert] = {}
        for alert in self.alerts:
            latest[alert.identity()] = alert
        return [self._incoming(alert, source, group) for alert in latest.values()]

    def _incoming(
        self, alert: AlertmanagerAlert, source: AlertSource, group: str | None
    ) -> IncomingAlert:
        def annotation(name: str) -> str:
            return alert.annotations.get(name) or self.common_annotations.get(name) or ""

        title = (
            annotation("summary")
            or annotation("title")
            or alert.labels.get("alertname")
            or self.title
            or alert.identity()
        )
        description = annotation("description") or annotation("message")
        if alert.value_string:
            description = f"{description}\n\nValues: {alert.value_string}".strip()
        links = [
            alert.generator_url,
            annotation("runbook_url"),
            alert.dashboard_url,
            alert.panel_url,
        ]
        key = alert.identity()
        return IncomingAlert(
            source=source,
            dedup_key=group or key,
            alert_key=key,
            status=alert.status,
            title=title,
            description=description,
            labels=alert.labels,
            shared_labels=self.common_labels,
            started_at=alert.starts_at,
            links=links,
        )
