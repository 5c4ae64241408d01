"""Shared fixtures: one time-skipping server and one dev server per session."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.channels import Channel
from activities.outbox import OutboxChannel
from domain import search_attributes as sa
from domain.policy import Policy
from workers.binaries import find_binary
from workers.wiring import build_worker, console_templates


async def register_search_attributes(client: Client) -> None:
    """Register the custom search attributes (the time-skipping server rejects unknown ones)."""
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={
                key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in sa.ALL
            },
        )
    )


@pytest_asyncio.fixture(loop_scope="session")
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    """A fresh time-skipping test server for each test.

    One server per test keeps tests independent: the server will not skip time
    while an activity of an earlier test's incident is still scheduled, and it
    starts in a fraction of a second.
    """
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    await register_search_attributes(env.client)
    try:
        yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (visibility and list queries work here)."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=list(sa.ALL),
        ui=False,
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


class Outbox:
    """Reads what the real outbox channel wrote during a test."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.channel = OutboxChannel(path, console_templates())

    def records(self, incident_id: str | None = None) -> list[dict[str, Any]]:
        """Every outbox record (optionally of one incident), in write order."""
        if not self.path.exists():
            return []
        rows = [json.loads(line) for line in self.path.read_text().splitlines()]
        return [r for r in rows if incident_id is None or r["incident"]["id"] == incident_id]

    def kinds(self, incident_id: str | None = None) -> list[str]:
        """The notification kinds written, in order."""
        return [r["kind"] for r in self.records(incident_id)]


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    """A real outbox channel writing under the test's temporary directory."""
    return Outbox(tmp_path / "outbox.jsonl")


def new_worker(
    client: Client,
    *,
    policy: Policy | None = None,
    channels: Sequence[Channel] = (),
    **options: Any,
) -> Worker:
    """A worker on a fresh task queue."""
    return build_worker(
        client,
        task_queue=f"tq-{uuid.uuid4()}",
        policy=policy or Policy(),
        channels=channels,
        **options,
    )
