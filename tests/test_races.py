"""Conflicting commands that reach the workflow in one task: exactly one wins.

Both updates are admitted while no worker polls, so both reach the workflow in
the same task. The first handler finishes before the second one's validator runs,
which refuses it with the reason (runs started before the single dispatcher
re-check in the handler after its ``await``); nothing of the loser reaches the
timeline or a channel.

The new worker replays the run from scratch before it takes the racing task, the
way SDK Core can merge a task without commands into the next one
(:mod:`workflows.lanes`), so every race's history must then replay from scratch
too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from domain import search_attributes as sa
from domain.models import (
    AcknowledgeInput,
    DismissInput,
    EventKind,
    NoteInput,
    Phase,
    PhaseInput,
    PostmortemInput,
    Severity,
    SeverityInput,
)
from domain.policy import Policy
from tests.conftest import Outbox, new_worker
from tests.helpers import Handle, declare, settle
from tests.replaying import replayer_for
from workers.wiring import build_worker
from workflows.incident import IncidentWorkflow

Command = Callable[[Handle], Awaitable[Any]]


def ack(who: str) -> Command:
    return lambda h: h.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder=who))


def phase(name: str, who: str = "bob") -> Command:
    return lambda h: h.execute_update(
        IncidentWorkflow.set_phase, PhaseInput(responder=who, phase=name)
    )


def dismiss(who: str = "amy") -> Command:
    return lambda h: h.execute_update(
        IncidentWorkflow.dismiss, DismissInput(responder=who, reason="synthetic check")
    )


def severity(name: str) -> Command:
    return lambda h: h.execute_update(
        IncidentWorkflow.change_severity, SeverityInput(responder="bob", severity=name)
    )


def postmortem(who: str) -> Command:
    return lambda h: h.execute_update(
        IncidentWorkflow.record_postmortem, PostmortemInput(responder=who, url=f"https://pm/{who}")
    )


RACES: dict[str, tuple[list[Command], Command, Command, str]] = {
    # name: (commands before the race, first racer, second racer, reason the loser gets)
    "two acknowledgements": ([], ack("alice"), ack("bob"), "already acknowledged"),
    "dismiss and resolve": ([ack("amy")], dismiss(), phase("resolve"), ""),
    "resolve and dismiss": ([ack("amy")], phase("resolve"), dismiss(), ""),
    "two resolves": ([ack("amy")], phase("resolve"), phase("resolve", "cy"), "is resolved"),
    "two moves to Fix": ([ack("amy")], phase("fix"), phase("fix", "cy"), "already in Fix"),
    "two severity changes": ([], severity("P0"), severity("P0"), "already P0"),
    "two post-mortems": (
        [ack("amy"), phase("resolve")],
        postmortem("amy"),
        postmortem("bob"),
        "already recorded",
    ),
}


async def _replays_from_scratch(handle: Handle) -> None:
    """The run's history replays on a worker that has never seen it."""
    history = await handle.fetch_history()
    replayed = await replayer_for(history).replay_workflow(history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None, replayed.replay_failure


@pytest.mark.parametrize("race", RACES)
async def test_conflicting_commands_in_one_task_admit_exactly_one(
    dev_env: WorkflowEnvironment, outbox: Outbox, race: str
) -> None:
    before, first, second, reason = RACES[race]
    client = dev_env.client
    async with new_worker(client, policy=Policy(), channels=[outbox.channel]) as worker:
        queue = worker.task_queue
        handle = await declare(client, worker, severity=Severity.P1)
        for command in before:
            await command(handle)
        await settle(handle)
    # No worker polls now: both updates wait for the same workflow task.
    racers = [asyncio.create_task(first(handle)), asyncio.create_task(second(handle))]
    await asyncio.sleep(1.0)
    async with build_worker(client, task_queue=queue, policy=Policy(), channels=[outbox.channel]):
        results = await asyncio.gather(*racers, return_exceptions=True)
        await settle(handle)
        incident = await handle.query(IncidentWorkflow.view)
        if incident.phase.is_open or not incident.closed:
            await handle.terminate(reason="test finished")

    await _replays_from_scratch(handle)
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1 and len(lost) == 1, results
    assert isinstance(lost[0], WorkflowUpdateFailedError)
    message = str(lost[0].cause)
    assert reason in message, message
    kinds = [e.kind for e in incident.timeline]
    assert kinds.count(EventKind.DISMISSED) + kinds.count(EventKind.RESOLVED) <= 1
    assert kinds.count(EventKind.ACKNOWLEDGED) <= 1
    assert kinds.count(EventKind.POSTMORTEM_RECORDED) <= 1
    sent = outbox.kinds(handle.id)
    if incident.phase is Phase.DISMISSED:
        assert "resolved" not in sent, "no RESOLVED message for a false alarm"
    if race == "two acknowledgements":
        assert incident.commander == won[0].message.split("IC ")[1].split(";")[0]


async def test_an_overlong_commander_is_refused_and_the_incident_lives_on(
    dev_env: WorkflowEnvironment,
) -> None:
    async with new_worker(dev_env.client, policy=Policy()) as worker:
        handle = await declare(dev_env.client, worker, severity=Severity.P1, service="s" * 3000)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                IncidentWorkflow.acknowledge, AcknowledgeInput(responder="x" * 3000)
            )
        accepted = await handle.execute_update(
            IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bob", commander="c" * 100)
        )
        await handle.execute_update(
            IncidentWorkflow.add_note, NoteInput(responder="bob", text="ok")
        )
        description = await handle.describe()
        await handle.terminate(reason="test finished")

    assert "at most 100" in str(refused.value.cause)
    assert accepted.phase is Phase.INVESTIGATE
    assert description.status is not None and description.status.name == "RUNNING"
    attributes = description.typed_search_attributes
    assert len((attributes.get(sa.SERVICE) or "").encode()) <= sa.KEYWORD_BYTES
    assert attributes.get(sa.COMMANDER) == "c" * 100


async def test_a_task_merged_on_the_live_worker_replays_from_scratch(
    dev_env: WorkflowEnvironment, outbox: Outbox
) -> None:
    """Before the single dispatcher, 7 runs in 23 of this left a history that failed replay
    (``histories/unreplayable/incident_merged_activation.json`` is one)."""
    client = dev_env.client
    for _ in range(6):
        async with new_worker(client, policy=Policy(), channels=[outbox.channel]) as worker:
            handle = await declare(client, worker, severity=Severity.P1)
            await ack("amy")(handle)
            await phase("resolve")(handle)
            await settle(handle)
        racers = [asyncio.create_task(postmortem(who)(handle)) for who in ("amy", "bob")]
        await asyncio.sleep(0.5)
        async with new_worker(client, task_queue=worker.task_queue, channels=[outbox.channel]):
            await asyncio.gather(*racers, return_exceptions=True)
            await settle(handle)
        await _replays_from_scratch(handle)
        assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
