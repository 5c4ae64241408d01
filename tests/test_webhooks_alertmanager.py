"""A real Prometheus Alertmanager posting to the webhook service over loopback.

Alertmanager turns a firing alert into an incident, its repeat notification
into the same incident, and its resolved notification into recovery. Skipped
when the binary is absent (Debian/Ubuntu: ``apt-get install prometheus-alertmanager``).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import yaml
from pydantic import SecretStr
from temporalio.client import Client

from domain.models import EventKind
from domain.policy import Policy
from domain.settings import Settings
from starters.http_app import create_app
from starters.webhooks import WebhookSettings
from tests.conftest import new_worker
from workflows.incident import IncidentWorkflow

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
TOKEN = "alertmanager-test-token"

pytestmark = pytest.mark.skipif(
    ALERTMANAGER is None,
    reason="Prometheus Alertmanager binary not installed (apt-get install prometheus-alertmanager)",
)

EXAMPLE = Path(__file__).parents[1] / "examples" / "alertmanager.yml"


def _config(tmp_path: Path, webhook_port: int) -> Path:
    """The documented example, pointed at this test's service and sped up."""
    config = yaml.safe_load(EXAMPLE.read_text())
    config["route"].update(group_wait="0s", group_interval="1s", repeat_interval="2s")
    [receiver] = config["receivers"]
    [webhook] = receiver["webhook_configs"]
    webhook["url"] = webhook["url"].replace("127.0.0.1:8000", f"127.0.0.1:{webhook_port}")
    token = tmp_path / "incident-webhook-token"
    token.write_text(TOKEN)
    webhook["http_config"]["authorization"]["credentials_file"] = str(token)
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def _http_service(client: Client, task_queue: str) -> AsyncIterator[int]:
    """The app under a real uvicorn on a free loopback port."""
    app = create_app(
        settings=Settings(task_queue=task_queue, webhook_token=SecretStr(TOKEN)),
        client=client,
        policy=Policy(),
        webhook_settings=WebhookSettings(),
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not serving.done(), "uvicorn did not start"
            await asyncio.sleep(0.02)
        port: int = server.servers[0].sockets[0].getsockname()[1]
        yield port
    finally:
        server.should_exit = True
        await serving


@asynccontextmanager
async def _alertmanager(tmp_path: Path, webhook_port: int) -> AsyncIterator[str]:
    """A real Alertmanager (clustering off) on loopback; yields its base URL."""
    assert ALERTMANAGER is not None
    config = _config(tmp_path, webhook_port)
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        ALERTMANAGER,
        f"--config.file={config}",
        f"--storage.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
        "--log.level=warn",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(200):
                if process.returncode is not None:
                    break
                try:
                    if (await http.get(f"{url}/-/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        if process.returncode is not None:
            assert process.stderr is not None
            raise AssertionError(f"alertmanager exited: {(await process.stderr.read()).decode()}")
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


async def _incidents(client: Client, task_queue: str) -> list[str]:
    query = f"TaskQueue = '{task_queue}' AND WorkflowType = 'Incident'"
    return [execution.id async for execution in client.list_workflows(query)]


async def _eventually(check: Any, timeout: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.1)


async def test_real_alertmanager_opens_joins_and_recovers_an_incident(dev_env, tmp_path):
    client = dev_env.client
    async with new_worker(client) as worker, _http_service(client, worker.task_queue) as port:
        async with _alertmanager(tmp_path, port) as alertmanager:
            alertname = f"DiskFull{uuid.uuid4().hex[:8]}"
            alert = {
                "labels": {"alertname": alertname, "severity": "critical", "service": "storage"},
                "annotations": {"summary": "Disk almost full on db-1"},
                "startsAt": datetime.now(UTC).isoformat(),
                "generatorURL": "http://prometheus.test/graph",
            }
            async with httpx.AsyncClient(base_url=alertmanager) as am:
                assert (await am.post("/api/v2/alerts", json=[alert])).status_code == 200

                incidents = await _eventually(lambda: _incidents(client, worker.task_queue))
                assert len(incidents) == 1, incidents
                handle = client.get_workflow_handle_for(IncidentWorkflow.run, incidents[0])

                async def repeated() -> Any:
                    view = await handle.query(IncidentWorkflow.view)
                    return view if view.alerts and view.alerts[0].count >= 2 else None

                view = await _eventually(repeated)
                assert view is not None, "Alertmanager's repeat notification did not join"
                assert view.title == "Disk almost full on db-1"
                assert view.source == "alertmanager"
                assert await _incidents(client, worker.task_queue) == incidents

                ended = {**alert, "endsAt": datetime.now(UTC).isoformat()}
                assert (await am.post("/api/v2/alerts", json=[ended])).status_code == 200

                async def recovered() -> Any:
                    view = await handle.query(IncidentWorkflow.view)
                    return view if view.alerts and not view.alerts[0].firing else None

                view = await _eventually(recovered)
                assert view is not None, "the resolved notification did not arrive"
                # Resolved within the policy's settle window of firing: the incident may
                # record it as the start of flapping rather than as a recovery entry.
                recorded = {EventKind.ALERT_RESOLVED, EventKind.ALERT_FLAPPING}
                assert any(e.kind in recorded for e in view.timeline), view.timeline
                assert await _incidents(client, worker.task_queue) == incidents
