"""What an incident publishes as search attributes can always be read back.

The time-skipping test server keeps a Datetime search attribute that a workflow
unsets as an empty value, and the SDK's ``describe()`` then fails with
``TypeError: fromisoformat: argument must be str`` (the webhook asks describe()
of an incident it has not seen before). An incident never unsets what it never
set, so that value never exists.
"""

from __future__ import annotations

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.testing import WorkflowEnvironment

from domain import search_attributes as sa
from domain.models import AcknowledgeInput, Severity
from domain.policy import Policy
from tests.conftest import new_worker
from tests.helpers import declare, settle
from workflows.incident import IncidentWorkflow


async def _stored(env: WorkflowEnvironment, workflow_id: str) -> dict[str, bytes]:
    """The incident's search attributes as the server holds them, undecoded."""
    response = await env.client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=env.client.namespace, execution=WorkflowExecution(workflow_id=workflow_id)
        )
    )
    fields = response.workflow_execution_info.search_attributes.indexed_fields
    return {name: payload.data for name, payload in fields.items()}


async def test_a_new_incident_stores_no_empty_value_and_describes(
    ts_env: WorkflowEnvironment,
) -> None:
    async with new_worker(ts_env.client, policy=Policy()) as worker:
        handle = await declare(ts_env.client, worker, severity=Severity.P2)
        await settle(handle)
        stored = await _stored(ts_env, handle.id)
        assert stored[sa.PHASE.name] == b'"Detect"', stored
        assert sa.ACKNOWLEDGED_AT.name not in stored, stored
        assert sa.RESOLVED_AT.name not in stored, stored
        described = await handle.describe()
        assert described.typed_search_attributes.get(sa.ACKNOWLEDGED_AT) is None

        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bo"))
        await settle(handle)
        acknowledged = (await handle.describe()).typed_search_attributes.get(sa.ACKNOWLEDGED_AT)
        assert acknowledged is not None
        assert sa.RESOLVED_AT.name not in await _stored(ts_env, handle.id)
