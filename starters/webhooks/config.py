"""Webhook-only settings, read from ``INCIDENT_WEBHOOK_*`` environment variables."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.routing import AlertSource

DEFAULT_MAX_BODY = 1024 * 1024


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
