"""Starting an incident from another workflow (an alert group, an alert intake)."""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from domain import launch
    from domain.models import AlertEvent, Declaration
    from workflows.incident import IncidentInput, IncidentWorkflow

ID_ATTEMPTS = 5
"""Fresh incident IDs tried before giving up (IDs are random per day)."""


async def start_incident(
    declaration: Declaration, first_alert: AlertEvent | None = None
) -> str | None:
    """Start an incident as an abandoned child with a fresh ID; None if no ID was free.

    The child outlives its parent, never reuses an ID of an earlier incident, and looks
    in the Temporal UI as one started from the CLI does. ``first_alert`` is the alert
    that opens it, handed over in its input.
    """
    for _ in range(ID_ATTEMPTS):
        incident_id = launch.incident_id(workflow.now(), workflow.random().choice)
        try:
            await workflow.start_child_workflow(
                IncidentWorkflow.run,
                IncidentInput(declaration=declaration, first_alert=first_alert),
                id=incident_id,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                search_attributes=launch.initial_search_attributes(declaration),
                memo=launch.memo(declaration),
                static_summary=launch.static_summary(declaration),
            )
        except WorkflowAlreadyStartedError:
            continue
        return incident_id
    return None
