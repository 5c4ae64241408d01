"""Process settings read from the environment (never at import time)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TASK_QUEUE = "incidents"
"""Task queue shared by the worker, the CLI and the webhook service."""


class Settings(BaseSettings):
    """Settings shared by the worker, the CLI and the HTTP service.

    Temporal connection settings are not here: they follow Temporal's own
    environment conventions (see :mod:`domain.connection`).
    """

    model_config = SettingsConfigDict(env_prefix="INCIDENT_", extra="ignore", env_ignore_empty=True)

    policy: Path | None = None
    """``INCIDENT_POLICY``: TOML file overriding the default policy."""
    task_queue: str = DEFAULT_TASK_QUEUE
    """``INCIDENT_TASK_QUEUE``: task queue of the incident worker."""
    data_dir: Path = Path(".data")
    """``INCIDENT_DATA_DIR``: where the outbox and the dev server's database live."""
    templates: Path | None = None
    """``INCIDENT_TEMPLATES``: directory overriding the shipped message templates."""
    user: str | None = None
    """``INCIDENT_USER``: default responder name for the CLI."""
    http_host: str = "127.0.0.1"
    """``INCIDENT_HTTP_HOST``: bind address of the HTTP service."""
    http_port: int = 8000
    """``INCIDENT_HTTP_PORT``: port of the HTTP service."""
    dev_server_port: int = 7233
    """``INCIDENT_DEV_SERVER_PORT``: gRPC port of the embedded dev server (``make run``)."""
    dev_ui_port: int = 8233
    """``INCIDENT_DEV_UI_PORT``: Web UI port of the embedded dev server."""
    webhook_token: SecretStr | None = Field(default=None)
    """``INCIDENT_WEBHOOK_TOKEN``: bearer token / HMAC secret required on webhooks."""
    temporal_ui_url: str | None = Field(default=None, validation_alias="TEMPORAL_UI_URL")
    """``TEMPORAL_UI_URL``: the Temporal Web UI that ``incident ui`` links to (default:
    the embedded dev server's, ``http://localhost:<INCIDENT_DEV_UI_PORT>``)."""

    @property
    def ui_url(self) -> str:
        """The Temporal Web UI's base address, without a trailing slash."""
        return (self.temporal_ui_url or f"http://localhost:{self.dev_ui_port}").rstrip("/")

    @property
    def outbox_path(self) -> Path:
        """The append-only JSONL outbox of the console notifier."""
        return self.data_dir / "outbox.jsonl"


class JiraSettings(BaseSettings):
    """``JIRA_*``: Jira Cloud, for exporting action items (with ``[actions.jira] project``).

    Without a URL, e-mail and API token no issue is created.
    """

    model_config = SettingsConfigDict(env_prefix="JIRA_", extra="ignore", env_ignore_empty=True)

    url: str = ""
    """``JIRA_URL``: the site, e.g. ``https://example.atlassian.net``."""
    email: str = ""
    """``JIRA_EMAIL``: the account the API token belongs to (basic auth user)."""
    api_token: SecretStr | None = None
    """``JIRA_API_TOKEN``: an Atlassian API token of that account."""
    webhook_secret: SecretStr | None = None
    """``JIRA_WEBHOOK_SECRET``: the secret of the Jira webhook that reports issues done;
    ``POST /webhooks/jira`` is disabled (404) without it."""
    timeout: float = 15.0
    """``JIRA_TIMEOUT``: seconds per API call."""

    @property
    def enabled(self) -> bool:
        """Whether issues can be created (URL, e-mail and API token are all set)."""
        token = self.api_token.get_secret_value() if self.api_token else ""
        return bool(self.url and self.email and token)
