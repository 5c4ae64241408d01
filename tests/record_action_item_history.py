"""Records the action-item histories replayed by ``tests/test_replay.py``.

Run on purpose, when a deliberate change to ``workflows/action_item.py`` ships:

    .venv/bin/python -m tests.record_action_item_history

It writes ``histories/action_item.json`` (one item's whole life: reminder,
overdue, escalation, IC digest, an edit, done late) and
``histories/action_item_after_continue_as_new.json`` (a run that starts from
carried state). Keep the old files under another name first when running
items still have those histories.
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from domain.actions import ActionDone, ActionEdit, ActionItemInput
from domain.models import Severity
from domain.policy import Policy
from tests.conftest import Outbox, new_worker, register_search_attributes
from workers.binaries import find_binary
from workflows.action_item import ActionItemWorkflow

HISTORIES = Path(__file__).parent / "histories"
INCIDENT = "INC-20261127-3A7X"


async def _save(client: Client, workflow_id: str, name: str, run_id: str | None = None) -> None:
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json())


def _item(**fields: object) -> ActionItemInput:
    return ActionItemInput.model_validate(
        {
            "incident_id": INCIDENT,
            "title": "Alert on checkout queue depth",
            "owner": "@bob",
            "added_by": "alice",
            "commander": "@carol",
            "severity": Severity.P1,
            "incident_title": "Checkout returns 500s",
            **fields,
        }
    )


async def record(env: WorkflowEnvironment, outbox: Outbox) -> None:
    """Record both histories on the time-skipping server."""
    client = env.client
    async with new_worker(client, policy=Policy(), channels=[outbox.channel]) as worker:
        now = await env.get_current_time()
        handle = await client.start_workflow(
            ActionItemWorkflow.run,
            _item(due=now + timedelta(days=3)),
            id=f"{INCIDENT}-A1",
            task_queue=worker.task_queue,
        )
        await env.sleep(timedelta(days=2, hours=12))
        await handle.execute_update(
            ActionItemWorkflow.edit, ActionEdit(responder="bob", owner="dave")
        )
        await env.sleep(timedelta(days=6))
        await handle.execute_update(
            ActionItemWorkflow.done, ActionDone(responder="dave", note="ok")
        )
        await handle.result()
        await _save(client, handle.id, "action_item")

        continued = await client.start_workflow(
            ActionItemWorkflow.run,
            _item(due=now + timedelta(days=3), max_history_events=12),
            id=f"{INCIDENT}-A2",
            task_queue=worker.task_queue,
        )
        await env.sleep(timedelta(days=4))
        await continued.execute_update(ActionItemWorkflow.done, ActionDone(responder="bob"))
        await continued.result()
        described = await continued.describe()
        await _save(client, continued.id, "action_item_after_continue_as_new", described.run_id)


async def main() -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    await register_search_attributes(env.client)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            await record(env, Outbox(Path(scratch) / "outbox.jsonl"))
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
