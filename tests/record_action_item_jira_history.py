"""Records the action-item history with a Jira export, replayed by ``tests/test_replay.py``.

Run on purpose, when a deliberate change to the Jira export ships:

    .venv/bin/python -m tests.record_action_item_jira_history

It writes ``histories/action_item_jira.json``: an item on a worker exporting to
project ``OPS`` of a Jira served on loopback, whose first create answer is lost
(the retry finds the issue), reminded, then marked done by its issue (the update
``POST /webhooks/jira`` sends).
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import timedelta
from pathlib import Path

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from domain.actions import ActionDone, ActionItemInput
from domain.models import Severity
from tests.conftest import Outbox, new_worker, register_search_attributes
from tests.fakes.jira import FakeJira
from tests.test_jira import POLICY, issues_of
from workers.binaries import find_binary
from workflows.action_item import ActionItemWorkflow

HISTORIES = Path(__file__).parent / "histories"
INCIDENT = "INC-20261127-3A7X"


async def record(env: WorkflowEnvironment, outbox: Outbox, jira: FakeJira) -> None:
    """Record the history on the time-skipping server."""
    client = env.client
    jira.fail("/rest/api/3/issue", 500, after_effect=True)
    async with new_worker(
        client, policy=POLICY, channels=[outbox.channel], jira=issues_of(jira)
    ) as worker:
        now = await env.get_current_time()
        item = ActionItemInput(
            incident_id=INCIDENT,
            title="Alert on checkout queue depth",
            owner="@bob",
            due=now + timedelta(days=2),
            added_by="alice",
            commander="@carol",
            severity=Severity.P1,
            incident_title="Checkout returns 500s",
        )
        handle = await client.start_workflow(
            ActionItemWorkflow.run, item, id=f"{INCIDENT}-A3", task_queue=worker.task_queue
        )
        await env.sleep(timedelta(days=1, hours=12))
        state = await handle.query(ActionItemWorkflow.view)
        assert state.jira_key == "OPS-1", state
        await handle.execute_update(
            ActionItemWorkflow.done,
            ActionDone(responder="jira", note="done in Jira OPS-1", jira_issue="OPS-1"),
        )
        await handle.result()
        history = await handle.fetch_history()
    (HISTORIES / "action_item_jira.json").write_text(history.to_json())


async def main() -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    await register_search_attributes(env.client)
    jira = FakeJira()
    await jira.start()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            await record(env, Outbox(Path(scratch) / "outbox.jsonl"), jira)
    finally:
        await jira.stop()
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
