"""The built-in ``/status`` page: real incidents, served by uvicorn, seen by headless Chromium."""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import fastapi
import httpx
import pytest
import pytest_asyncio
import uvicorn
from jinja2.exceptions import UndefinedError
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import (
    HandleQueryInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from domain.comms import StatusPagePolicy
from domain.models import AcknowledgeInput, Declaration, PhaseInput, Severity
from domain.policy import Policy
from starters.incidents import new_incident_id, start_incident
from starters.status_page import status_page_router
from tests.helpers import Handle, declare
from workers.devserver import local_environment
from workers.wiring import build_worker
from workflows.incident import IncidentInput, IncidentWorkflow

ARTIFACTS = Path(__file__).parent / "artifacts"
HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)"> & "checkout"'
PAGE_POLICY = StatusPagePolicy(components={"api": [], "web": []}, title="Example status")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


QUERIES: list[str] = []
"""Names of the queries the module's worker answered."""


class _RecordQueries(WorkflowInboundInterceptor):
    def handle_query(self, input: HandleQueryInput) -> Any:
        QUERIES.append(input.query)
        return super().handle_query(input)


class RecordQueries(Interceptor):
    """Records every query the worker answers, to see what the page asks incidents."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _RecordQueries


async def serve(app: fastapi.FastAPI) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, task, f"http://127.0.0.1:{port}"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def own_dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server of this module's own: the page lists every incident on the server,
    and the shared one holds other tests' incidents."""
    env = await local_environment()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def incidents(own_dev_env: WorkflowEnvironment) -> AsyncIterator[tuple[Client, str, dict]]:
    """A running worker with three incidents: an open hostile one, a resolved one, a P3."""
    client = own_dev_env.client
    worker = build_worker(
        client,
        task_queue=f"tq-{uuid.uuid4()}",
        policy=Policy(),
        channels=[],
        interceptors=[RecordQueries()],
    )
    async with worker:
        hostile: Handle = await declare(client, worker, title=HOSTILE, service="api")
        fixed = await declare(client, worker, title="Search is slow", severity=Severity.P2)
        await fixed.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bob"))
        await fixed.execute_update(
            IncidentWorkflow.set_phase, PhaseInput(responder="bob", phase="resolve")
        )
        internal = await declare(client, worker, title="Internal only", severity=Severity.P3)
        app = fastapi.FastAPI()

        async def get_client() -> Client:
            return client

        app.include_router(status_page_router(get_client, policy=PAGE_POLICY, ttl=0))
        server, task, base = await serve(app)
        ids = {"hostile": hostile.id, "fixed": fixed.id, "internal": internal.id}
        try:
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                for _ in range(200):
                    data = (await http.get("/status.json")).json()
                    listed = {i["id"] for i in data["current"] + data["recent"]}
                    if {ids["hostile"], ids["fixed"]} <= listed:
                        break
                    await asyncio.sleep(0.1)
            yield client, base, ids | {"task_queue": worker.task_queue}
        finally:
            server.should_exit = True
            await task


async def test_page_lists_incidents_with_public_updates_and_escapes(incidents) -> None:
    _, base, ids = incidents
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        response = await http.get("/status")
        data = (await http.get("/status.json")).json()
    html = response.text

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<script" not in html and "<img" not in html
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&#34;alert(2)&#34;&gt;"
    assert escaped in html
    assert "🔴 Investigating" in html and "Updates every 15 minutes." in html
    assert "🟢 Resolved" in html and "The issue has been resolved. All systems operational." in html
    assert ids["internal"] not in html and "Internal only" not in html

    [current] = [i for i in data["current"] if i["id"] == ids["hostile"]]
    assert current["name"] == HOSTILE
    assert [u["status"] for u in current["updates"]] == ["investigating"]
    [fixed] = [i for i in data["recent"] if i["id"] == ids["fixed"]]
    assert [u["status"] for u in fixed["updates"]] == ["resolved", "investigating"]
    assert data["overall"] == "partial_outage"
    assert {c["name"]: c["status"] for c in data["components"]} == {
        "api": "partial_outage",
        "web": "operational",
    }


