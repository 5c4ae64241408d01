"""A query during an incident's first workflow task never poisons its history (issue 7 §1).

Forty incidents declared at once, each queried once 0–200 ms after it started
(as ``incident show``, ``/status`` or the Web UI do), on the real dev server.
A query that reaches the server before the first workflow task is picked up
is delivered with that task and splits it; the first release then recorded
its ``fire-clocks-one-at-a-time`` patch marker in the wrong task, and 36 to 39
of 40 such histories failed replay. Every history must replay.
"""

from __future__ import annotations

import asyncio
import random

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from domain.models import Severity
from tests.conftest import new_worker
from tests.helpers import declare, settle
from tests.record_histories import first_task_split
from workers.wiring import WORKFLOWS
from workflows.incident import IncidentWorkflow

INCIDENTS = 40


async def test_queries_during_first_tasks_leave_replayable_histories(
    dev_env: WorkflowEnvironment,
) -> None:
    client = dev_env.client
    delays = random.Random(7).choices(range(201), k=INCIDENTS)
    async with new_worker(client) as worker:

        async def declare_and_query(delay_ms: int) -> WorkflowHistory:
            handle = await declare(client, worker, severity=Severity.P1)
            await asyncio.sleep(delay_ms / 1000)
            await handle.query(IncidentWorkflow.view)
            await settle(handle, attempts=400)
            history = await handle.fetch_history()
            await handle.terminate(reason="test finished")
            return history

        histories = await asyncio.gather(*(declare_and_query(delay) for delay in delays))

    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    failures = []
    for history in histories:
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        if result.replay_failure is not None:
            failures.append(f"{history.workflow_id}: {result.replay_failure}")
    assert failures == []
    split = sum(first_task_split(history) for history in histories)
    assert split > 0, "no query reached a first task: the storm did not reproduce issue 7 §1"
