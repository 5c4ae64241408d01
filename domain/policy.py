"""The response policy: SLAs, cadences, escalation chain and targets.

Defaults come from the incident-response process (severity SLAs, 15-minute
updates, 1-4 h monitoring, post-mortem within 48 h). A TOML file named by
``INCIDENT_POLICY`` overrides any part of it.
"""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from domain.checklists import ChecklistPolicy
from domain.comms import CommsPolicy
from domain.durations import Duration, parse_duration
from domain.models import Severity
from domain.routing import RoutingPolicy


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SeverityPolicy(_Strict):
    """Clocks for one severity."""

    ack_sla: Duration
    """Time from declaration to acknowledgement before the escalation chain starts."""
    resolve_sla: Duration
    """Time from declaration to resolution before management is notified."""
    update_interval: Duration
    """Cadence of stakeholder updates while the incident is open."""
    nudge_before: Duration
    """How long before a due update the commander is nudged if nobody posted one."""
    monitor_window: Duration
    """Stability window in Monitor; passing it without recurrence resolves the incident."""
    postmortem_required: bool
    """Whether resolving requires a post-mortem."""

    @model_validator(mode="after")
    def _nudge_inside_interval(self) -> SeverityPolicy:
        if self.nudge_before >= self.update_interval:
            raise ValueError("nudge_before must be shorter than update_interval")
        return self


def _sev(
    ack: str, resolve: str, update: str, nudge: str, monitor: str, postmortem: bool
) -> SeverityPolicy:
    return SeverityPolicy(
        ack_sla=parse_duration(ack),
        resolve_sla=parse_duration(resolve),
        update_interval=parse_duration(update),
        nudge_before=parse_duration(nudge),
        monitor_window=parse_duration(monitor),
        postmortem_required=postmortem,
    )


def _default_severities() -> dict[Severity, SeverityPolicy]:
    return {
        Severity.P0: _sev("5m", "1h", "15m", "5m", "4h", True),
        Severity.P1: _sev("15m", "4h", "15m", "5m", "2h", True),
        Severity.P2: _sev("1h", "24h", "1h", "15m", "1h", False),
        Severity.P3: _sev("24h", "1w", "24h", "1h", "1h", False),
    }


class EscalationLevel(_Strict):
    """One level of the escalation chain."""

    targets: list[str] = Field(min_length=1)
    """Who is paged at this level (users like ``@alice`` or groups like ``@oncall-sre``)."""
    delay: Duration
    """How long to wait for an acknowledgement before paging the next level."""


def _default_levels() -> list[EscalationLevel]:
    return [
        EscalationLevel(targets=["@primary-oncall"], delay=parse_duration("5m")),
        EscalationLevel(targets=["@secondary-oncall"], delay=parse_duration("10m")),
        EscalationLevel(targets=["@engineering-manager"], delay=parse_duration("15m")),
    ]


class EscalationPolicy(_Strict):
    """What happens when nobody acknowledges in time (like a PagerDuty escalation policy)."""

    levels: list[EscalationLevel] = Field(default_factory=_default_levels, min_length=1)
    """Levels paged in order, starting when the acknowledge SLA is missed."""
    repeat: int = Field(default=2, ge=1, le=20)
    """How many times the whole chain is walked before giving up."""
    fallback_targets: list[str] = Field(default_factory=lambda: ["@engineering-manager"])
    """Who is paged instead when a page cannot be delivered (and the incident is flagged
    ``IncidentDeliveryFailed``)."""


class NotificationPolicy(_Strict):
    """Where messages go."""

    incidents_channel: str = "#incidents"
    """Announcement channel for declarations, resolutions and stakeholder updates."""
    management: list[str] = Field(default_factory=lambda: ["@engineering-manager"])
    """Who hears about resolve-SLA breaches."""
    status_page_url: str = "https://status.example.com"
    """Public status page shown in announcements."""
    public_titles: dict[str, str] = Field(default_factory=dict)
    """Neutral public title per service for incidents opened by alerts (until a responder
    acknowledges or sets one): the raw alert title never reaches the public first."""
    default_public_title: str = "Service disruption"
    """Neutral public title for services without one in ``public_titles``."""

    def neutral_title(self, service: str) -> str:
        """The public title of an alert-opened incident of ``service``."""
        if service in self.public_titles:
            return self.public_titles[service]
        return f"{self.default_public_title}: {service}" if service else self.default_public_title


