"""Starting incident workflows, shared by the CLI and the webhook service."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from domain import launch
from domain.incident import IncidentView
from domain.models import Declaration
from workflows.incident import IncidentInput, IncidentWorkflow


def new_incident_id(now: datetime | None = None) -> str:
    """A human-friendly unique ID such as ``INC-20261126-7QK3``."""
    return launch.incident_id(now or datetime.now(UTC), secrets.choice)


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
        search_attributes=launch.initial_search_attributes(declaration),
        memo=launch.memo(declaration),
        static_summary=launch.static_summary(declaration),
    )
