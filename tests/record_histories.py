"""Records the workflow histories replayed by ``tests/test_replay.py``.

Run on purpose, when a deliberate change to workflow logic ships, on the
time-skipping server with today's code:

    .venv/bin/python -m tests.record_histories                 # every history
    .venv/bin/python -m tests.record_histories alert_group ...  # some of them

It rewrites the files it names. Keep the old ones under another name first
(``legacy_alert_group_before_storm_cap``, say): running workflows still have those
histories. ``legacy_incident_*`` and ``legacy_alert_group_*`` are workflows of
earlier types (``IncidentWorkflow``, ``AlertGroupWorkflow``) and
``histories/unreplayable`` holds real histories that can never replay (see
``docs/operations.md``); neither is written here.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Literal

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.channels import Channel
from domain.models import (
    AcknowledgeInput,
    AlertEvent,
    CheckInput,
    Declaration,
    DismissInput,
    NoteInput,
    Notification,
    NotifyResult,
    PhaseInput,
    PostmortemInput,
    RecordInput,
    ReviewInput,
    Severity,
    SeverityInput,
    StatusUpdateInput,
)
from domain.policy import Policy, policy_from_mapping
from starters.webhooks.gateway import TemporalGateway
from tests.conftest import Outbox, new_worker, register_search_attributes
from tests.helpers import Handle, declare
from workers.binaries import find_binary
from workflows.alert_group import AlertDelivery, AlertGroupWorkflow, GroupInput, alert_group_id
from workflows.alert_intake import OPENING_DECISION_SIGNAL, AlertIntakeWorkflow, alert_intake_id
from workflows.incident import IncidentWorkflow

HISTORIES = Path(__file__).parent / "histories"
RECORDED_VIEW = Path(__file__).parent / "golden" / "recorded_view.json"
"""The full-lifecycle incident's view just before its post-mortem is recorded."""

_WORKFLOW_TASK_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
}


def first_task_split(history: WorkflowHistory) -> bool:
    """Whether the code after the first local activity ran in a later workflow task.

    A query delivered with the first workflow task makes the worker complete that
    task as soon as the query is answered: with the local-activity marker alone
    when the activity had already finished (the first release then records its
    patch a task late and cannot replay, see
    ``histories/unreplayable/legacy_incident_query_in_first_task.json``), or with
    nothing when it had not. Either way a second WORKFLOW_TASK_COMPLETED comes
    before the first command after the marker; in an unsplit history that command
    directly follows the marker, in the first task.
    """
    events = history.events
    marker = next(
        i
        for i, event in enumerate(events)
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and event.marker_recorded_event_attributes.marker_name == "core_local_activity"
    )
    after = next(
        (
            i
            for i in range(marker + 1, len(events))
            if events[i].event_type not in _WORKFLOW_TASK_EVENTS
        ),
        len(events),
    )
    completed = [
        e for e in events[:after] if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    ]
    return len(completed) >= 2


async def _next_run(client: Client, workflow_id: str, run_id: str) -> str | None:
    """The run ``run_id`` continued as new into, if it has."""
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    last = history.events[-1]
    if last.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
        return None
    return last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id


async def _save(client: Client, workflow_id: str, name: str, *, run_id: str | None = None) -> None:
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json())
    print(f"wrote {name}.json ({len(history.events)} events)")


