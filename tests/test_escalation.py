"""Acknowledge SLA: a missed acknowledgement walks the escalation chain on time."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.testing import WorkflowEnvironment

from domain.models import AcknowledgeInput, EventKind, Severity
from domain.policy import Policy, policy_from_mapping
from tests.conftest import Outbox, new_worker
from tests.helpers import close_to, declare, offsets, view
from workflows.clocks import page_offset, total_pages
from workflows.incident import IncidentWorkflow

POLICY = Policy()


@pytest.mark.parametrize("severity", list(Severity))
async def test_missed_ack_walks_every_level_at_its_offset(
    ts_env: WorkflowEnvironment, outbox: Outbox, severity: Severity
) -> None:
    sla = POLICY.for_severity(severity).ack_sla
    pages = total_pages(POLICY)
    async with new_worker(ts_env.client, policy=POLICY, channels=[outbox.channel]) as worker:
        handle = await declare(ts_env.client, worker, severity=severity)
        await ts_env.sleep(sla + page_offset(pages - 1, POLICY) + timedelta(hours=2))
        incident = await view(handle)

    expected = [sla + page_offset(step, POLICY) for step in range(pages)]
    assert close_to(offsets(incident, EventKind.ESCALATION_PAGE), expected)
    assert close_to(offsets(incident, EventKind.ACK_SLA_BREACHED), [sla])
    assert incident.pages_sent == pages
    paged = [r["targets"] for r in outbox.records(handle.id) if r["kind"] == "page"]
    levels = [level.targets for level in POLICY.escalation.levels]
    assert paged == levels * POLICY.escalation.repeat


@pytest.mark.parametrize("severity", list(Severity))
async def test_acknowledging_stops_the_chain(
    ts_env: WorkflowEnvironment, outbox: Outbox, severity: Severity
) -> None:
    sla = POLICY.for_severity(severity).ack_sla
    first_delay = POLICY.escalation.levels[0].delay
    async with new_worker(ts_env.client, policy=POLICY, channels=[outbox.channel]) as worker:
        handle = await declare(ts_env.client, worker, severity=severity)
        await ts_env.sleep(sla + first_delay + timedelta(seconds=30))
        result = await handle.execute_update(
            IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bob")
        )
        await ts_env.sleep(POLICY.escalation_cycle() * POLICY.escalation.repeat + sla)
        incident = await view(handle)

    assert result.phase.value == "Investigate"
    assert close_to(offsets(incident, EventKind.ESCALATION_PAGE), [sla, sla + first_delay])
    assert incident.commander == "bob"
    assert [r["kind"] for r in outbox.records(handle.id)].count("page") == 2


async def test_acknowledged_in_time_pages_nobody(
    ts_env: WorkflowEnvironment, outbox: Outbox
) -> None:
    async with new_worker(ts_env.client, policy=POLICY, channels=[outbox.channel]) as worker:
        handle = await declare(ts_env.client, worker, severity=Severity.P0)
        await ts_env.sleep(timedelta(minutes=4))
        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="ann"))
        await ts_env.sleep(timedelta(hours=1))
        incident = await view(handle)
    assert offsets(incident, EventKind.ESCALATION_PAGE) == []
    assert "page" not in outbox.kinds(handle.id)


async def test_steps_due_while_no_worker_ran_are_all_paged_at_once(
    dev_env: WorkflowEnvironment, outbox: Outbox
) -> None:
    """A worker (or server) outage over several escalation steps skips no level."""
    policy = policy_from_mapping(
        {
            "severities": {"P1": {"ack_sla": "2s"}},
            "escalation": {
                "levels": [
                    {"targets": ["@primary"], "delay": "1s"},
                    {"targets": ["@secondary", "@leads"], "delay": "1h"},
                    {"targets": ["@director"], "delay": "1h"},
                ]
            },
        }
    )
    client = dev_env.client
    async with new_worker(client, policy=policy, channels=[outbox.channel]) as worker:
        handle = await declare(client, worker, severity=Severity.P1)
        await handle.query(IncidentWorkflow.view)  # declared, clocks armed
        queue = worker.task_queue
    # No worker while the first two levels come due (at 2 s and 3 s).
    await asyncio.sleep(4.5)
    async with new_worker(client, policy=policy, channels=[outbox.channel], task_queue=queue):
        for _ in range(100):
            if (await view(handle)).pages_sent:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # delivered
        incident = await view(handle)
        await handle.terminate("test over")

    pages = [r for r in outbox.records(handle.id) if r["kind"] == "page"]
    assert len(pages) == 1, "one message, not a burst"
    assert pages[0]["targets"] == ["@primary", "@secondary", "@leads"]
    assert pages[0]["text"] == (
        "escalation level 1/3, round 1; level 2/3, round 1 (2 steps came due together)"
    )
    assert incident.pages_sent == 2
