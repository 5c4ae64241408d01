"""Jinja2 templates for every outgoing message, shipped with the project.

Templates live in ``activities/templates/<medium>/<kind>.<ext>.j2``; a directory
named by ``INCIDENT_TEMPLATES`` with the same layout overrides any of them.
Rendering happens in a sandboxed environment, and every template is compiled
when the worker starts, so a broken template stops start-up instead of failing
in the middle of an incident.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from domain.comms import downtime, escape_mrkdwn, incident_channel_name
from domain.models import Notification, NotificationKind, Phase

PACKAGE_DIR = Path(__file__).parent / "templates"

_INTERNAL_STATUS = {
    Phase.DETECT: "Investigating",
    Phase.INVESTIGATE: "Investigating",
    Phase.FIX: "Fixing",
    Phase.MONITOR: "Monitoring",
    Phase.RESOLVE: "Resolved",
    Phase.DISMISSED: "Dismissed",
}


MEDIA = {"console": "txt", "slack": "mrkdwn", "statuspage": "txt", "email": "txt"}
"""Every medium the project ships templates for, with its file extension."""

STATUSPAGE_KINDS = (
    "name",
    "investigating",
    "identified",
    "monitoring",
    "resolved",
    "dismissed",
    "update",
)
"""Status-page templates: the public incident name, one per public status, and updates."""

EMAIL_KINDS = ("customer_subject", "customer_body")
"""Customer e-mail templates."""


class Trusted(str):
    """Text built by the project itself (mentions, links) that must not be escaped again."""

    __slots__ = ()


def mrkdwn_finalize(value: Any) -> Any:
    """Slack autoescape: untrusted values cannot form mentions or links."""
    if value is None:
        return ""
    if isinstance(value, Trusted):
        return value
    return escape_mrkdwn(str(value))


class TemplateConfigError(ValueError):
    """A template is missing or does not compile; the message names it."""


def hhmm(value: datetime | None) -> str:
    """``14:05 UTC`` for a time, ``—`` when there is none."""
    return "—" if value is None else f"{value:%H:%M} UTC"


def when(value: datetime | None) -> str:
    """``2026-11-28 14:00 UTC`` for a time, ``—`` when there is none."""
    return "—" if value is None else f"{value:%Y-%m-%d %H:%M} UTC"


def humanize(seconds: float) -> str:
    """``1h 05m`` style duration."""
    minutes = int(seconds // 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes} min" if minutes else f"{int(seconds)} s"


class Templates:
    """A validated set of message templates for several media.

    Args:
        media: media to load and check, each mapped to its file extension
            (``{"console": "txt"}``); every notification kind must have a template.
        override_dir: optional directory whose files replace the shipped ones.
        escape: per-medium function applied to every ``{{ value }}`` (autoescape),
            e.g. Slack mrkdwn or HTML escaping.
        filters: extra filters by name.
        kinds: template names each medium must have (default: one per notification kind).
    """

    def __init__(
        self,
        *,
        media: Mapping[str, str],
        override_dir: Path | None = None,
        escape: Mapping[str, Callable[[str], str]] | None = None,
        filters: Mapping[str, Callable[..., Any]] | None = None,
        kinds: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        loaders = [FileSystemLoader(str(PACKAGE_DIR))]
        if override_dir is not None:
            if not override_dir.is_dir():
                raise TemplateConfigError(f"template directory not found: {override_dir}")
            loaders.insert(0, FileSystemLoader(str(override_dir)))
        self._media = dict(media)
        self._escape = dict(escape or {})
        every_kind = [kind.value for kind in NotificationKind]
        self._kinds = {medium: list((kinds or {}).get(medium, every_kind)) for medium in media}
        self._envs: dict[str, SandboxedEnvironment] = {}
        for medium in self._media:
            env = SandboxedEnvironment(
                loader=ChoiceLoader(loaders),
                undefined=StrictUndefined,
                keep_trailing_newline=False,
                trim_blocks=False,
                autoescape=False,
                finalize=self._escape.get(medium, _plain),
            )
            env.filters["hhmm"] = hhmm
            env.filters["when"] = when
            env.filters["humanize"] = humanize
            env.filters.update(filters or {})
            self._envs[medium] = env
        self._check()

    def _name(self, medium: str, kind: str) -> str:
        return f"{medium}/{kind}.{self._media[medium]}.j2"

    def _check(self) -> None:
        for medium, env in self._envs.items():
            for kind in self._kinds[medium]:
                name = self._name(medium, kind)
                try:
                    env.get_template(name)
                except TemplateError as error:
                    raise TemplateConfigError(f"template {name}: {error}") from None

    def render(self, medium: str, notification: Notification, **extra: Any) -> str:
        """Render ``notification`` for ``medium``; values are escaped for that medium.

        ``extra`` adds variables or replaces the standard ones (see :func:`context_of`).
        """
        context = {**context_of(notification), **extra}
        return self.render_named(medium, notification.kind.value, **context)

    def render_named(self, medium: str, kind: str, **context: Any) -> str:
        """Render the template ``kind`` of ``medium`` with an explicit context."""
        template = self._envs[medium].get_template(self._name(medium, kind))
        return template.render(**context).strip()


def _plain(value: Any) -> Any:
    return "" if value is None else value


def context_of(notification: Notification) -> dict[str, Any]:
    """Template variables for a notification: ``n``, ``i`` and helpers."""
    incident = notification.incident
    end = incident.resolved_at or notification.at
    return {
        "n": notification,
        "i": incident,
        "targets": " ".join(notification.targets) or (incident.commander or "responders"),
        "internal_status": _INTERNAL_STATUS[incident.phase],
        "status_page_url": incident.status_page_url,
        "duration": humanize((end - incident.declared_at).total_seconds()),
        "downtime": humanize(downtime(incident, until=notification.at).total_seconds()),
        "channel": "#" + incident_channel_name(incident),
    }


def standard_templates(override_dir: Path | None = None) -> Templates:
    """Every shipped medium (console, Slack, status page, e-mail), checked now."""
    return Templates(
        media=MEDIA,
        override_dir=override_dir,
        escape={"slack": mrkdwn_finalize},
        kinds={"statuspage": STATUSPAGE_KINDS, "email": EMAIL_KINDS},
    )