async def full_lifecycle(env: WorkflowEnvironment, outbox: Outbox) -> None:
    """Every phase, escalation, updates, nudges, recurrence, post-mortem reminder and deadline."""
    async with new_worker(env.client, policy=Policy(), channels=[outbox.channel]) as worker:
        handle = await declare(env.client, worker, severity=Severity.P2, service="checkout")
        alert = AlertEvent(key="fp-1", source="alertmanager", summary="HighErrorRate")
        await handle.signal(IncidentWorkflow.alert_fired, alert)
        await env.sleep(timedelta(hours=1, minutes=10))  # ack SLA missed: pages
        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bob"))
        await handle.execute_update(
            IncidentWorkflow.change_severity,
            SeverityInput(responder="bob", severity="P1", reason="EU checkout down"),
        )
        await env.sleep(timedelta(minutes=20))  # stakeholder update and nudge
        await handle.execute_update(
            IncidentWorkflow.add_note, NoteInput(responder="bob", text="bad deploy 4411")
        )
        await handle.execute_update(
            IncidentWorkflow.set_phase, PhaseInput(responder="bob", phase="fix")
        )
        await handle.execute_update(IncidentWorkflow.check, CheckInput(responder="bob", item="2"))
        declared_at = (await handle.query(IncidentWorkflow.view)).declared_at
        await handle.execute_update(
            IncidentWorkflow.set_record,
            RecordInput(
                responder="dave",
                users_affected="12%",
                services_down=["api", "checkout|payments"],
                data_loss=False,
                revenue_impact=1200,
                customer_complaints=4,
                root_cause="A bad config in deploy 4411 | *not* a [link](http://x)",
                root_cause_key="deploy/bad-config",
                resolution="Rolled back to 4410",
                fix_strategy="rollback",
                impact_started=declared_at - timedelta(minutes=8),
            ),
        )
        await handle.execute_update(
            IncidentWorkflow.post_update,
            StatusUpdateInput(responder="bob", text="rolling back", eta="15 min"),
        )
        await handle.signal(IncidentWorkflow.alert_resolved, alert)  # → Monitor once settled
        await env.sleep(timedelta(minutes=30))
        await handle.signal(IncidentWorkflow.alert_fired, alert)  # recurrence → Fix
        await handle.execute_update(
            IncidentWorkflow.set_phase, PhaseInput(responder="bob", phase="monitor")
        )
        await env.sleep(timedelta(hours=2, minutes=1))  # Monitor window: auto-resolve
        resolved = (await handle.query(IncidentWorkflow.view)).resolved_at
        assert resolved is not None
        await handle.execute_update(
            IncidentWorkflow.schedule_review,
            ReviewInput(responder="bob", at=resolved + timedelta(hours=30), attendees=["@amy"]),
        )
        await env.sleep(timedelta(hours=49))  # review, post-mortem reminder and deadline
        # The view the documents' golden files are rendered from (tests/test_documents.py).
        recorded = await handle.query(IncidentWorkflow.view)
        RECORDED_VIEW.write_text(recorded.model_dump_json(indent=1) + "\n")
        await handle.execute_update(
            IncidentWorkflow.record_postmortem,
            PostmortemInput(responder="bob", url="https://wiki.example.com/pm/1"),
        )
        await handle.result()
    await _save(env.client, handle.id, "incident_full_lifecycle")


async def dismissed(env: WorkflowEnvironment, outbox: Outbox) -> None:
    """A false alarm dismissed from Investigate."""
    async with new_worker(env.client, policy=Policy()) as worker:
        handle = await declare(env.client, worker, severity=Severity.P3)
        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="amy"))
        await handle.execute_update(
            IncidentWorkflow.dismiss, DismissInput(responder="amy", reason="synthetic check")
        )
        await handle.result()
    await _save(env.client, handle.id, "incident_dismissed")


async def continued_as_new(env: WorkflowEnvironment, outbox: Outbox) -> None:
    """Both runs of an incident that continued as new while paging; the second one closes it."""
    policy = Policy(max_history_events=50)
    async with new_worker(env.client, policy=policy, channels=[outbox.channel]) as worker:
        handle = await declare(env.client, worker, severity=Severity.P0)
        first = handle.first_execution_run_id
        assert first is not None
        while (second := await _next_run(env.client, handle.id, first)) is None:
            await env.sleep(timedelta(minutes=5))
        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="cy"))
        await handle.execute_update(
            IncidentWorkflow.set_phase, PhaseInput(responder="cy", phase="resolve")
        )
        await handle.execute_update(
            IncidentWorkflow.record_postmortem, PostmortemInput(responder="cy")
        )
        await handle.result()
        assert await _next_run(env.client, handle.id, second) is None, "it continued as new again"
    await _save(env.client, handle.id, "incident_continued_as_new", run_id=first)
    await _save(env.client, handle.id, "incident_after_continue_as_new", run_id=second)


