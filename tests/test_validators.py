"""Every impossible responder command is rejected with its reason and writes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from domain.models import (
    AcknowledgeInput,
    DismissInput,
    NoteInput,
    PhaseInput,
    PostmortemInput,
    Severity,
    SeverityInput,
    StatusUpdateInput,
)
from domain.policy import Policy
from tests.conftest import new_worker
from tests.helpers import Handle, declare, settle
from workflows.incident import IncidentWorkflow

Step = Callable[[Handle], Awaitable[Any]]


def ack(who: str = "bob") -> Step:
    return lambda h: h.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder=who))


def phase(name: str) -> Step:
    return lambda h: h.execute_update(
        IncidentWorkflow.set_phase, PhaseInput(responder="bob", phase=name)
    )


def dismiss(reason: str = "flapping check") -> Step:
    return lambda h: h.execute_update(
        IncidentWorkflow.dismiss, DismissInput(responder="bob", reason=reason)
    )


def severity(name: str) -> Step:
    return lambda h: h.execute_update(
        IncidentWorkflow.change_severity, SeverityInput(responder="bob", severity=name)
    )


def update(text: str) -> Step:
    return lambda h: h.execute_update(
        IncidentWorkflow.post_update, StatusUpdateInput(responder="bob", text=text)
    )


def note(text: str, who: str = "bob") -> Step:
    return lambda h: h.execute_update(
        IncidentWorkflow.add_note, NoteInput(responder=who, text=text)
    )


def postmortem() -> Step:
    return lambda h: h.execute_update(
        IncidentWorkflow.record_postmortem, PostmortemInput(responder="bob")
    )


CASES: list[tuple[str, list[Step], Step, str]] = [
    ("monitor from Detect", [], phase("monitor"), "acknowledge it first"),
    ("fix from Detect", [], phase("fix"), "from Detect to Fix"),
    ("resolve from Detect", [], phase("resolve"), "acknowledge it first"),
    ("unknown phase", [ack()], phase("party"), "unknown phase 'party'"),
    ("detect is not a command", [ack()], phase("detect"), "use one of: investigate, fix"),
    ("same phase", [ack()], phase("investigate"), "already in Investigate"),
    ("ack twice", [ack()], ack("eve"), "already acknowledged by bob"),
    ("ack a resolved incident", [ack(), phase("resolve")], ack(), "is resolved"),
    ("phase after resolve", [ack(), phase("resolve")], phase("fix"), "is resolved"),
    ("unknown severity", [], severity("P9"), "unknown severity 'P9'; use one of: P0, P1"),
    ("same severity", [], severity("P1"), "already P1"),
    ("severity of resolved", [ack(), phase("resolve")], severity("P0"), "is resolved"),
    ("dismiss in Fix", [ack(), phase("fix")], dismiss(), "only incidents in Detect or Investigate"),
    ("dismiss without reason", [], dismiss("  "), "a reason is required"),
    ("postmortem on open", [ack(), phase("fix")], postmortem(), "still open (phase Fix)"),
    ("empty update", [ack()], update(" "), "an update needs some text"),
    ("update after resolve", [ack(), phase("resolve")], update("x"), "cannot post an update"),
    ("empty note", [], note(""), "a note needs some text"),
    ("nameless responder", [], note("hi", who=" "), "responder name is empty"),
]


@pytest.mark.parametrize(
    ("before", "command", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_rejected_with_reason_and_history_unchanged(
    dev_env: WorkflowEnvironment, before: list[Step], command: Step, reason: str
) -> None:
    # On the real server a rejected update runs its validator in a speculative
    # workflow task that leaves no trace in history (the test server would record it).
    # The server still writes that task when the task before it left more than 10
    # events (history.discardSpeculativeWorkflowTaskMaximumEventsCount), as a first
    # task that also took the commands sent right after the start does: so they wait.
    async with new_worker(dev_env.client, policy=Policy()) as worker:
        handle = await declare(dev_env.client, worker, severity=Severity.P1)
        await settle(handle)
        for step in before:
            await step(handle)
        length = await settle(handle)
        with pytest.raises(WorkflowUpdateFailedError) as rejected:
            await command(handle)
        after = await handle.fetch_history()

    assert reason in str(rejected.value.cause)
    assert len(after.events) == length


async def test_a_dismissed_incident_is_closed_for_commands(dev_env: WorkflowEnvironment) -> None:
    async with new_worker(dev_env.client, policy=Policy()) as worker:
        handle = await declare(dev_env.client, worker, severity=Severity.P2)
        result = await dismiss("synthetic check misfired")(handle)
        final = await handle.result()
        with pytest.raises(RPCError, match="already completed"):
            await ack()(handle)
    assert result.phase.value == "Dismissed"
    assert final.closed and final.dismissed_reason == "synthetic check misfired"
