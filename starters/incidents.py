"""Starting incident workflows, shared by the CLI and the webhook service."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)

from domain import search_attributes as sa
from domain.incident import IncidentView
from domain.models import Declaration, cap_text
from workflows.incident import IncidentInput, IncidentWorkflow

_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"


def new_incident_id(now: datetime | None = None) -> str:
    """A human-friendly unique ID such as ``INC-20261126-7QK3``."""
    day = (now or datetime.now(UTC)).strftime("%Y%m%d")
    suffix = "".join(secrets.choice(_ALPHABET) for _ in range(4))
    return f"INC-{day}-{suffix}"


def static_summary(declaration: Declaration) -> str:
    """The one-line summary shown for the workflow in the Temporal UI."""
    return f"{declaration.severity.value} · {declaration.title}"[:200]


def initial_search_attributes(declaration: Declaration) -> TypedSearchAttributes:
    """Search attributes set at start, so listings see the incident at once."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(sa.PHASE, "Detect"),
            SearchAttributePair(sa.SEVERITY, declaration.severity.value),
            SearchAttributePair(sa.SERVICE, declaration.service),
            SearchAttributePair(sa.COMMANDER, declaration.commander or ""),
            SearchAttributePair(sa.SLA_BREACHED, False),
        ]
    )


async def start_incident(
    client: Client,
    declaration: Declaration,
    *,
    task_queue: str,
    incident_id: str | None = None,
) -> WorkflowHandle[IncidentWorkflow, IncidentView]:
    """Start a new incident workflow; its workflow ID is the incident ID."""
    return await client.start_workflow(
        IncidentWorkflow.run,
        IncidentInput(declaration=declaration),
        id=incident_id or new_incident_id(),
        task_queue=task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        search_attributes=initial_search_attributes(declaration),
        memo={"title": cap_text(declaration.title, 300)},
        static_summary=static_summary(declaration),
    )