class BrokenPager:
    """A channel whose every delivery fails for good (revoked credentials, say)."""

    name: str = "pager"

    async def deliver(self, notification: Notification) -> NotifyResult:
        """Refuse, permanently."""
        raise ApplicationError("pager gateway: credentials revoked", non_retryable=True)


async def failed_notify(env: WorkflowEnvironment, outbox: Outbox) -> None:
    """A page that cannot be delivered: recorded, flagged, and paged to the fallback."""
    channels: list[Channel] = [outbox.channel, BrokenPager()]
    async with new_worker(env.client, policy=Policy(), channels=channels) as worker:
        handle = await declare(env.client, worker, severity=Severity.P1)
        await env.sleep(timedelta(minutes=16))  # the ack SLA passes: the first page fails
        view = await handle.query(IncidentWorkflow.view)
        assert view.pages_sent >= 1 and "fallback" in " ".join(e.text for e in view.timeline)
        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="di"))
        await handle.execute_update(
            IncidentWorkflow.dismiss, DismissInput(responder="di", reason="load test")
        )
        await handle.result()
    await _save(env.client, handle.id, "incident_failed_notify")


async def query_in_first_task(env: WorkflowEnvironment, outbox: Outbox) -> None:
    """A query delivered with the first workflow task, which splits that task.

    The server attaches a query that arrives before the first task is picked up
    to that task (a query arriving while the task already runs waits for it to
    complete and splits nothing), so the query is sent before the worker starts.
    """
    worker = new_worker(env.client, policy=Policy())
    handle = await declare(env.client, worker, severity=Severity.P2)
    query = asyncio.create_task(handle.query(IncidentWorkflow.view))
    await asyncio.sleep(0.5)
    async with worker:
        await query
        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="ed"))
        await handle.execute_update(
            IncidentWorkflow.dismiss, DismissInput(responder="ed", reason="duplicate")
        )
        await handle.result()
    history = await handle.fetch_history()
    assert first_task_split(history), "the query did not split the first workflow task"
    await _save(env.client, handle.id, "incident_query_in_first_task")


def _alert_delivery(
    key: str, status: Literal["firing", "resolved"] = "firing", *, summary: str = "HighErrorRate"
) -> AlertDelivery:
    return AlertDelivery(
        status=status,
        alert=AlertEvent(key=key, source="alertmanager", summary=summary),
        declaration=Declaration(
            title=summary,
            severity=Severity.P1,
            service="checkout",
            declared_by="alertmanager",
            source="alertmanager",
        ),
    )


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    for _ in range(200):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("never happened")


async def _intake_answered(client: Client, workflow_id: str, run_id: str | None = None) -> int:
    """How many times the intake answered this group run (``opening_decision`` signals)."""
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    return sum(
        1
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        and event.workflow_execution_signaled_event_attributes.signal_name
        == OPENING_DECISION_SIGNAL
    )