class PostmortemPolicy(_Strict):
    """The post-mortem obligation after Resolve."""

    deadline: Duration = parse_duration("48h")
    """Time from resolution until the post-mortem is due."""
    reminder_before: Duration = parse_duration("24h")
    """How long before the deadline the commander is reminded."""
    escalate_to: list[str] = Field(default_factory=lambda: ["@engineering-manager"])
    """Who is told when the deadline passes without a post-mortem."""
    review_reminder_before: Duration = parse_duration("1h")
    """How long before the review meeting (``postmortem --schedule``) attendees are reminded."""

    @model_validator(mode="after")
    def _reminder_inside_deadline(self) -> PostmortemPolicy:
        if self.reminder_before >= self.deadline:
            raise ValueError("reminder_before must be shorter than deadline")
        return self


class AlertPolicy(_Strict):
    """How alerts steer an incident."""

    on_all_recovered: Literal["monitor", "resolve", "none"] = "monitor"
    """What to do with an acknowledged incident once every alert has recovered."""
    resolve_unacknowledged: bool = False
    """Whether all alerts recovering may resolve an incident nobody acknowledged."""
    recurrence_phase: Literal["Fix", "Investigate"] = "Fix"
    """Phase an incident returns to when an alert fires again during Monitor."""
    max_new_incidents_per_minute: int = Field(default=20, ge=1, le=10_000)
    """New incidents one alert source may open in any minute; further new alerts join one
    "alert storm" incident of that source until it is closed."""
    storm_severity: Severity = Severity.P1
    """Severity of an alert-storm incident."""
    max_start_age: Duration = parse_duration("24h")
    """An alert start time further back than this before it arrived is clamped to it (and
    the clamp recorded): a sender's clock cannot invent days of downtime."""
    settle_window: Duration = parse_duration("2m")
    """How long every alert must stay recovered before the incident moves to Monitor (or
    resolves) by itself; an alert flapping inside it changes no phase and is counted in
    one timeline entry."""


class JiraPolicy(_Strict):
    """``[actions.jira]``: the Jira project each action item is exported to.

    Export happens only when ``project`` is set and ``JIRA_URL``, ``JIRA_EMAIL`` and
    ``JIRA_API_TOKEN`` are configured (see :class:`domain.settings.JiraSettings`).
    """

    project: str = Field(default="", pattern=r"^([A-Z][A-Z0-9_]{0,9})?$")
    """Jira project key (``OPS``); empty leaves action items out of Jira."""
    issue_type: str = Field(default="Task", min_length=1, max_length=60)
    """Issue type of the created issues, by name."""


class ActionsPolicy(_Strict):
    """Follow-up of action items (``incident action add``), each until done or dropped."""

    remind_before: Duration = parse_duration("1d")
    """How long before its due date the owner is reminded."""
    escalate_after: Duration = parse_duration("2d")
    """How long after its due date an open item escalates to the IC and ``escalate_to``."""
    escalate_to: list[str] = Field(default_factory=lambda: ["@engineering-manager"])
    """Management told when an item escalates (with the incident's IC)."""
    digest_every: Duration = parse_duration("7d")
    """How often the IC is reminded of each open item of their incidents."""
    jira: JiraPolicy = Field(default_factory=JiraPolicy)
    """Optional export of each action item to one Jira issue."""


