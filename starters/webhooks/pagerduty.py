"""PagerDuty Events API v2 bodies, so anything that can page PagerDuty can page us."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from domain.models import MAX_TEXT
from domain.routing import AlertSource
from starters.webhooks.alerts import MAX_KEY, IncomingAlert, Timestamp
from starters.webhooks.limits import MAX_LABELS, compact_details, compact_json

_TEXT_SCALARS = (str, int, float, bool)


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class PagerDutyDetails(_Payload):
    """The ``payload`` object of a trigger event."""

    summary: str = Field(min_length=1, max_length=1024)
    """Brief text summary of the event (the incident title)."""
    source: str = Field(min_length=1, max_length=1024)
    """Unique location of the affected system (host name, FQDN)."""
    severity: Literal["critical", "error", "warning", "info"]
    """Perceived severity, matched by routing rules as the ``severity`` label."""
    timestamp: Timestamp | None = None
    """When the event was generated (time-to-detect)."""
    component: str | None = Field(default=None, max_length=1024)
    """Component of the source machine responsible for the event."""
    group: str | None = Field(default=None, max_length=1024)
    """Logical grouping of components of a service."""
    class_: str | None = Field(default=None, alias="class", max_length=1024)
    """Class or type of the event."""
    custom_details: dict[str, Any] | str | None = None
    """Additional details; scalar entries become routing labels. Cut at parse time to a
    few levels, entries and characters (see :func:`~starters.webhooks.limits.compact_details`)."""

    @field_validator("custom_details")
    @classmethod
    def _bounded(cls, details: dict[str, Any] | str | None) -> dict[str, Any] | str | None:
        if isinstance(details, dict):
            compacted: dict[str, Any] = compact_details(details)
            return compacted
        return details


class PagerDutyLink(_Payload):
    """A link attached to the event."""

    href: str = Field(max_length=4000)
    text: str = ""


class PagerDutyImage(_Payload):
    """An image attached to the event (kept as a link)."""

    src: str = Field(max_length=4000)
    href: str = Field(default="", max_length=4000)
    alt: str = ""


class PagerDutyEvent(_Payload):
    """A PagerDuty Events API v2 event (``POST /v2/enqueue`` body)."""

    routing_key: str = Field(min_length=1, max_length=128)
    """Integration key; scopes ``dedup_key`` as it does at PagerDuty."""
    event_action: Literal["trigger", "acknowledge", "resolve"]
    """What the event does to the incident of ``dedup_key``."""
    dedup_key: str | None = Field(
        default=None, min_length=1, max_length=MAX_KEY, validate_default=True
    )
    """Deduplication key; generated (and returned) for a trigger without one."""
    payload: PagerDutyDetails | None = Field(default=None, validate_default=True)
    """Event details; required for ``trigger``."""
    client: str | None = None
    """Name of the monitoring client."""
    client_url: str | None = Field(default=None, max_length=4000)
    """Link to the monitoring client."""
    links: list[PagerDutyLink] = Field(default_factory=list, max_length=50)
    images: list[PagerDutyImage] = Field(default_factory=list, max_length=50)

    @field_validator("dedup_key")
    @classmethod
    def _key_to_act_on(cls, key: str | None, info: ValidationInfo) -> str | None:
        action = info.data.get("event_action")
        if key is None and action in ("acknowledge", "resolve"):
            raise ValueError(f"required for event_action {action!r}")
        return key

    @field_validator("payload")
    @classmethod
    def _details_to_trigger(
        cls, details: PagerDutyDetails | None, info: ValidationInfo
    ) -> PagerDutyDetails | None:
        if details is None and info.data.get("event_action") == "trigger":
            raise ValueError("required for event_action 'trigger'")
        return details

    def with_dedup_key(self) -> PagerDutyEvent:
        """This event, with a generated ``dedup_key`` if it had none (as PagerDuty does)."""
        if self.dedup_key is not None:
            return self
        return self.model_copy(update={"dedup_key": uuid.uuid4().hex})

    def scoped_key(self) -> str:
        """The group key: ``dedup_key`` is unique per integration (routing key)."""
        return f"{self.routing_key}\x00{self.dedup_key}"

    def incoming(self) -> IncomingAlert:
        """The trigger or resolve in the common shape (after :meth:`with_dedup_key`)."""
        assert self.dedup_key is not None
        details = self.payload
        labels: dict[str, str] = {}
        description = ""
        if details is not None:
            if isinstance(details.custom_details, dict):
                scalars = [
                    (key, str(value))
                    for key, value in details.custom_details.items()
                    if isinstance(value, _TEXT_SCALARS)
                ]
                labels.update(scalars[: MAX_LABELS - 8])  # room for the fields below
                description = compact_json(details.custom_details, MAX_TEXT)
            elif isinstance(details.custom_details, str):
                description = details.custom_details
            fields = {
                "severity": details.severity,
                "source": details.source,
                "component": details.component,
                "group": details.group,
                "class": details.class_,
            }
            labels.update({key: value for key, value in fields.items() if value})
            if "service" not in labels and details.component:
                labels["service"] = details.component
        links = [link.href for link in self.links] + [self.client_url or ""]
        return IncomingAlert(
            source=AlertSource.PAGERDUTY,
            dedup_key=self.scoped_key(),
            alert_key=self.dedup_key,
            status="resolved" if self.event_action == "resolve" else "firing",
            title=details.summary if details else self.dedup_key,
            description=description,
            labels=labels,
            started_at=details.timestamp if details else None,
            links=links,
        )
