"""Alert groups started before the ``AlertGroup`` type: type ``AlertGroupWorkflow``.

They run the current group's code, but decide by patch (recorded in their
histories) whether to publish their open incident, ask the intake and open
bounded incidents, so groups started before each change replay as they ran.
New groups never run this type: each patch marker and its search-attribute
upsert cost a history event and a visibility write per new group.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from domain import launch
    from domain.models import AlertEvent, Declaration
    from workflows import children
    from workflows.alert_group import AlertGroupWorkflow, GroupInput, GroupState
    from workflows.legacy.incident_v1 import IncidentInput as LegacyIncidentInput
    from workflows.legacy.incident_v1 import LegacyIncidentWorkflow

PUBLISH_OPEN_INCIDENT = "publish-open-incident"
"""Patch: the group publishes its open incident in its memo (groups before it do not;
groups started between that change and this patch have unmarked memo upserts and
need the reset in ``docs/operations.md``)."""
STORM_CAP = "storm-cap"
"""Patch: the group asks its source's intake before it opens an incident (see
:mod:`workflows.alert_intake`); before it, it opened one whenever none was open."""
BOUNDED_INCIDENTS = "bounded-incidents"
"""Patch: the group opens ``Incident`` workflows (bounded state), never reusing an ID;
before it, it opened ``IncidentWorkflow`` ones."""


@workflow.defn(name="AlertGroupWorkflow")
class LegacyAlertGroupWorkflow(AlertGroupWorkflow):
    """An alert group of the type before ``AlertGroup``, with its patch decisions."""

    _first_alert_in_input = False  # it signals the opening alert, as its histories show

    @workflow.init
    def __init__(self, input: GroupInput) -> None:
        super().__init__(input)
        # Decided when the run starts, before any handler or await, so that how the
        # server split tasks can never move them.
        self._publishes = workflow.patched(PUBLISH_OPEN_INCIDENT)
        self._bounded = workflow.patched(BOUNDED_INCIDENTS)
        self._capped = workflow.patched(STORM_CAP)

    @workflow.run
    async def run(self, input: GroupInput) -> GroupState:
        """As :meth:`AlertGroupWorkflow.run`."""
        return await super().run(input)

    async def _start_incident(
        self, declaration: Declaration, first_alert: AlertEvent | None
    ) -> str | None:
        if self._bounded:
            return await children.start_incident(declaration, first_alert)
        for _ in range(children.ID_ATTEMPTS):
            incident_id = launch.incident_id(workflow.now(), workflow.random().choice)
            try:
                await workflow.start_child_workflow(
                    LegacyIncidentWorkflow.run,
                    LegacyIncidentInput(declaration=declaration),
                    id=incident_id,
                    parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                    search_attributes=launch.initial_search_attributes(declaration),
                    memo=launch.memo(declaration),
                    static_summary=launch.static_summary(declaration),
                )
            except WorkflowAlreadyStartedError:
                continue
            return incident_id
        return None
