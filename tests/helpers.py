"""Helpers shared by the workflow tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from domain.incident import IncidentView
from domain.models import Declaration, EventKind, Severity
from starters.incidents import new_incident_id, start_incident
from workflows.incident import IncidentWorkflow

T = TypeVar("T")

Handle = WorkflowHandle[IncidentWorkflow, IncidentView]


async def declare(
    client: Client,
    worker: Worker,
    *,
    severity: Severity = Severity.P1,
    title: str = "API returns 500s",
    **fields: object,
) -> Handle:
    """Start an incident on ``worker``'s task queue."""
    declaration = Declaration(title=title, severity=severity, declared_by="alice", **fields)  # type: ignore[arg-type]
    return await start_incident(
        client, declaration, task_queue=worker.task_queue, incident_id=new_incident_id()
    )


async def view(handle: Handle) -> IncidentView:
    """The incident's current view."""
    return await handle.query(IncidentWorkflow.view)


def offsets(view: IncidentView, kind: EventKind) -> list[timedelta]:
    """When each ``kind`` event happened, relative to the declaration."""
    return [e.at - view.declared_at for e in view.timeline if e.kind is kind]


def at(view: IncidentView, kind: EventKind) -> list[datetime]:
    """Timestamps of each ``kind`` event."""
    return [e.at for e in view.timeline if e.kind is kind]


def close_to(actual: list[timedelta], expected: list[timedelta], slack: float = 1.0) -> bool:
    """Same length, and each actual offset within ``slack`` seconds after the expected one."""
    return len(actual) == len(expected) and all(
        0 <= (a - e).total_seconds() <= slack for a, e in zip(actual, expected, strict=True)
    )


async def settle(handle: Handle, *, attempts: int = 100) -> int:
    """Wait until the incident has no work in flight; returns its history length."""
    previous = -1
    for _ in range(attempts):
        raw = (await handle.describe()).raw_description
        busy = bool(raw.pending_activities) or raw.HasField("pending_workflow_task")
        length = raw.workflow_execution_info.history_length
        if not busy and length == previous:
            return length
        previous = length
        await asyncio.sleep(0.05)
    raise AssertionError(f"{handle.id} did not settle")


async def eventually(check: Callable[[], Awaitable[T]], timeout: float = 15.0) -> T:
    """Retry ``check`` until its assertions hold (visibility lags a little)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await check()
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)