async def test_page_in_headless_chromium(incidents, tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium)")
    _, base, ids = incidents
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "status_page_phone.png"
    shot.unlink(missing_ok=True)

    async def chromium(*args: str) -> str:
        profile = tmp_path / f"profile-{uuid.uuid4()}"
        process = await asyncio.create_subprocess_exec(
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            *args,
            f"{base}/status",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == 0, err.decode(errors="replace")[-2000:]
        return out.decode()

    dom = await chromium("--dump-dom")
    await chromium("--window-size=412,915", f"--screenshot={shot}")

    assert f'id="{ids["hostile"]}"' in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert "<script>alert(1)</script>" not in dom and "<img" not in dom
    assert "Partial outage" in dom and "Updates every 15 minutes." in dom
    assert shot.exists() and shot.stat().st_size > 5_000


async def test_page_says_so_when_temporal_is_unreachable() -> None:
    async def no_client() -> Client:
        raise RuntimeError("cannot reach Temporal at localhost:1")

    app = fastapi.FastAPI()
    app.include_router(status_page_router(no_client, policy=PAGE_POLICY))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/status")
    assert response.status_code == 503
    assert "Status information is temporarily unavailable" in response.text
    assert "localhost:1" not in response.text


async def test_page_template_can_be_overridden_and_is_checked_at_start_up(
    tmp_path: Path,
) -> None:
    async def no_client() -> Client:
        raise RuntimeError("Temporal is down")

    (tmp_path / "status_page").mkdir()
    page = tmp_path / "status_page" / "status.html.j2"
    page.write_text("<h1>{{ s.titel }}</h1>")
    with pytest.raises(UndefinedError, match="titel"):
        status_page_router(no_client, policy=PAGE_POLICY, override_dir=tmp_path)

    page.write_text("<h1>{{ s.title }}</h1>{{ s.available }}")
    app = fastapi.FastAPI()
    app.include_router(status_page_router(no_client, policy=PAGE_POLICY, override_dir=tmp_path))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get("/status")
    assert (response.status_code, response.text) == (503, "<h1>Example status</h1>False")


async def test_page_reads_the_bounded_summary_not_the_full_view(incidents) -> None:
    _, base, ids = incidents
    QUERIES.clear()
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        data = (await http.get("/status.json")).json()
    assert ids["hostile"] in {i["id"] for i in data["current"]}
    assert "summary" in QUERIES and "view" not in QUERIES, QUERIES


def page(client: Client, **options: Any) -> httpx.AsyncClient:
    async def get_client() -> Client:
        return client

    app = fastapi.FastAPI()
    app.include_router(status_page_router(get_client, policy=PAGE_POLICY, ttl=0, **options))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://page.test")


async def test_page_lists_a_bounded_number_of_incidents(incidents, terminate_later) -> None:
    client, _, ids = incidents
    queue = ids["task_queue"]
    for title in ("Payments slow", "Search slow"):
        handle = await client.start_workflow(
            IncidentWorkflow.run,
            IncidentInput(
                declaration=Declaration(title=title, severity=Severity.P2, declared_by="alice")
            ),
            id=new_incident_id(),
            task_queue=queue,
        )
        terminate_later.append(handle)
    async with page(client, max_listed=2) as http:
        for _ in range(100):
            everything = (await http.get("/status.json")).json()
            if len(everything["current"]) == 2:
                break
            await asyncio.sleep(0.1)
    assert len(everything["current"]) == 2


async def test_an_incident_without_a_worker_cannot_hold_the_page(
    incidents, terminate_later
) -> None:
    client, _, _ = incidents
    declaration = Declaration(title="Nobody serves me", severity=Severity.P2, declared_by="x")
    orphan = await start_incident(
        client, declaration, task_queue=f"no-worker-{uuid.uuid4()}", incident_id=new_incident_id()
    )
    terminate_later.append(orphan)
    async with page(client, read_budget=1.0) as http:
        for _ in range(100):
            started = time.monotonic()
            data = (await http.get("/status.json")).json()
            took = time.monotonic() - started
            listed = {i["id"]: i for i in data["current"]}
            if orphan.id in listed:
                break
            await asyncio.sleep(0.1)
    assert orphan.id in listed and took < 1.5, took
    assert listed[orphan.id]["status"] == "investigating"  # from its visibility record
    assert data["available"] is True