async def alert_group(env: WorkflowEnvironment, outbox: Outbox) -> None:
    """A group through the webhook gateway: open, join, recover, resolve, hand-back, repeat.

    Each opening is first admitted by the source's alert intake (the storm-cap
    patch: the group starts the intake, signals it and waits for its answer).
    The last trigger goes straight to the resolved incident, as a sender that read
    the group's memo just before the incident closed does; the incident hands it
    back to the group (``trigger_after_close``), which asks the intake again and
    opens the repeat incident.
    """
    client = env.client
    key = "5f8d2a9c1b3e4d60"
    group = client.get_workflow_handle_for(
        AlertGroupWorkflow.run, alert_group_id("alertmanager", key)
    )
    async with new_worker(client, policy=Policy(), channels=[outbox.channel]) as worker:
        gateway = TemporalGateway(client=client, task_queue=worker.task_queue)
        window = timedelta(days=7)
        opened = await gateway.deliver(_alert_delivery(key), dedup_key=key, repeat_window=window)
        await gateway.deliver(_alert_delivery(key), dedup_key=key, repeat_window=window)
        assert opened.new and opened.incident_id is not None
        first: Handle = client.get_workflow_handle_for(IncidentWorkflow.run, opened.incident_id)
        await first.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="fay"))
        await gateway.deliver(_alert_delivery(key, "resolved"), dedup_key=key, repeat_window=window)
        await first.execute_update(
            IncidentWorkflow.set_phase, PhaseInput(responder="fay", phase="resolve")
        )

        async def group_told() -> bool:
            return (await group.query(AlertGroupWorkflow.view)).open_incident is None

        await _until(group_told)
        await first.signal(IncidentWorkflow.alert_fired, _alert_delivery(key).alert)

        async def repeat_opened() -> bool:
            return (await group.query(AlertGroupWorkflow.view)).incidents_opened == 2

        await _until(repeat_opened)
        await first.execute_update(
            IncidentWorkflow.record_postmortem, PostmortemInput(responder="fay")
        )
        await first.result()
    assert await _intake_answered(client, group.id) == 2, "both openings were admitted"
    await _save(client, group.id, "alert_group")
    await _save(client, first.id, "incident_from_alert")


async def alert_group_after_continue_as_new(env: WorkflowEnvironment, outbox: Outbox) -> None:
    """The second run of a group that continued as new with its incident open.

    That run recovers the alert, learns its incident closed and, at the next
    trigger, asks the intake before it opens the repeat incident.
    """
    client = env.client
    key = "9a0b7c6d5e4f3a2b"
    group = GroupInput(source="alertmanager", key=key, max_history_events=60)
    handle = client.get_workflow_handle_for(
        AlertGroupWorkflow.run, alert_group_id(group.source, key)
    )
    async with new_worker(client, policy=Policy()) as worker:
        gateway = TemporalGateway(client=client, task_queue=worker.task_queue)
        # The gateway's own update-with-start, with a GroupInput it would not build.
        ask = gateway._ask_group  # noqa: SLF001
        opened = await ask(client, handle.id, group, _alert_delivery(key), running=False)
        assert opened.new and opened.incident_id is not None
        first = (await handle.fetch_history()).events[0]
        first_run = first.workflow_execution_started_event_attributes.original_execution_run_id
        while (second := await _next_run(client, handle.id, first_run)) is None:
            await ask(client, handle.id, group, _alert_delivery(key), running=True)
        await ask(client, handle.id, group, _alert_delivery(key, "resolved"), running=True)
        incident: Handle = client.get_workflow_handle_for(IncidentWorkflow.run, opened.incident_id)
        await incident.execute_update(
            IncidentWorkflow.acknowledge, AcknowledgeInput(responder="gil")
        )
        await incident.execute_update(
            IncidentWorkflow.set_phase, PhaseInput(responder="gil", phase="resolve")
        )

        async def group_told() -> bool:
            return (await handle.query(AlertGroupWorkflow.view)).open_incident is None

        await _until(group_told)
        repeat = await ask(client, handle.id, group, _alert_delivery(key), running=True)
        assert repeat.new and repeat.related_incident == opened.incident_id
        assert await _next_run(client, handle.id, second) is None, "it continued as new again"
        assert await _intake_answered(client, handle.id, second) == 1
    await _save(client, handle.id, "alert_group_after_continue_as_new", run_id=second)


STORM_CAP = 2
"""``alerts.max_new_incidents_per_minute`` of the alert-storm recording."""


