"""Webhook-only settings, read from ``INCIDENT_WEBHOOK_*`` environment variables."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.routing import AlertSource

DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_DEADLINE = 8.0
"""Seconds a request may take in all: under Alertmanager's default 10 s timeout."""


class WebhookSettings(BaseSettings):
    """Limits and per-source secrets of the webhook endpoints.

    The shared secret for every source is ``INCIDENT_WEBHOOK_TOKEN``
    (:class:`domain.settings.Settings`); a per-source token here replaces it
    for that endpoint.
    """

    model_config = SettingsConfigDict(env_prefix="INCIDENT_WEBHOOK_", extra="ignore")

    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY, ge=1024)
    """``INCIDENT_WEBHOOK_MAX_BODY_BYTES``: larger bodies are refused with 413."""
    timeout_seconds: float = Field(default=10.0, gt=0)
    """``INCIDENT_WEBHOOK_TIMEOUT_SECONDS``: how long Temporal may take to accept an alert
    before the sender is told 503 (and retries)."""
    deadline_seconds: float = Field(default=DEFAULT_DEADLINE, gt=0, le=600)
    """``INCIDENT_WEBHOOK_DEADLINE_SECONDS``: the whole request (reading, handing every
    alert over) is answered within this time; keep it under the sender's timeout."""
    route_cache_seconds: float = Field(default=2.0, ge=0, le=60)
    """``INCIDENT_WEBHOOK_ROUTE_CACHE_SECONDS``: how long this process remembers a key's open
    incident, so a repeat alert costs one RPC (0: read the group's memo every time). An
    alert sent within this time after its incident closed is still answered with that
    incident, while the incident hands it to its group, which opens the next one."""
    allow_open: bool = False
    """``INCIDENT_WEBHOOK_ALLOW_OPEN``: let the service listen on a non-loopback address
    while an endpoint has no token (refused by default)."""
    dedup_secret: SecretStr | None = None
    """``INCIDENT_WEBHOOK_DEDUP_SECRET``: keys the dedup_key given to generic alerts sent
    without one (default: the generic endpoint's token, else a random secret per process)."""
    token_alertmanager: SecretStr | None = None
    """``INCIDENT_WEBHOOK_TOKEN_ALERTMANAGER``: secret of ``/webhooks/alertmanager``."""
    token_grafana: SecretStr | None = None
    """``INCIDENT_WEBHOOK_TOKEN_GRAFANA``: secret of ``/webhooks/grafana``."""
    token_pagerduty: SecretStr | None = None
    """``INCIDENT_WEBHOOK_TOKEN_PAGERDUTY``: secret of ``/webhooks/pagerduty``."""
    token_generic: SecretStr | None = None
    """``INCIDENT_WEBHOOK_TOKEN_GENERIC``: secret of ``/webhooks/generic``."""

    def tokens(self, shared: SecretStr | None) -> dict[AlertSource, SecretStr | None]:
        """The secret each source must present (None: that endpoint is open)."""
        per_source = {
            AlertSource.ALERTMANAGER: self.token_alertmanager,
            AlertSource.GRAFANA: self.token_grafana,
            AlertSource.PAGERDUTY: self.token_pagerduty,
            AlertSource.GENERIC: self.token_generic,
        }
        return {
            source: token if token and token.get_secret_value() else shared or None
            for source, token in per_source.items()
        }
