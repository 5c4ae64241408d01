"""A whole incident on the real dev server: the Web UI's view of it at every phase.

The worker runs with ``max_cached_workflows=0``, so every workflow task replays
the history from the start: any non-determinism would fail this test.
"""

from __future__ import annotations

import asyncio

from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from domain import search_attributes as sa
from domain.models import (
    AcknowledgeInput,
    AlertEvent,
    EventKind,
    Phase,
    PhaseInput,
    PostmortemInput,
    Severity,
    StatusUpdateInput,
)
from domain.policy import policy_from_mapping
from tests.conftest import Outbox, new_worker
from tests.helpers import declare, view
from workers.wiring import build_worker
from workflows.incident import IncidentWorkflow

FAST = policy_from_mapping(
    {
        "severities": {
            "P1": {
                "ack_sla": "1h",
                "resolve_sla": "1s",
                "update_interval": "1h",
                "nudge_before": "5m",
                "monitor_window": "2s",
            }
        },
        "postmortem": {"deadline": "1h", "reminder_before": "30m"},
    }
)


async def listed(client: Client, query: str, *, expect: int = 1) -> list[str]:
    """IDs matching a visibility query, waiting for visibility to catch up."""
    ids: list[str] = []
    for _ in range(100):
        ids = [wf.id async for wf in client.list_workflows(query)]
        if len(ids) == expect:
            return ids
        await asyncio.sleep(0.1)
    raise AssertionError(f"{query!r} matched {ids}, expected {expect}")


async def test_search_attributes_and_list_queries_follow_each_phase(
    dev_env: WorkflowEnvironment, outbox: Outbox
) -> None:
    client = dev_env.client
    options = {"max_cached_workflows": 0}
    async with new_worker(client, policy=FAST, channels=[outbox.channel], **options) as worker:
        handle = await declare(client, worker, severity=Severity.P1, service="payments")
        me = f"WorkflowId = '{handle.id}'"
        await listed(client, f"{me} AND IncidentPhase = 'Detect' AND IncidentService = 'payments'")
        await listed(client, f"{me} AND IncidentSlaBreached = true")  # 1 s resolve SLA

        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bob"))
        await listed(
            client, f"{me} AND IncidentPhase = 'Investigate' AND IncidentCommander = 'bob'"
        )
        await listed(client, f"{me} AND IncidentAcknowledgedAt IS NOT NULL")

        for phase in ("fix", "monitor"):
            await handle.execute_update(
                IncidentWorkflow.set_phase, PhaseInput(responder="bob", phase=phase)
            )
            await listed(client, f"{me} AND IncidentPhase = '{phase.title()}'")
        await handle.signal(
            IncidentWorkflow.alert_fired, AlertEvent(key="k1", source="grafana", summary="5xx")
        )
        await listed(client, f"{me} AND IncidentPhase = 'Fix'")
        await handle.execute_update(
            IncidentWorkflow.post_update,
            StatusUpdateInput(responder="bob", text="second rollback", impact="EU only"),
        )
        await handle.execute_update(
            IncidentWorkflow.set_phase, PhaseInput(responder="bob", phase="monitor")
        )
        # The 2-second Monitor window passes without recurrence: auto-resolve.
        await listed(
            client, f"{me} AND IncidentPhase = 'Resolve' AND IncidentResolvedAt IS NOT NULL"
        )

        description = await handle.describe()
        summary = await description.static_summary()
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)

        done = await handle.execute_update(
            IncidentWorkflow.record_postmortem,
            PostmortemInput(responder="bob", url="https://wiki.example.com/pm"),
        )
        final = await handle.result()

    assert summary == "P1 · payments · API returns 500s"
    assert "Resolve" in metadata.current_details and "bob" in metadata.current_details
    attributes = description.typed_search_attributes
    assert attributes.get(sa.SEVERITY) == "P1" and attributes.get(sa.SLA_BREACHED) is True
    assert done.phase is Phase.RESOLVE and "closed" in done.message
    assert final.closed and final.impact == "EU only"
    kinds = [e.kind for e in final.timeline]
    for expected in (
        EventKind.DECLARED,
        EventKind.RESOLVE_SLA_BREACHED,
        EventKind.ACKNOWLEDGED,
        EventKind.RECURRENCE,
        EventKind.UPDATE_POSTED,
        EventKind.RESOLVED,
        EventKind.POSTMORTEM_RECORDED,
        EventKind.CLOSED,
    ):
        assert expected in kinds
    assert outbox.kinds(handle.id)[0] == "declared"
    assert "postmortem_done" in outbox.kinds(handle.id)


async def test_list_filters_by_phase_and_severity(dev_env: WorkflowEnvironment) -> None:
    client = dev_env.client
    async with new_worker(client, policy=FAST) as worker:
        p0 = await declare(client, worker, severity=Severity.P0, service="svc-list")
        p2 = await declare(client, worker, severity=Severity.P2, service="svc-list")
        await p2.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="amy"))
        mine = "IncidentService = 'svc-list' AND ExecutionStatus = 'Running'"
        assert await listed(client, f"{mine} AND IncidentSeverity = 'P0'") == [p0.id]
        assert await listed(client, f"{mine} AND IncidentPhase = 'Investigate'") == [p2.id]
        assert sorted(await listed(client, mine, expect=2)) == sorted([p0.id, p2.id])
        assert (await view(p0)).next_update_at is not None
        for handle in (p0, p2):
            await handle.terminate(reason="test done")


async def test_clocks_due_together_fire_in_order_and_disarm_each_other(
    dev_env: WorkflowEnvironment,
) -> None:
    """The worker is down while both the Monitor window and the resolve SLA pass:
    the auto-resolve comes first, so the SLA was met and no breach is reported."""
    policy = policy_from_mapping(
        {"severities": {"P1": {"resolve_sla": "3s", "monitor_window": "1s"}}}
    )
    client = dev_env.client
    async with new_worker(client, policy=policy) as worker:
        handle = await declare(client, worker, severity=Severity.P1)
        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bob"))
        for phase in ("fix", "monitor"):
            await handle.execute_update(
                IncidentWorkflow.set_phase, PhaseInput(responder="bob", phase=phase)
            )
        task_queue = worker.task_queue
    await asyncio.sleep(4)  # both deadlines pass while no worker runs
    async with build_worker(client, task_queue=task_queue, policy=policy, channels=[]):
        await listed(client, f"WorkflowId = '{handle.id}' AND IncidentPhase = 'Resolve'")
        incident = await view(handle)

    kinds = [event.kind for event in incident.timeline]
    assert EventKind.RESOLVED in kinds
    assert EventKind.RESOLVE_SLA_BREACHED not in kinds
    assert not incident.sla_breached