async def alert_intake(env: WorkflowEnvironment, outbox: Outbox) -> None:
    """An intake that admits the cap, opens an alert-storm incident, and admits again later.

    Four distinct alerts through the webhook gateway: the first two open their own
    incidents, the third opens the storm incident and the fourth joins it. The
    storm is acknowledged and resolved (the intake hears it closed); a minute and
    more later a trigger of the third alert reaches the resolved storm incident,
    which hands it back to that alert's group, which the intake now admits.
    """
    client = env.client
    policy = policy_from_mapping({"alerts": {"max_new_incidents_per_minute": STORM_CAP}})
    keys = [f"c0ffee{n:010x}" for n in range(STORM_CAP + 2)]
    async with new_worker(client, policy=policy, channels=[outbox.channel]) as worker:
        gateway = TemporalGateway(client=client, task_queue=worker.task_queue)
        intake = client.get_workflow_handle_for(
            AlertIntakeWorkflow.run, alert_intake_id("alertmanager", worker.task_queue)
        )
        window = timedelta(days=7)
        deliveries = [
            _alert_delivery(key, summary=f"HighErrorRate on checkout-{n}")
            for n, key in enumerate(keys)
        ]
        results = [
            await gateway.deliver(delivery, dedup_key=key, repeat_window=window)
            for key, delivery in zip(keys, deliveries, strict=True)
        ]
        assert [r.action for r in results] == ["opened"] * STORM_CAP + ["joined"] * 2, results
        storm_id = results[STORM_CAP].incident_id
        assert storm_id is not None and results[-1].incident_id == storm_id
        storm: Handle = client.get_workflow_handle_for(IncidentWorkflow.run, storm_id)
        view = await storm.query(IncidentWorkflow.view)
        assert view.title.startswith("Alert storm"), view.title
        await storm.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="hal"))
        await storm.execute_update(
            IncidentWorkflow.set_phase, PhaseInput(responder="hal", phase="resolve")
        )

        async def intake_told() -> bool:
            return (await intake.query(AlertIntakeWorkflow.view)).storm_incident is None

        await _until(intake_told)
        await env.sleep(timedelta(minutes=2))  # the cap's minute has passed
        late = deliveries[STORM_CAP].alert  # carries its group, as the gateway set it
        await storm.signal(IncidentWorkflow.alert_fired, late)
        group = client.get_workflow_handle_for(
            AlertGroupWorkflow.run, alert_group_id("alertmanager", keys[STORM_CAP])
        )

        async def own_incident() -> bool:
            return (await group.query(AlertGroupWorkflow.view)).incidents_opened == 1

        await _until(own_incident)
        await storm.execute_update(
            IncidentWorkflow.record_postmortem, PostmortemInput(responder="hal")
        )
        await storm.result()
        state = await intake.query(AlertIntakeWorkflow.view)
        assert (state.requests, state.storms_opened, state.joined_storm) == (
            STORM_CAP + 3,
            1,
            2,
        ), state
    await _save(client, intake.id, "alert_intake")
    await _save(client, storm.id, "incident_alert_storm")


RECORDERS: dict[str, Callable[[WorkflowEnvironment, Outbox], Awaitable[None]]] = {
    "incident_full_lifecycle": full_lifecycle,
    "incident_dismissed": dismissed,
    "incident_continued_as_new": continued_as_new,
    "incident_failed_notify": failed_notify,
    "incident_query_in_first_task": query_in_first_task,
    "alert_group": alert_group,
    "alert_group_after_continue_as_new": alert_group_after_continue_as_new,
    "alert_intake": alert_intake,
}
"""Recorder by (first) history name; ``alert_group`` also writes ``incident_from_alert``,
``incident_continued_as_new`` also ``incident_after_continue_as_new``, ``alert_intake``
also ``incident_alert_storm``."""


async def main(names: list[str]) -> None:
    unknown = set(names) - set(RECORDERS)
    if unknown:
        raise SystemExit(f"unknown histories {sorted(unknown)}; choose from {sorted(RECORDERS)}")
    HISTORIES.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        outbox = Outbox(Path(scratch) / "outbox.jsonl")
        for name in names or list(RECORDERS):
            # A server each: workflows left running by one recording must not hold
            # back time skipping in the next.
            env = await WorkflowEnvironment.start_time_skipping(
                test_server_existing_path=find_binary("temporal-test-server"),
                data_converter=pydantic_data_converter,
            )
            try:
                await register_search_attributes(env.client)
                await RECORDERS[name](env, outbox)
            finally:
                await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
