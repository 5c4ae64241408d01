"""Continue-as-new mid-incident: all state carried, every timer fires exactly once."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from domain.models import AcknowledgeInput, EventKind, NoteInput, Severity
from domain.policy import Policy
from tests.conftest import Outbox, new_worker
from tests.helpers import close_to, declare, offsets, view
from workflows.clocks import page_offset, total_pages
from workflows.incident import IncidentWorkflow


async def test_continue_as_new_keeps_state_and_fires_each_timer_once(
    ts_env: WorkflowEnvironment, outbox: Outbox
) -> None:
    policy = Policy(max_history_events=50)
    clocks = policy.for_severity(Severity.P1)
    interval = clocks.update_interval
    async with new_worker(ts_env.client, policy=policy, channels=[outbox.channel]) as worker:
        handle = await declare(ts_env.client, worker, severity=Severity.P1, service="checkout")
        await handle.execute_update(
            IncidentWorkflow.add_note, NoteInput(responder="alice", text="customers report 500s")
        )
        await ts_env.sleep(timedelta(hours=3))
        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bob"))
        await ts_env.sleep(timedelta(hours=2) - timedelta(seconds=1))
        incident = await view(handle)
        first_run = ts_env.client.get_workflow_handle(
            handle.id, run_id=handle.first_execution_run_id
        )
        first_history = await first_run.fetch_history()

    assert first_history.events[-1].event_type == (
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    ), "the incident continued as new"

    kinds = [event.kind for event in incident.timeline]
    assert kinds[:2] == [EventKind.DECLARED, EventKind.NOTE]
    assert incident.service == "checkout" and incident.commander == "bob"

    pages = [clocks.ack_sla + page_offset(step, policy) for step in range(total_pages(policy))]
    assert close_to(offsets(incident, EventKind.ESCALATION_PAGE), pages)

    ack_offset = incident.acknowledged_at - incident.declared_at  # type: ignore[operator]
    before_ack = [interval * k for k in range(1, 13)]
    after_ack = [ack_offset + interval * k for k in range(1, 8)]
    updates = offsets(incident, EventKind.STAKEHOLDER_UPDATE)
    assert close_to(updates, before_ack + after_ack), (
        [u.total_seconds() for u in updates],
        [u.total_seconds() for u in before_ack + after_ack],
    )
    # The nudge for the update due right after the test stops has already gone out.
    nudges = [update - clocks.nudge_before for update in [*after_ack, after_ack[-1] + interval]]
    assert close_to(offsets(incident, EventKind.NUDGE), nudges)

    keys = Counter(record["key"] for record in outbox.records(handle.id))
    assert keys and max(keys.values()) == 1, "no notification delivered twice"
    assert close_to(offsets(incident, EventKind.RESOLVE_SLA_BREACHED), [clocks.resolve_sla])
    announcements = 3  # declared, acknowledged, resolve-SLA breach
    assert len(keys) == len(pages) + len(before_ack) + len(after_ack) + len(nudges) + announcements
