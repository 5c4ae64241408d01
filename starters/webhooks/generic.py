"""A small JSON schema for anything that can POST but speaks none of the other formats."""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.models import Severity
from domain.routing import AlertSource
from starters.webhooks.alerts import MAX_KEY, IncomingAlert, Timestamp
from starters.webhooks.limits import LabelMap


class GenericAlert(BaseModel):
    """``POST /webhooks/generic``: one alert.

    Example::

        {"title": "Checkout error rate above 5%", "severity": "P1", "service": "checkout",
         "dedup_key": "checkout-errors", "status": "firing"}
    """

    model_config = ConfigDict(extra="ignore")

    title: str = Field(min_length=1, max_length=1000)
    """What is wrong (the incident title)."""
    status: Literal["firing", "resolved"] = "firing"
    """``firing`` opens or joins an incident; ``resolved`` recovers the alert."""
    severity: str | None = Field(default=None, max_length=100)
    """Severity label for routing rules; P0-P3 is used directly when no rule matches."""
    service: str | None = Field(default=None, max_length=200)
    """Affected service (the ``service`` label)."""
    dedup_key: str | None = Field(default=None, min_length=1, max_length=MAX_KEY)
    """Deduplication key. Without one, a trigger gets a key only this service can compute
    (returned in the answer), and a resolve recovers nothing."""
    description: str = ""
    """Longer description."""
    links: list[str] = Field(default_factory=list, max_length=50)
    """Dashboard, runbook or graph URLs."""
    started_at: Timestamp | None = None
    """When the problem started (time-to-detect)."""
    labels: LabelMap = Field(default_factory=dict)
    """Extra labels for routing rules; at most 256 (64 are kept)."""

    def key(self, secret: bytes) -> str:
        """The explicit ``dedup_key``, else a keyed digest of service and title.

        The digest is an HMAC under the service's ``secret``: repeats of one
        alert still join one incident, but nobody outside can compute the key
        of someone else's alert to resolve it.
        """
        if self.dedup_key is not None:
            return self.dedup_key
        text = f"{self.service or ''}\x00{self.title}".encode("utf-8", "surrogatepass")
        return "generic-" + hmac.new(secret, text, hashlib.sha256).hexdigest()[:32]

    def incoming(self, secret: bytes) -> IncomingAlert:
        """The alert in the common shape (``secret`` keys a missing ``dedup_key``)."""
        labels = dict(self.labels)
        if self.severity:
            labels["severity"] = self.severity
        if self.service:
            labels["service"] = self.service
        hint = self.severity.strip().upper() if self.severity else ""
        key = self.key(secret)
        return IncomingAlert(
            source=AlertSource.GENERIC,
            dedup_key=key,
            alert_key=key,
            status=self.status,
            title=self.title,
            description=self.description,
            labels=labels,
            started_at=self.started_at,
            links=self.links,
            severity_hint=Severity(hint) if hint in Severity.__members__ else None,
        )
