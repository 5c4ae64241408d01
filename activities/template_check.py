"""Rehearses every template once at start-up with sample data.

Compiling catches syntax errors; rendering also catches a misspelt variable
(templates use ``StrictUndefined``), so an override directory with a typo stops
the worker before an incident instead of during one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from activities.email import email_context
from activities.slack.channel import slack_context
from activities.status_provider import public_text
from activities.templates import (
    EMAIL_KINDS,
    STATUSPAGE_KINDS,
    TemplateConfigError,
    Templates,
    Trusted,
)
from domain.models import IncidentFacts, Notification, NotificationKind, Phase, Severity


def _sample(kind: NotificationKind) -> Notification:
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    facts = IncidentFacts(
        id="INC-20260101-TEST",
        title="Sample incident",
        severity=Severity.P1,
        phase=Phase.RESOLVE if kind is NotificationKind.RESOLVED else Phase.INVESTIGATE,
        service="api",
        commander="alice",
        impact="sample impact",
        eta="soon",
        declared_at=start,
        detected_at=start,
        acknowledged_at=start,
        resolved_at=start + timedelta(hours=2),
        ack_deadline=start,
        resolve_deadline=start,
        next_update_at=start,
        update_interval_seconds=900,
        postmortem_due_at=start,
        postmortem_url="https://example.com/pm",
        status_page_url="https://status.example.com",
    )
    return Notification(
        key="INC-20260101-TEST/1",
        kind=kind,
        incident=facts,
        at=start + timedelta(hours=2),
        targets=["@alice"],
        text="sample text",
        actor="alice",
    )


def rehearse(templates: Templates) -> None:
    """Render every shipped or overridden template once.

    Raises:
        TemplateConfigError: naming the template and the problem.
    """
    slack = slack_context(
        channel=Trusted("<#C1>"), ic=Trusted("<@U1>"), mentions=Trusted("<@U1>"), actor="alice"
    )
    for kind in NotificationKind:
        sample = _sample(kind)
        with _template(f"console/{kind.value}"):
            templates.render("console", sample)
        with _template(f"slack/{kind.value}"):
            templates.render("slack", sample, **slack)
    resolved = _sample(NotificationKind.RESOLVED)
    for name in STATUSPAGE_KINDS:
        with _template(f"statuspage/{name}"):
            public_text(templates, name, resolved.incident, "sample text")
    for name in EMAIL_KINDS:
        with _template(f"email/{name}"):
            templates.render_named("email", name, **email_context(resolved))


@contextmanager
def _template(name: str) -> Iterator[None]:
    try:
        yield
    except Exception as error:  # any failure to render is a configuration error
        raise TemplateConfigError(f"template {name} does not render: {error}") from None
