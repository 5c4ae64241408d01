"""Replaying a history from scratch, as a worker that has never seen the run would."""

from __future__ import annotations

import dataclasses
import json

from temporalio import workflow
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import (
    Interceptor,
    Replayer,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

from workers.wiring import WORKFLOWS


class _RecordedTaskQueue(Interceptor):
    """``workflow.info().task_queue`` is the queue the history was recorded on.

    The replayer polls a task queue of its own (``replay-…``), while a worker
    replaying a workflow polls the workflow's; an alert group names its source's
    intake after ``workflow.info().task_queue``.
    """

    def __init__(self, task_queue: str) -> None:
        self.task_queue = task_queue

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        task_queue = self.task_queue

        class Inbound(WorkflowInboundInterceptor):
            def init(self, outbound: WorkflowOutboundInterceptor) -> None:
                super().init(_Info(outbound, task_queue))

        return Inbound


class _Info(WorkflowOutboundInterceptor):
    def __init__(self, next: WorkflowOutboundInterceptor, task_queue: str) -> None:
        super().__init__(next)
        self.task_queue = task_queue

    def info(self) -> workflow.Info:
        return dataclasses.replace(super().info(), task_queue=self.task_queue)


def replayer_for(history: WorkflowHistory) -> Replayer:
    """A replayer of every workflow, telling ``history``'s task queue as the recorded one."""
    started = history.events[0].workflow_execution_started_event_attributes
    return Replayer(
        workflows=WORKFLOWS,
        data_converter=pydantic_data_converter,
        interceptors=[_RecordedTaskQueue(started.task_queue.name)],
    )


async def replay_failures(client: Client, workflow_ids: list[str]) -> list[str]:
    """Every run of these workflows whose history fails to replay from scratch, with why."""
    failures: list[str] = []
    for workflow_id in workflow_ids:
        async for run in client.list_workflows(f"WorkflowId = '{workflow_id}'"):
            history = await client.get_workflow_handle(
                workflow_id, run_id=run.run_id
            ).fetch_history()
            replayed = await replayer_for(history).replay_workflow(
                history, raise_on_replay_failure=False
            )
            if replayed.replay_failure is not None:
                failures.append(f"{workflow_id} ({run.workflow_type}): {replayed.replay_failure}")
    return failures


def patch_ids(history: WorkflowHistory) -> set[str]:
    """The patch IDs the history's markers name."""
    return {
        json.loads(payload.data)["id"]
        for event in history.events
        if event.marker_recorded_event_attributes.marker_name == "core_patch"
        for payload in event.marker_recorded_event_attributes.details["patch-data"].payloads
    }
