"""An ``Incident`` run as releases before the single dispatcher ran it (for tests).

Its own module, with nothing but workflow imports, because the workflow sandbox
imports the module a workflow class is defined in.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.incident import IncidentView
    from workers.wiring import WORKFLOWS
    from workflows.incident import IncidentInput, IncidentWorkflow


@workflow.defn(name="Incident")
class PreDispatcherIncident(IncidentWorkflow):
    """Decides no ``incident-single-dispatcher`` patch: the path of runs started before it."""

    @workflow.init
    def __init__(self, input: IncidentInput) -> None:
        super().__init__(input)

    @workflow.run
    async def run(self, input: IncidentInput) -> IncidentView:
        """As :meth:`IncidentWorkflow.run`."""
        return await super().run(input)

    def _decide_dispatcher(self) -> bool:
        return False


PRE_DISPATCHER = [PreDispatcherIncident if w is IncidentWorkflow else w for w in WORKFLOWS]
"""The worker's workflows with the pre-dispatcher ``Incident``."""
