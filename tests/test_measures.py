"""The facts an incident publishes for the metrics: its phase clock and the ``measures``
memo, read back from a visibility listing on the dev server (never from a query)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from domain.incident import PhaseClock
from domain.measures import MEASURES_MEMO, IncidentMeasures
from domain.models import AcknowledgeInput, DismissInput, Phase, PhaseInput, RecordInput, Severity
from domain.policy import policy_from_mapping
from tests.conftest import new_worker
from tests.helpers import declare, view
from workflows.incident import IncidentWorkflow

SLOW_ACK = policy_from_mapping({"severities": {"P2": {"ack_sla": "1h"}}})

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def test_phase_clock_sums_each_stint_and_keeps_first_entries() -> None:
    clock = PhaseClock.start(Phase.DETECT, T0)
    clock.move(Phase.DETECT, Phase.INVESTIGATE, T0 + timedelta(minutes=3))
    clock.move(Phase.INVESTIGATE, Phase.FIX, T0 + timedelta(minutes=15))
    clock.move(Phase.FIX, Phase.MONITOR, T0 + timedelta(minutes=23))
    clock.move(Phase.MONITOR, Phase.FIX, T0 + timedelta(minutes=25))  # it came back
    clock.move(Phase.FIX, Phase.FIX, T0 + timedelta(minutes=26))  # no change: no stint
    now = T0 + timedelta(minutes=30)
    assert clock.first_entered[Phase.FIX] == T0 + timedelta(minutes=15)
    assert clock.first_entered[Phase.MONITOR] == T0 + timedelta(minutes=23)
    assert clock.spent(Phase.DETECT, Phase.FIX, now) == 180
    assert clock.spent(Phase.MONITOR, Phase.FIX, now) == 120
    assert clock.spent(Phase.FIX, Phase.FIX, now) == (8 + 5) * 60
    assert clock.spent(Phase.RESOLVE, Phase.FIX, now) == 0


async def _listed_measures(client: Client, incident_id: str) -> IncidentMeasures | None:
    async for execution in client.list_workflows(f"WorkflowId = '{incident_id}'"):
        memo = await execution.memo()
        if MEASURES_MEMO in memo:
            return IncidentMeasures.model_validate(memo[MEASURES_MEMO])
    return None  # not listed, or not published yet


async def _until_listed(client: Client, incident_id: str, *, phase: Phase) -> IncidentMeasures:
    for _ in range(100):
        measures = await _listed_measures(client, incident_id)
        if measures is not None and measures.phase is phase:
            return measures
        await asyncio.sleep(0.1)
    raise AssertionError(f"{incident_id} never listed in {phase}")


async def test_listing_carries_the_measures_of_each_change(dev_env: WorkflowEnvironment) -> None:
    client = dev_env.client
    async with new_worker(client, policy=SLOW_ACK) as worker:
        handle = await declare(client, worker, severity=Severity.P2, service="checkout")
        started = await _until_listed(client, handle.id, phase=Phase.DETECT)
        assert (started.severity, started.service, started.source) == (
            Severity.P2,
            "checkout",
            "cli",
        )
        assert started.acknowledged_at is None and started.ack_sla_missed is False
        assert started.ack_deadline == started.declared_at + timedelta(hours=1)

        impact = started.declared_at - timedelta(minutes=7)
        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bob"))
        await handle.execute_update(
            IncidentWorkflow.set_record,
            RecordInput(responder="bob", root_cause_key="deploy/bad-config", impact_started=impact),
        )
        for phase in ("fix", "monitor", "fix", "monitor", "resolve"):
            await handle.execute_update(
                IncidentWorkflow.set_phase, PhaseInput(responder="bob", phase=phase)
            )
        final = await view(handle)
        listed = await _until_listed(client, handle.id, phase=Phase.RESOLVE)

    assert final.phase_clock is not None
    first = final.phase_clock.first_entered
    assert listed.acknowledged_at == final.acknowledged_at
    assert listed.mitigated_at == first[Phase.MONITOR], "the first Monitor entry, not the last"
    assert listed.resolved_at == final.resolved_at
    assert listed.impact_started == impact
    assert listed.root_cause_key == "deploy/bad-config"
    assert listed.dismissed is False and listed.ack_sla_missed is False
    assert listed.postmortem_due_at == final.postmortem_due_at
    assert list(first) == [Phase.DETECT, Phase.INVESTIGATE, Phase.FIX, Phase.MONITOR, Phase.RESOLVE]


async def test_a_dismissed_incident_is_listed_as_dismissed(dev_env: WorkflowEnvironment) -> None:
    client = dev_env.client
    async with new_worker(client, policy=SLOW_ACK) as worker:
        handle = await declare(client, worker, severity=Severity.P2)
        await handle.execute_update(
            IncidentWorkflow.dismiss, DismissInput(responder="bob", reason="test alert")
        )
        listed = await _until_listed(client, handle.id, phase=Phase.DISMISSED)
    assert listed.dismissed is True and listed.resolved_at is not None
    assert listed.postmortem_due_at is None
