"""Durable clocks per severity: stakeholder updates and nudges, the resolve SLA,
the Monitor window, recurrences, the post-mortem deadline and severity changes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from domain.models import (
    AcknowledgeInput,
    AlertEvent,
    EventKind,
    Phase,
    PhaseInput,
    PostmortemInput,
    Severity,
    SeverityInput,
    StatusUpdateInput,
)
from domain.policy import Policy
from tests.conftest import Outbox, new_worker
from tests.helpers import Handle, close_to, declare, offsets, view
from workflows.incident import IncidentWorkflow

POLICY = Policy()
SEVERITIES = list(Severity)
SECOND = timedelta(seconds=1)


async def ack(handle: Handle, who: str = "bob") -> None:
    await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder=who))


async def move(handle: Handle, phase: str, who: str = "bob") -> None:
    await handle.execute_update(IncidentWorkflow.set_phase, PhaseInput(responder=who, phase=phase))


@pytest.mark.parametrize("severity", SEVERITIES)
async def test_updates_every_interval_with_a_nudge_first(
    ts_env: WorkflowEnvironment, outbox: Outbox, severity: Severity
) -> None:
    clocks = POLICY.for_severity(severity)
    interval, nudge = clocks.update_interval, clocks.nudge_before
    async with new_worker(ts_env.client, policy=POLICY, channels=[outbox.channel]) as worker:
        handle = await declare(ts_env.client, worker, severity=severity, commander="carol")
        await ack(handle, "carol")
        await ts_env.sleep(interval * 3 + SECOND)
        incident = await view(handle)

    acked = incident.acknowledged_at
    assert acked is not None
    since_ack = acked - incident.declared_at
    updates = [since_ack + interval * k for k in (1, 2, 3)]
    assert close_to(offsets(incident, EventKind.STAKEHOLDER_UPDATE), updates)
    assert close_to(offsets(incident, EventKind.NUDGE), [u - nudge for u in updates])
    kinds = [k for k in outbox.kinds(handle.id) if k in ("nudge", "update")]
    assert kinds == ["nudge", "update"] * 3
    nudges = [r for r in outbox.records(handle.id) if r["kind"] == "nudge"]
    assert all(r["targets"] == ["carol"] for r in nudges)
    posted = [r for r in outbox.records(handle.id) if r["kind"] == "update"]
    assert "INCIDENT UPDATE" in posted[0]["rendered"]
    assert "Status: Investigating" in posted[0]["rendered"]


@pytest.mark.parametrize("severity", SEVERITIES)
async def test_a_responder_update_restarts_the_interval(
    ts_env: WorkflowEnvironment, outbox: Outbox, severity: Severity
) -> None:
    interval = POLICY.for_severity(severity).update_interval
    async with new_worker(ts_env.client, policy=POLICY, channels=[outbox.channel]) as worker:
        handle = await declare(ts_env.client, worker, severity=severity)
        await ack(handle)
        await ts_env.sleep(interval / 2)
        await handle.execute_update(
            IncidentWorkflow.post_update,
            StatusUpdateInput(responder="bob", text="rollback started", eta="20 min"),
        )
        await ts_env.sleep(interval + SECOND)
        incident = await view(handle)

    posted = [e.at for e in incident.timeline if e.kind is EventKind.UPDATE_POSTED]
    scheduled = [e.at for e in incident.timeline if e.kind is EventKind.STAKEHOLDER_UPDATE]
    assert len(posted) == 1 and len(scheduled) == 1
    assert abs((scheduled[0] - posted[0]) - interval) < SECOND
    assert incident.eta == "20 min"
    rendered = [r["rendered"] for r in outbox.records(handle.id) if r["kind"] == "update"]
    assert "rollback started" in rendered[0] and "ETA: 20 min" in rendered[0]


@pytest.mark.parametrize("severity", SEVERITIES)
async def test_resolve_sla_breach_notifies_management(
    ts_env: WorkflowEnvironment, outbox: Outbox, severity: Severity
) -> None:
    sla = POLICY.for_severity(severity).resolve_sla
    async with new_worker(ts_env.client, policy=POLICY, channels=[outbox.channel]) as worker:
        handle = await declare(ts_env.client, worker, severity=severity)
        await ack(handle)
        await ts_env.sleep(sla - timedelta(minutes=1))
        before = await view(handle)
        await ts_env.sleep(timedelta(minutes=2))
        after = await view(handle)

    assert not before.sla_breached
    assert after.sla_breached
    assert close_to(offsets(after, EventKind.RESOLVE_SLA_BREACHED), [sla])
    breach = [r for r in outbox.records(handle.id) if r["kind"] == "sla_breach"]
    assert [r["targets"] for r in breach] == [POLICY.notifications.management]


@pytest.mark.parametrize("severity", SEVERITIES)
async def test_monitor_window_ends_in_auto_resolve(
    ts_env: WorkflowEnvironment, outbox: Outbox, severity: Severity
) -> None:
    clocks = POLICY.for_severity(severity)
    async with new_worker(ts_env.client, policy=POLICY, channels=[outbox.channel]) as worker:
        handle = await declare(ts_env.client, worker, severity=severity)
        await ack(handle)
        await move(handle, "fix")
        await move(handle, "monitor")
        await ts_env.sleep(clocks.monitor_window - SECOND * 5)
        still = await view(handle)
        await ts_env.sleep(SECOND * 10)
        incident = await view(handle)

    assert still.phase is Phase.MONITOR
    assert incident.phase is Phase.RESOLVE
    entered = [e.at for e in incident.timeline if e.kind is EventKind.PHASE_CHANGED][-2]
    assert incident.resolved_at is not None
    assert abs(incident.resolved_at - entered - clocks.monitor_window) < SECOND
    assert incident.closed is (not clocks.postmortem_required)
    assert outbox.kinds(handle.id)[-1] == "resolved"


@pytest.mark.parametrize("severity", SEVERITIES)
async def test_recurrence_during_monitor_goes_back_to_fix(
    ts_env: WorkflowEnvironment, outbox: Outbox, severity: Severity
) -> None:
    clocks = POLICY.for_severity(severity)
    alert = AlertEvent(key="fp-1", source="alertmanager", summary="HighErrorRate")
    async with new_worker(ts_env.client, policy=POLICY, channels=[outbox.channel]) as worker:
        handle = await declare(ts_env.client, worker, severity=severity)
        await handle.signal(IncidentWorkflow.alert_fired, alert)
        await ack(handle)
        await move(handle, "fix")
        await handle.signal(IncidentWorkflow.alert_resolved, alert)
        still_fixing = await view(handle)
        await ts_env.sleep(POLICY.alerts.settle_window + timedelta(seconds=1))
        recovered = await view(handle)
        await ts_env.sleep(clocks.monitor_window / 2)
        await handle.signal(IncidentWorkflow.alert_fired, alert)
        await ts_env.sleep(clocks.monitor_window)
        incident = await view(handle)

    assert still_fixing.phase is Phase.FIX, "recovered alerts must settle before Monitor"
    assert recovered.phase is Phase.MONITOR, "all alerts settled moves Fix to Monitor"
    assert incident.phase is Phase.FIX
    assert [e.kind for e in incident.timeline].count(EventKind.RECURRENCE) == 1
    assert incident.alerts[0].count == 2 and incident.alerts[0].firing
    assert "recurrence" in outbox.kinds(handle.id)


@pytest.mark.parametrize("severity", [Severity.P0, Severity.P1])
async def test_postmortem_reminder_then_deadline_escalation(
    ts_env: WorkflowEnvironment, outbox: Outbox, severity: Severity
) -> None:
    pm = POLICY.postmortem
    async with new_worker(ts_env.client, policy=POLICY, channels=[outbox.channel]) as worker:
        handle = await declare(ts_env.client, worker, severity=severity)
        await ack(handle, "dana")
        await move(handle, "resolve", "dana")
        await ts_env.sleep(pm.deadline + timedelta(hours=1))
        incident = await view(handle)
        done = await handle.execute_update(
            IncidentWorkflow.record_postmortem,
            PostmortemInput(responder="dana", url="https://wiki.example.com/pm/1"),
        )
        final = await handle.result()

    resolved = incident.resolved_at
    assert resolved is not None
    reminders = [
        e.at - resolved for e in incident.timeline if e.kind.value == "postmortem_reminder"
    ]
    overdue = [e.at - resolved for e in incident.timeline if e.kind.value == "postmortem_overdue"]
    assert close_to(reminders, [pm.deadline - pm.reminder_before])
    assert close_to(overdue, [pm.deadline])
    escalation = [r for r in outbox.records(handle.id) if r["kind"] == "postmortem_overdue"]
    assert escalation[0]["targets"] == [*pm.escalate_to, "dana"]
    assert "closed" in done.message
    assert final.closed and final.postmortem_url == "https://wiki.example.com/pm/1"


@pytest.mark.parametrize("severity", [Severity.P2, Severity.P3])
async def test_resolving_without_required_postmortem_completes(
    ts_env: WorkflowEnvironment, severity: Severity
) -> None:
    async with new_worker(ts_env.client, policy=POLICY) as worker:
        handle = await declare(ts_env.client, worker, severity=severity)
        await ack(handle)
        await move(handle, "fix")
        await move(handle, "monitor")
        # Resolved by the Monitor window: the test server cannot return the outcome of
        # an update whose workflow completes right after it (the dev-server tests do).
        final = await handle.result()
        with pytest.raises(RPCError):  # the workflow has completed
            await handle.execute_update(
                IncidentWorkflow.record_postmortem, PostmortemInput(responder="bob")
            )
    assert final.closed and final.postmortem_due_at is None


@pytest.mark.parametrize(
    ("start", "changed"),
    [(Severity.P3, Severity.P0), (Severity.P2, Severity.P1), (Severity.P0, Severity.P2)],
)
async def test_severity_change_recomputes_deadlines_from_declaration(
    ts_env: WorkflowEnvironment, start: Severity, changed: Severity
) -> None:
    after = timedelta(minutes=12)
    async with new_worker(ts_env.client, policy=POLICY) as worker:
        handle = await declare(ts_env.client, worker, severity=start)
        await ts_env.sleep(after)
        before = await view(handle)
        await handle.execute_update(
            IncidentWorkflow.change_severity,
            SeverityInput(responder="bob", severity=changed.value, reason="more users hit"),
        )
        now = await view(handle)
        horizon = POLICY.for_severity(changed).resolve_sla + timedelta(minutes=1)
        await ts_env.sleep(horizon - after)
        later = await view(handle)

    new = POLICY.for_severity(changed)
    assert now.severity is changed
    assert now.ack_deadline == before.declared_at + new.ack_sla
    assert now.resolve_deadline == before.declared_at + new.resolve_sla
    pages = offsets(later, EventKind.ESCALATION_PAGE)
    paged_before = offsets(before, EventKind.ESCALATION_PAGE)
    paged_after = pages[len(paged_before) :]
    assert paged_after, "the chain goes on under the new severity"
    assert all(page >= new.ack_sla for page in paged_after)
    if not paged_before:
        # A deadline that already passed fires once, right away (at the change, which the
        # test's sleep puts a few ms either side of `after`); a later one on time.
        [change] = offsets(now, EventKind.SEVERITY_CHANGED)
        assert close_to(paged_after[:1], [max(new.ack_sla, change)])
    assert close_to(offsets(later, EventKind.RESOLVE_SLA_BREACHED), [new.resolve_sla])