class MetricsPolicy(_Strict):
    """``[metrics]``: how the incident metrics are counted and the process's healthy targets."""

    repeat_window: Duration = parse_duration("90d")
    """A later incident with the same root-cause key within this time is a repeat."""
    mttr_targets: dict[Severity, Duration] = Field(
        default_factory=lambda: {Severity.P0: parse_duration("1h")}
    )
    """Mean time to resolve per severity must stay below these (severities not named have none)."""
    mttd_target: Duration = parse_duration("5m")
    """Mean time to detect must stay below this."""
    max_repeats: int = Field(default=0, ge=0)
    """Repeat incidents a period may have and still be healthy."""
    action_item_target: float = Field(default=1.0, gt=0, le=1)
    """Share of due action items that must be done on time."""
    report_timezone: str = "UTC"
    """IANA time zone of the monthly report: its months and its run on the 1st at 09:00."""

    @field_validator("report_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (IANA, like Europe/Berlin)") from None
        return value


class Policy(_Strict):
    """The whole response policy."""

    severities: dict[Severity, SeverityPolicy] = Field(default_factory=_default_severities)
    """Per-severity clocks (all four severities are always present)."""
    escalation: EscalationPolicy = Field(default_factory=EscalationPolicy)
    notifications: NotificationPolicy = Field(default_factory=NotificationPolicy)
    postmortem: PostmortemPolicy = Field(default_factory=PostmortemPolicy)
    alerts: AlertPolicy = Field(default_factory=AlertPolicy)
    actions: ActionsPolicy = Field(default_factory=ActionsPolicy)
    """Reminders, overdue notices and escalations of action items."""
    routing: RoutingPolicy = Field(default_factory=RoutingPolicy)
    """How webhook alerts are routed to severity, service and targets, and deduplicated."""
    comms: CommsPolicy = Field(default_factory=CommsPolicy)
    """Slack, status page and customer e-mail (see :mod:`domain.comms`)."""
    checklists: ChecklistPolicy = Field(default_factory=ChecklistPolicy)
    """Each phase's checklist; a phase left out keeps the process's list."""
    metrics: MetricsPolicy = Field(default_factory=MetricsPolicy)
    """Repeat window and the targets the incident metrics are marked against."""
    max_history_events: int = Field(default=500, ge=50, le=50_000)
    """Continue-as-new once an incident's history reaches this many events (or when the
    server suggests it earlier), carrying the whole state into a fresh run. Kept small:
    a worker that must replay a run (after a restart, or when a continue-as-new races a
    signal) replays at most this many events, so queries stay fast during alert floods."""
    max_history_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024, le=40 * 1024 * 1024)
    """Continue-as-new once an incident's history reaches this size in bytes (Temporal
    terminates a workflow at 50 MB)."""

    def for_severity(self, severity: Severity) -> SeverityPolicy:
        """The clocks of ``severity``."""
        return self.severities[severity]

    def escalation_cycle(self) -> timedelta:
        """Length of one walk through every escalation level."""
        return sum((level.delay for level in self.escalation.levels), timedelta())


class PolicyError(ValueError):
    """The policy file is unreadable or invalid; the message names the key."""


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"invalid incident policy {source}:"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)


def policy_from_mapping(data: dict[str, Any], *, source: str = "<mapping>") -> Policy:
    """Build a policy from parsed TOML, on top of the defaults.

    A partial ``[severities.P1]`` table only overrides the keys it names.

    Raises:
        PolicyError: naming each invalid key.
    """
    defaults = Policy().model_dump(mode="json")
    merged = _merge(defaults, data)
    try:
        return Policy.model_validate(merged)
    except ValidationError as error:
        raise PolicyError(_describe(error, source)) from None


def load_policy(path: str | Path | None) -> Policy:
    """Load the policy from a TOML file, or the defaults when ``path`` is empty.

    Raises:
        PolicyError: when the file is missing, is not TOML, or holds an invalid key.
    """
    if not path:
        return Policy()
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"incident policy file not found: {file}") from None
    except tomllib.TOMLDecodeError as error:
        raise PolicyError(f"incident policy {file} is not valid TOML: {error}") from None
    return policy_from_mapping(data, source=str(file))
