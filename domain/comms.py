"""Communications: policy and connection settings for Slack, the status page and e-mail.

The policy part (``[comms.*]`` tables of the policy TOML) says who and what;
the settings part (``SLACK_*``, ``STATUSPAGE_*``, ``SMTP_*`` environment
variables) says how to connect. Nothing here does I/O at import time.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.durations import Duration, parse_duration
from domain.models import IncidentFacts, Phase, Severity

SLACK_DEFAULT_API_URL = "https://slack.com/api/"
STATUSPAGE_DEFAULT_API_URL = "https://api.statuspage.io/v1"
_MAX_CHANNEL_NAME = 80
"""Slack's limit for channel names."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SlackPolicy(_Strict):
    """``[comms.slack]``: who is who in Slack, and who joins incident channels."""

    users: dict[str, str] = Field(default_factory=dict)
    """Responder name (as used in the CLI and policy, ``@`` optional) → Slack user ID."""
    groups: dict[str, str] = Field(default_factory=dict)
    """Group name (e.g. ``oncall-sre``) → Slack user-group ID, mentioned as ``@oncall-sre``."""
    channels: dict[str, str] = Field(default_factory=dict)
    """Channel name (``#incidents``) → channel ID; unlisted names are looked up once."""
    email_domain: str = ""
    """When set, unknown responders are looked up as ``<name>@<email_domain>``
    with ``users.lookupByEmail``."""
    invite: list[str] = Field(default_factory=list)
    """People invited to every incident channel besides the commander and the declarer."""

    @field_validator("users", "groups")
    @classmethod
    def _plain_names(cls, value: dict[str, str]) -> dict[str, str]:
        return {name.lstrip("@").lower(): ident for name, ident in value.items()}

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, value: dict[str, str]) -> dict[str, str]:
        return {"#" + name.lstrip("#").lower(): channel_id for name, channel_id in value.items()}


def _public_severities() -> list[Severity]:
    return [Severity.P0, Severity.P1, Severity.P2]


class StatusPagePolicy(_Strict):
    """``[comms.status_page]``: what the public sees."""

    severities: list[Severity] = Field(default_factory=_public_severities)
    """Severities that are published (P3 has no user impact by definition)."""
    components: dict[str, list[str]] = Field(default_factory=dict)
    """Service → affected status-page components (Statuspage component IDs; the built-in
    page shows the service names)."""
    publish_updates: bool = False
    """Whether responders' ``incident update`` texts are published, not only status changes."""
    deliver_notifications: bool = True
    """Whether Statuspage e-mails/texts its subscribers about each update."""
    title: str = "System status"
    """Heading of the built-in status page."""
    recent_days: int = Field(default=7, ge=1, le=90)
    """How long resolved incidents stay listed on the built-in page."""

    def publishes(self, severity: Severity) -> bool:
        """Whether incidents of ``severity`` appear on the status page."""
        return severity in self.severities


class EmailPolicy(_Strict):
    """``[comms.email]``: the customer e-mail after long outages."""

    recipients: list[str] = Field(default_factory=list)
    """Who receives the customer e-mail (e.g. a customer mailing list)."""
    min_downtime: Duration = parse_duration("1h")
    """Send it only when customer-visible downtime exceeded this."""
    severities: list[Severity] = Field(default_factory=_public_severities)
    """Severities whose downtime is customer-visible."""


class CommsPolicy(_Strict):
    """``[comms]``: Slack, status page and customer e-mail rules."""

    slack: SlackPolicy = Field(default_factory=SlackPolicy)
    status_page: StatusPagePolicy = Field(default_factory=StatusPagePolicy)
    email: EmailPolicy = Field(default_factory=EmailPolicy)


# ------------------------------------------------------------------ settings


