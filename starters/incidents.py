"""Starting incident workflows, shared by the CLI and the webhook service."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from domain import launch
from domain.incident import IncidentView
from domain.models import Declaration
from workflows.incident import IncidentInput, IncidentWorkflow


def new_incident_id(now: datetime | None = None) -> str:
    """A human-friendly unique ID such as ``INC-20261126-7QK3``."""
    return launch.incident_id(now or datetime.now(UTC), secrets.choice)


ID_ATTEMPTS = 5
"""Fresh IDs tried when a generated one is taken (a day has 32^4 of them)."""


async def start_incident(
    client: Client,
    declaration: Declaration,
    *,
    task_queue: str,
    incident_id: str | None = None,
    new_id: Callable[[], str] = new_incident_id,
) -> WorkflowHandle[IncidentWorkflow, IncidentView]:
    """Start a new incident workflow; its workflow ID is the incident ID.

    A generated ID that an earlier incident of the day already has is replaced by a
    fresh one; an ``incident_id`` given by the caller is used as it is.

    Raises:
        WorkflowAlreadyStartedError: ``incident_id`` is taken, or no generated ID was free.
    """
    for attempt in range(1 if incident_id else ID_ATTEMPTS):
        try:
            return await client.start_workflow(
                IncidentWorkflow.run,
                IncidentInput(declaration=declaration),
                id=incident_id or new_id(),
                task_queue=task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=launch.initial_search_attributes(declaration),
                memo=launch.memo(declaration),
                static_summary=launch.static_summary(declaration),
            )
        except WorkflowAlreadyStartedError:
            if incident_id or attempt == ID_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable: the last attempt returns or raises")
