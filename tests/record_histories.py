"""Records the workflow histories replayed by ``tests/test_replay.py``.

Run on purpose, when a deliberate change to workflow logic ships. It rewrites
the current files: first copy them to a versioned name (``*_v1.json`` hold the
histories from before the ``fire-clocks-one-at-a-time`` patch), since running
incidents still have the old histories:

    .venv/bin/python -m tests.record_histories
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from domain.models import (
    AcknowledgeInput,
    AlertEvent,
    DismissInput,
    NoteInput,
    PhaseInput,
    PostmortemInput,
    Severity,
    SeverityInput,
    StatusUpdateInput,
)
from domain.policy import Policy
from tests.conftest import Outbox, new_worker, register_search_attributes
from tests.helpers import Handle, declare
from workers.binaries import find_binary
from workflows.incident import IncidentWorkflow

HISTORIES = Path(__file__).parent / "histories"


async def _save(handle: Handle, name: str, *, run_id: str | None = None) -> None:
    client: Client = handle._client  # noqa: SLF001 - the handle's own client
    history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
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
        await handle.execute_update(
            IncidentWorkflow.post_update,
            StatusUpdateInput(responder="bob", text="rolling back", eta="15 min"),
        )
        await handle.signal(IncidentWorkflow.alert_resolved, alert)  # → Monitor
        await env.sleep(timedelta(minutes=30))
        await handle.signal(IncidentWorkflow.alert_fired, alert)  # recurrence → Fix
        await handle.execute_update(
            IncidentWorkflow.set_phase, PhaseInput(responder="bob", phase="monitor")
        )
        await env.sleep(timedelta(hours=2, minutes=1))  # Monitor window: auto-resolve
        await env.sleep(timedelta(hours=49))  # post-mortem reminder and deadline
        await handle.execute_update(
            IncidentWorkflow.record_postmortem,
            PostmortemInput(responder="bob", url="https://wiki.example.com/pm/1"),
        )
        await handle.result()
    await _save(handle, "incident_full_lifecycle")


async def dismissed(env: WorkflowEnvironment) -> None:
    """A false alarm dismissed from Investigate."""
    async with new_worker(env.client, policy=Policy()) as worker:
        handle = await declare(env.client, worker, severity=Severity.P3)
        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="amy"))
        await handle.execute_update(
            IncidentWorkflow.dismiss, DismissInput(responder="amy", reason="synthetic check")
        )
        await handle.result()
    await _save(handle, "incident_dismissed")


async def continued_as_new(env: WorkflowEnvironment, outbox: Outbox) -> None:
    """The first run of an incident that continued as new."""
    policy = Policy(max_history_events=50)
    async with new_worker(env.client, policy=policy, channels=[outbox.channel]) as worker:
        handle = await declare(env.client, worker, severity=Severity.P0)
        await env.sleep(timedelta(hours=2))
        first = handle.first_execution_run_id
        await handle.terminate(reason="recorded")
    await _save(handle, "incident_continued_as_new", run_id=first)


async def main() -> None:
    HISTORIES.mkdir(exist_ok=True)
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    try:
        await register_search_attributes(env.client)
        with tempfile.TemporaryDirectory() as scratch:
            outbox = Outbox(Path(scratch) / "outbox.jsonl")
            await full_lifecycle(env, outbox)
            await dismissed(env)
            await continued_as_new(env, outbox)
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