class SlackSettings(BaseSettings):
    """``SLACK_*``: the Slack bot. Without a token Slack is not used."""

    model_config = SettingsConfigDict(env_prefix="SLACK_", extra="ignore")

    bot_token: SecretStr | None = None
    """``SLACK_BOT_TOKEN``: the bot user OAuth token (``xoxb-…``)."""
    api_url: str = SLACK_DEFAULT_API_URL
    """``SLACK_API_URL``: Web API base URL (tests and gateways point it elsewhere)."""
    signing_secret: SecretStr | None = None
    """``SLACK_SIGNING_SECRET``: verifies slash commands sent to the HTTP service."""
    timeout: float = 15.0
    """``SLACK_TIMEOUT``: seconds per Web API call."""

    @field_validator("api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @property
    def enabled(self) -> bool:
        """Whether a bot token is configured."""
        return self.bot_token is not None and bool(self.bot_token.get_secret_value())


class StatuspageSettings(BaseSettings):
    """``STATUSPAGE_*``: Atlassian Statuspage. Without a key the built-in page is used."""

    model_config = SettingsConfigDict(env_prefix="STATUSPAGE_", extra="ignore")

    api_key: SecretStr | None = None
    """``STATUSPAGE_API_KEY``: API key of a user with the incident-manager role."""
    page_id: str = ""
    """``STATUSPAGE_PAGE_ID``: the page to post incidents on."""
    api_url: str = STATUSPAGE_DEFAULT_API_URL
    """``STATUSPAGE_API_URL``: API base URL."""
    timeout: float = 15.0
    """``STATUSPAGE_TIMEOUT``: seconds per API call."""

    @property
    def enabled(self) -> bool:
        """Whether an API key is configured."""
        return self.api_key is not None and bool(self.api_key.get_secret_value())


class SmtpSettings(BaseSettings):
    """``SMTP_*``: the mail server for customer e-mail. Without a host no e-mail is sent."""

    model_config = SettingsConfigDict(env_prefix="SMTP_", extra="ignore", populate_by_name=True)

    host: str = ""
    """``SMTP_HOST``: mail server host name."""
    port: int = 587
    """``SMTP_PORT``: mail server port (587 for STARTTLS, 465 for implicit TLS)."""
    starttls: bool = True
    """``SMTP_STARTTLS``: upgrade the connection with STARTTLS before authenticating."""
    tls: bool = False
    """``SMTP_TLS``: connect with implicit TLS (port 465) instead."""
    username: str = ""
    """``SMTP_USERNAME``: login, when the server requires authentication."""
    password: SecretStr | None = None
    """``SMTP_PASSWORD``: password for ``SMTP_USERNAME``."""
    sender: str = Field(default="", validation_alias=AliasChoices("SMTP_FROM", "sender"))
    """``SMTP_FROM``: the From address of customer e-mail."""
    timeout: float = 30.0
    """``SMTP_TIMEOUT``: seconds for connecting and each SMTP command."""

    @property
    def enabled(self) -> bool:
        """Whether a mail server is configured."""
        return bool(self.host)


# ------------------------------------------------------------------- helpers


def slugify(text: str, *, limit: int) -> str:
    """Lowercase ASCII words joined by hyphens, at most ``limit`` characters."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:limit].rstrip("-")


def incident_channel_name(facts: IncidentFacts) -> str:
    """``inc-<id>-<slug>``: the incident's Slack channel name (without ``#``)."""
    ident = slugify(facts.id, limit=40)
    if not ident.startswith("inc-"):
        ident = f"inc-{ident}"
    room = _MAX_CHANNEL_NAME - len(ident) - 1
    slug = slugify(facts.title, limit=room)
    return f"{ident}-{slug}" if slug else ident


def escape_mrkdwn(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` so text cannot form Slack links or mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def downtime(facts: IncidentFacts, *, until: datetime | None = None) -> timedelta:
    """Customer-visible downtime: from when impact started to resolution.

    Only times a human stands behind reach customers: the impact start a responder
    set (``incident set --impact-started``), else the declaration. A monitoring
    sender's start time (``detected_at``) is for time-to-detect, not for what
    customers are told.
    """
    start = facts.impact_started or facts.declared_at
    end = facts.resolved_at or until or facts.declared_at
    return max(end - start, timedelta())


PUBLIC_STATUS_KEYS = {
    Phase.DETECT: "investigating",
    Phase.INVESTIGATE: "investigating",
    Phase.FIX: "identified",
    Phase.MONITOR: "monitoring",
    Phase.RESOLVE: "resolved",
    Phase.DISMISSED: "resolved",
}
"""Statuspage incident status for each phase."""
