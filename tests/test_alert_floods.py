"""Alert floods: flapping, many distinct alerts, large payloads. The incident stays small.

Each test is the worst user of its feature: an alert flipping hundreds of times
a minute, hundreds of distinct alerts with long texts, and a responder's
messages that must still get through at once.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from activities.timeline_archive import TimelineArchive
from domain.models import (
    AcknowledgeInput,
    AlertEvent,
    EventKind,
    NoteInput,
    Notification,
    NotifyResult,
    Phase,
    PhaseInput,
    Severity,
    StatusUpdateInput,
)
from domain.policy import Policy
from tests.conftest import ARCHIVE_DIR, new_worker
from tests.helpers import Handle, declare, view
from workflows import timeline
from workflows.incident import MAX_TRACKED_ALERTS, IncidentWorkflow


class Recorder:
    """A working channel that notes what it delivered and how long each waited."""

    name = "console"

    def __init__(self) -> None:
        self.seen: list[tuple[str, timedelta, str]] = []

    async def deliver(self, notification: Notification) -> NotifyResult:
        started = activity.info().current_attempt_scheduled_time
        self.seen.append((notification.kind.value, started - notification.at, notification.text))
        return NotifyResult()

    def kinds(self) -> list[str]:
        return [kind for kind, _, _ in self.seen]


async def _acknowledged_in_fix(handle: Handle) -> None:
    await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bob"))
    await handle.execute_update(
        IncidentWorkflow.set_phase, PhaseInput(responder="bob", phase="fix")
    )


async def test_a_flapping_alert_changes_no_phase_until_it_settles(
    ts_env: WorkflowEnvironment,
) -> None:
    policy = Policy()
    console = Recorder()
    alert = AlertEvent(key="fp-flap", source="alertmanager", summary="HighErrorRate")
    async with new_worker(ts_env.client, policy=policy, channels=[console]) as worker:
        handle = await declare(ts_env.client, worker, severity=Severity.P0)
        await handle.signal(IncidentWorkflow.alert_fired, alert)
        await _acknowledged_in_fix(handle)
        for flip in range(301):
            signal = (
                IncidentWorkflow.alert_resolved if flip % 2 == 0 else IncidentWorkflow.alert_fired
            )
            await handle.signal(signal, alert)
            if flip == 150:
                await handle.execute_update(
                    IncidentWorkflow.post_update,
                    StatusUpdateInput(responder="bob", text="rolling back deploy 4411"),
                )
        during = await view(handle)
        await ts_env.sleep(policy.alerts.settle_window + timedelta(seconds=5))
        settled = await view(handle)

    changes = [e.text for e in during.timeline if e.kind is EventKind.PHASE_CHANGED]
    assert changes == ["Investigate → Fix"], "flapping moved the incident"
    flapping = [e for e in during.timeline if e.kind is EventKind.ALERT_FLAPPING]
    assert len(flapping) == 1 and "300 status changes" in flapping[0].text, flapping
    assert len(during.timeline) < 15
    assert settled.phase is Phase.MONITOR, "the last recovery settled and moved it to Monitor"
    assert [e.kind for e in settled.timeline].count(EventKind.PHASE_CHANGED) == 2
    assert console.kinds().count("alert_recovered") <= 2
    assert "recurrence" not in console.kinds()
    update = [delay for kind, delay, text in console.seen if text == "rolling back deploy 4411"]
    assert update and update[0] < timedelta(seconds=2), console.seen


async def test_hundreds_of_distinct_alerts_keep_the_incident_small(
    dev_env: WorkflowEnvironment,
) -> None:
    """On the dev server: the time-skipping server reports no history size."""
    policy = Policy(max_history_bytes=256 * 1024)
    summary = "disk almost full on " + "x" * 480
    keys = 250
    async with new_worker(dev_env.client, policy=policy) as worker:
        handle = await declare(dev_env.client, worker, severity=Severity.P2)
        for n in range(keys):
            alert = AlertEvent(
                key=f"fp-{n:04d}-" + "k" * 250,
                source="alertmanager",
                summary=f"{n} {summary}",
                labels={f"label{i}": "v" * 60 for i in range(20)},
            )
            await handle.signal(IncidentWorkflow.alert_fired, alert)
            await handle.signal(IncidentWorkflow.alert_resolved, alert)
        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bob"))
        incident = await view(handle)
        first_run = await dev_env.client.get_workflow_handle(
            handle.id, run_id=handle.first_execution_run_id
        ).fetch_history()
        await dev_env.client.get_workflow_handle(handle.id).terminate(reason="test finished")

    assert incident.phase is Phase.INVESTIGATE, "the incident still takes commands"
    assert len(incident.alerts) == MAX_TRACKED_ALERTS
    assert incident.alerts_untracked == keys - MAX_TRACKED_ALERTS
    assert incident.alert_notifications == 2 * keys
    assert len(incident.timeline) <= timeline.KEPT + timeline.ARCHIVE_BATCH
    assert incident.timeline_archived > 0
    archived = TimelineArchive(ARCHIVE_DIR).read(incident.id)
    stored = [e.seq for e in archived]
    assert stored == sorted(set(stored)), "the archive holds each entry once, in order"
    kept = [e.seq for e in incident.timeline]
    # A batch the archive took just before continue-as-new is forgotten by the state on
    # the next batch: overlap is allowed, gaps are not.
    numbers = sorted(set(stored) | set(kept))
    assert numbers == list(range(1, kept[-1] + 1)), "archive plus state: no entry lost"
    assert len(incident.model_dump_json()) < 512 * 1024
    continued = [
        e
        for e in first_run.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    ]
    assert continued, "the history reached max_history_bytes and continued as new"
    carried = continued[0].workflow_execution_continued_as_new_event_attributes.input
    assert sum(len(p.data) for p in carried.payloads) < 1024 * 1024


async def test_a_note_does_not_restart_the_timer(ts_env: WorkflowEnvironment) -> None:
    async with new_worker(ts_env.client, policy=Policy()) as worker:
        handle = await declare(ts_env.client, worker, severity=Severity.P2)
        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bob"))
        before = len((await handle.fetch_history()).events)
        for n in range(5):
            await handle.execute_update(
                IncidentWorkflow.add_note, NoteInput(responder="bob", text=f"note {n}")
            )
        events = (await handle.fetch_history()).events[before:]

    timers = {EventType.EVENT_TYPE_TIMER_STARTED, EventType.EVENT_TYPE_TIMER_CANCELED}
    assert not [e for e in events if e.event_type in timers], "a note re-armed the timer"
    assert len(events) <= 5 * 5


async def test_a_repeated_firing_then_a_recovery_is_no_flapping(
    ts_env: WorkflowEnvironment,
) -> None:
    alert = AlertEvent(key="fp-repeat", source="alertmanager", summary="DiskFull")
    async with new_worker(ts_env.client, policy=Policy()) as worker:
        handle = await declare(ts_env.client, worker, severity=Severity.P2)
        await handle.signal(IncidentWorkflow.alert_fired, alert)
        await handle.signal(IncidentWorkflow.alert_fired, alert)  # Alertmanager's repeat
        await handle.signal(IncidentWorkflow.alert_resolved, alert)
        incident = await view(handle)

    kinds = [e.kind for e in incident.timeline]
    assert EventKind.ALERT_RESOLVED in kinds
    assert EventKind.ALERT_FLAPPING not in kinds
