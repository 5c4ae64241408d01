"""What a new incident workflow starts with: its ID, UI summary, memo and search attributes.

Shared by the starters (CLI, webhooks) and the alert-group workflow, so an
incident looks the same in the Temporal UI however it was opened.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from temporalio.common import SearchAttributePair, TypedSearchAttributes

from domain import search_attributes as sa
from domain.models import Declaration, Phase, cap_text
from domain.text import escape_markdown, strip_unsafe

INCIDENT_WORKFLOW_TYPES = ("Incident", "IncidentWorkflow")
"""Workflow types of incidents: today's, and the first release's (still finishing)."""
INCIDENT_TYPES_QUERY = "WorkflowType IN ({})".format(
    ", ".join(f"'{name}'" for name in INCIDENT_WORKFLOW_TYPES)
)
"""Visibility clause matching every incident, whichever workflow type runs it."""

ALERT_GROUP_PREFIX = "alertgroup-"
"""Workflow IDs of alert groups start with this."""

ID_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
"""Characters of an incident ID's suffix (no 0/O, 1/I)."""


def incident_id(day: datetime, choice: Callable[[Sequence[str]], str]) -> str:
    """A human-friendly ID such as ``INC-20261126-7QK3``.

    Args:
        day: the declaration date.
        choice: picks one character; ``secrets.choice`` in starters,
            ``workflow.random().choice`` in workflows.
    """
    suffix = "".join(choice(ID_ALPHABET) for _ in range(4))
    return f"INC-{day:%Y%m%d}-{suffix}"


SUMMARY_LIMIT = 200
"""Characters of an incident's static summary: one line in the list view and the
Relationships tab (the UI cuts longer ones anyway)."""
SUMMARY_SERVICE_LIMIT = 40
"""Characters of the service in the summary, so a long one leaves room for the title."""


def static_summary(declaration: Declaration) -> str:
    """The one-line summary shown for the workflow in the Temporal UI: ``P1 · checkout · title``.

    Set at start only: continue-as-new does not carry it and the SDK cannot set it
    again there, so later runs of a long incident show no summary (the memo keeps the
    title, and the current details are published again by each run).
    """
    parts = [declaration.severity.value]
    if service := inert(declaration.service, SUMMARY_SERVICE_LIMIT):
        parts.append(service)
    prefix = " · ".join(parts) + " · "
    return prefix + inert(declaration.title, SUMMARY_LIMIT - len(prefix))


def inert(text: str, limit: int) -> str:
    """Untrusted text as one inert markdown line of at most ``limit`` characters.

    Unsafe characters go first; the text is cut before an escape rather than
    inside one, so a cut never leaves a dangling backslash.
    """
    line = strip_unsafe(text, single_line=True)
    escaped = escape_markdown(line)
    if len(escaped) <= limit:
        return escaped
    kept: list[str] = []
    size = 0
    for char in line:
        piece = " " if char == " " else escape_markdown(char)
        if size + len(piece) > limit - 1:
            break
        kept.append(piece)
        size += len(piece)
    return "".join(kept).rstrip() + "…"


def memo(declaration: Declaration) -> dict[str, str]:
    """The memo listings read the title from."""
    return {"title": cap_text(declaration.title, 300)}


def initial_search_attributes(declaration: Declaration) -> TypedSearchAttributes:
    """Search attributes set at start, so listings see the incident at once."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(sa.PHASE, Phase.DETECT.value),
            SearchAttributePair(sa.SEVERITY, declaration.severity.value),
            SearchAttributePair(sa.SERVICE, sa.keyword(declaration.service)),
            SearchAttributePair(sa.COMMANDER, sa.keyword(declaration.commander or "")),
            SearchAttributePair(sa.SLA_BREACHED, False),
        ]
    )
