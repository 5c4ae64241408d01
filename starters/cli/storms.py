"""``incident dismiss --all-from-storm``: close an alert storm's noise in one step.

An alert-storm incident is opened by its source's alert intake once more new
incidents arrived in a minute than the policy admits. The intake remembers the
alert groups it admitted in the minute before the storm; their open incidents
are the noise that came with it. Each is dismissed (those a responder already
took past Investigate are left alone and reported), then the storm itself.
"""

from __future__ import annotations

from pydantic import BaseModel
from temporalio.client import WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError

from domain.models import DismissInput
from starters.cli.session import CliError, Incidents
from workflows.alert_group import AlertGroupWorkflow, GroupState
from workflows.alert_intake import AlertIntakeWorkflow
from workflows.incident import IncidentWorkflow


class StormDismissal(BaseModel):
    """What happened to one incident of the storm."""

    incident_id: str
    """The incident."""
    dismissed: bool
    """Whether it is dismissed now."""
    message: str
    """The workflow's answer: its result, or why it refused."""


async def dismiss_storm(
    incidents: Incidents, storm_id: str, *, responder: str, reason: str
) -> list[StormDismissal]:
    """Dismiss every incident that came with ``storm_id``, then the storm incident.

    Raises:
        CliError: when ``storm_id`` is not an alert-storm incident.
    """
    storm = await incidents.view(storm_id)
    intake_id = storm.alert_group or ""
    if not intake_id.startswith("alertintake-"):
        raise CliError(f"{storm_id} is not an alert-storm incident (it has no alert intake)")
    client = incidents.client
    intake_handle: WorkflowHandle[AlertIntakeWorkflow, None] = client.get_workflow_handle_for(
        AlertIntakeWorkflow.run, intake_id
    )
    try:
        intake = await intake_handle.query(AlertIntakeWorkflow.view)
    except (RPCError, WorkflowQueryFailedError) as error:
        raise CliError(f"cannot read the alert intake {intake_id}: {error}") from None
    noise: list[str] = []
    if intake.storm_incident == storm_id:
        for group_id in intake.storm_groups:
            handle: WorkflowHandle[AlertGroupWorkflow, GroupState] = client.get_workflow_handle_for(
                AlertGroupWorkflow.run, group_id
            )
            try:
                group = await handle.query(AlertGroupWorkflow.view)
            except (RPCError, WorkflowQueryFailedError):
                continue  # the group is gone: so is anything it opened
            opened = group.open_incident or group.last_incident
            if opened and opened != storm_id and opened not in noise:
                noise.append(opened)
    command = DismissInput(responder=responder, reason=reason)
    outcomes: list[StormDismissal] = []
    for incident_id in [*noise, storm_id]:
        try:
            result = await incidents.command(incident_id, IncidentWorkflow.dismiss, command)
        except CliError as refused:
            outcomes.append(
                StormDismissal(incident_id=incident_id, dismissed=False, message=refused.message)
            )
            continue
        outcomes.append(
            StormDismissal(incident_id=incident_id, dismissed=True, message=result.message)
        )
    return outcomes
