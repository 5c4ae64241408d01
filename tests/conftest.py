"""Shared fixtures: one time-skipping server and one dev server per session."""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import hypothesis  # noqa: F401 - see below
import pytest
import pytest_asyncio
from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.channels import Channel
from activities.outbox import OutboxChannel
from activities.templates import standard_templates
from domain import search_attributes as sa
from domain.policy import Policy
from tests.fakes.slack import FakeSlack
from workers.binaries import find_binary
from workers.devserver import ensure_search_attributes, local_environment
from workers.wiring import build_worker

# hypothesis is imported up front: its pytest plugin otherwise imports it at the
# very end of a run, and CPython 3.11.7 can then fail to parse it with
# "SystemError: AST constructor recursion depth mismatch" (CPython gh-106905).


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
    env = await local_environment()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture(loop_scope="session")
async def slack() -> AsyncIterator[FakeSlack]:
    """A local Slack Web API server with an ``#incidents`` channel (ID ``CINCIDENTS``)."""
    fake = FakeSlack()
    await fake.start()
    fake.add_channel("incidents", channel_id="CINCIDENTS")
    try:
        yield fake
    finally:
        await fake.stop()


class Outbox:
    """Reads what the real outbox channel wrote during a test."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.channel = OutboxChannel(path, standard_templates())

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


ARCHIVE_DIR = Path(tempfile.gettempdir()) / f"incident-tests-{os.getpid()}" / "timelines"
"""Timeline archive of the workers tests start."""


def new_worker(
    client: Client,
    *,
    policy: Policy | None = None,
    channels: Sequence[Channel] = (),
    task_queue: str | None = None,
    **options: Any,
) -> Worker:
    """A worker on a fresh task queue, or on ``task_queue`` to stand in for a stopped one
    (its timeline archive in this run's scratch folder)."""
    options.setdefault("archive_dir", ARCHIVE_DIR)
    return build_worker(
        client,
        task_queue=task_queue or f"tq-{uuid.uuid4()}",
        policy=policy or Policy(),
        channels=channels,
        **options,
    )


# ------------------------------------------------------------------ webhooks

WEBHOOK_FIXTURES = Path(__file__).parent / "fixtures" / "webhooks"


def webhook_fixture(name: str) -> dict[str, Any]:
    """A payload from tests/fixtures/webhooks (written from each tool's documentation)."""
    data: dict[str, Any] = json.loads((WEBHOOK_FIXTURES / f"{name}.json").read_text())
    return data


class WebhookHarness:
    """The HTTP app in-process (ASGI) on the dev server, with a worker on a fresh queue."""

    def __init__(self, client: Client, worker: Worker, http: Any) -> None:
        self.client = client
        self.worker = worker
        self.http = http

    async def post(self, path: str, payload: Any, **kwargs: Any) -> Any:
        """POST ``payload`` as JSON to ``/webhooks/<path>``."""
        return await self.http.post(f"/webhooks/{path}", json=payload, **kwargs)

    async def view(self, incident_id: str) -> Any:
        """The incident's current view."""
        from workflows.incident import IncidentWorkflow

        handle = self.client.get_workflow_handle_for(IncidentWorkflow.run, incident_id)
        return await handle.query(IncidentWorkflow.view)

    async def wait_for(self, incident_id: str, check: Any, timeout: float = 10.0) -> Any:
        """Poll the incident's view until ``check(view)`` holds."""
        import asyncio

        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            view = await self.view(incident_id)
            if check(view) or asyncio.get_running_loop().time() > deadline:
                return view
            await asyncio.sleep(0.05)


@pytest.fixture
def webhook_harness(dev_env: WorkflowEnvironment) -> Any:
    """Factory: ``async with webhook_harness(policy=..., tokens=...) as hooks``."""
    from contextlib import asynccontextmanager

    import httpx
    from pydantic import SecretStr

    from domain.settings import Settings
    from starters.http_app import create_app
    from starters.webhooks import WebhookSettings

    @asynccontextmanager
    async def make(
        *, policy: Policy | None = None, token: str | None = None, **hooks: Any
    ) -> AsyncIterator[WebhookHarness]:
        policy = policy or Policy()
        async with new_worker(dev_env.client, policy=policy) as worker:
            app = create_app(
                settings=Settings(
                    task_queue=worker.task_queue,
                    webhook_token=SecretStr(token) if token else None,
                ),
                client=dev_env.client,
                policy=policy,
                webhook_settings=WebhookSettings(**hooks),
            )
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hooks.test") as http:
                yield WebhookHarness(dev_env.client, worker, http)

    return make


@pytest_asyncio.fixture(loop_scope="session")
async def terminate_later() -> AsyncIterator[list[Any]]:
    """Workflow handles to terminate when the test ends, so the shared dev server's
    listings are not cluttered by incidents whose worker has gone."""
    from temporalio.service import RPCError

    handles: list[Any] = []
    yield handles
    for handle in handles:
        try:
            await handle.terminate(reason="test finished")
        except RPCError:
            pass


@pytest_asyncio.fixture(loop_scope="session")
async def namespace(dev_env: WorkflowEnvironment) -> Client:
    """A client on a namespace of this test's own: its listings hold only its workflows."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    await dev_env.client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=name, workflow_execution_retention_period=Duration(seconds=86_400)
        )
    )
    client = await Client.connect(
        dev_env.client.service_client.config.target_host,
        namespace=name,
        data_converter=pydantic_data_converter,
    )
    await ensure_search_attributes(client)
    return client
