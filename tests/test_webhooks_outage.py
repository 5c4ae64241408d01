"""Never drop an alert: 503 while Temporal is down, and the retried delivery lands.

This test runs its own dev server on a fixed free port with a database file,
so it can stop it and start it again at the same address with the same data.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain.policy import Policy
from domain.settings import Settings
from starters.http_app import create_app
from starters.webhooks import WebhookSettings
from tests.conftest import webhook_fixture
from workers.devserver import local_environment
from workers.wiring import build_worker
from workflows.incident import IncidentWorkflow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def _temporal(port: int, database: Path, task_queue: str) -> AsyncIterator[Any]:
    """A dev server on ``port`` persisting to ``database``, with a worker."""
    env = await local_environment(port=port, database=database)
    try:
        async with build_worker(env.client, task_queue=task_queue, policy=Policy(), channels=[]):
            yield env
    finally:
        await env.shutdown()


async def _post_until(http: httpx.AsyncClient, payload: dict[str, Any], status: int) -> Any:
    """What a sender does: retry until the answer is ``status`` (bounded)."""
    response = None
    for _ in range(60):
        response = await http.post("/webhooks/alertmanager", json=payload)
        if response.status_code == status:
            return response
        assert response.status_code == 503, response.text
        await asyncio.sleep(0.25)
    raise AssertionError(f"never got {status}: {response.text if response else None}")


async def test_temporal_down_is_503_and_the_retry_creates_the_incident(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    port = _free_port()
    monkeypatch.setenv("TEMPORAL_ADDRESS", f"127.0.0.1:{port}")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "default")
    task_queue = f"tq-{uuid.uuid4()}"
    database = tmp_path / "temporal.db"
    app = create_app(
        settings=Settings(task_queue=task_queue, webhook_token=None),
        policy=Policy(),
        webhook_settings=WebhookSettings(timeout_seconds=3),
    )
    payload = webhook_fixture("alertmanager_firing")
    payload["alerts"][0]["fingerprint"] = uuid.uuid4().hex[:16]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hooks.test") as http:
        # The service starts before Temporal: alerts are refused with 503, not dropped.
        down = await http.post("/webhooks/alertmanager", json=payload)
        assert down.status_code == 503
        assert "retry" in down.json()["error"]
        assert down.headers["Retry-After"]
        health = await http.get("/healthz")
        assert (health.status_code, health.json()["temporal"]) == (503, "unreachable")

        async with _temporal(port, database, task_queue) as env:
            accepted = await _post_until(http, payload, 200)
            [outcome] = accepted.json()["incidents"]
            assert outcome["new"] is True
            incident = outcome["incident_id"]
            handle = env.client.get_workflow_handle_for(IncidentWorkflow.run, incident)
            assert (await handle.query(IncidentWorkflow.view)).title
            assert (await http.get("/healthz")).status_code == 200

        # Temporal goes away after the client connected: 503 again.
        again = await http.post("/webhooks/alertmanager", json=payload)
        assert again.status_code == 503

        async with _temporal(port, database, task_queue):
            joined = await _post_until(http, payload, 200)
            [outcome] = joined.json()["incidents"]
            assert (outcome["incident_id"], outcome["action"]) == (incident, "joined")
