"""``incident ui``: the URLs it prints work against a real dev server's Web UI.

A private dev server runs with its UI on free ports. Each printed page is fetched
from the UI server (HTTP 200), with the API call the page itself makes; each list
query is run through the UI server's API and through ``list_workflows`` /
``count_workflows``, and must select exactly the expected incidents.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner, Result

from domain import search_attributes as sa
from domain.models import AcknowledgeInput, Phase, PhaseInput, Severity
from domain.policy import policy_from_mapping
from starters.cli import app
from starters.cli.ui import OPEN_PHASES, incident_url, incidents_query, list_url
from tests.conftest import new_worker
from tests.helpers import Handle, declare
from workers.binaries import find_binary
from workflows.incident import IncidentWorkflow

BREACHING = policy_from_mapping({"severities": {"P0": {"resolve_sla": "1s"}}})
"""P0 incidents miss their resolve SLA at once (``IncidentSlaBreached``); others keep defaults."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class UiServer:
    """A dev server with its Web UI, and the demo incidents on it by name."""

    def __init__(self, env: WorkflowEnvironment, base: str, tmp: Path) -> None:
        self.client: Client = env.client
        self.base = base
        self.tmp = tmp
        self.incidents: dict[str, str] = {}
        self.env: dict[str, str | None] = {
            "TEMPORAL_UI_URL": base + "/",
            "TEMPORAL_NAMESPACE": "default",
            "TEMPORAL_CONFIG_FILE": str(tmp / "no-temporal.toml"),
            "TEMPORAL_PROFILE": None,
        }

    def cli(self, *args: str) -> Result:
        result = CliRunner().invoke(app, ["ui", *args], env=self.env)
        assert "Traceback" not in result.output
        return result

    def url(self, *args: str) -> str:
        result = self.cli(*args)
        assert result.exit_code == 0, result.output
        return result.stdout.strip()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def ui(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[UiServer]:
    """A private dev server with its UI, and five incidents in every running phase."""
    ui_port = free_port()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=list(sa.ALL),
        port=free_port(),
        ui=True,
        ui_port=ui_port,
        dev_server_log_level="error",
    )
    base = f"http://127.0.0.1:{ui_port}"
    server = UiServer(env, base, tmp_path_factory.mktemp("ui"))
    try:
        await _wait_for_ui(base)
        async with new_worker(env.client, policy=BREACHING) as worker:
            server.incidents = await _incidents(env.client, worker)
            yield server
    finally:
        await env.shutdown()


async def _wait_for_ui(base: str) -> None:
    """The UI server starts after the dev server's gRPC port answers."""
    async with httpx.AsyncClient() as http:
        for _ in range(150):
            try:
                if (await http.get(base + "/")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"the Web UI did not come up at {base}")


async def _incidents(client: Client, worker: Any) -> dict[str, str]:
    async def to(handle: Handle, *phases: str) -> None:
        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bob"))
        for phase in phases:
            await handle.execute_update(
                IncidentWorkflow.set_phase, PhaseInput(responder="bob", phase=phase)
            )

    detect = await declare(client, worker, severity=Severity.P2, title="stale search")
    investigate = await declare(client, worker, severity=Severity.P0, title="payments down")
    fix = await declare(client, worker, severity=Severity.P1, title="checkout 500s")
    monitor = await declare(client, worker, severity=Severity.P3, title="slow emails")
    resolve = await declare(client, worker, severity=Severity.P1, title="login errors")
    await to(investigate)
    await to(fix, "fix")
    await to(monitor, "fix", "monitor")
    await to(resolve, "fix", "resolve")  # a P1 waits in Resolve for its post-mortem
    handles = {"Detect": detect, "Investigate": investigate, "Fix": fix}
    handles |= {"Monitor": monitor, "Resolve": resolve}
    return {phase: handle.id for phase, handle in handles.items()}


async def selected(ui: UiServer, url: str, expected: set[str]) -> None:
    """The list URL's query selects ``expected`` in the UI server's API and in the SDK."""
    parts = urlsplit(url)
    assert parts.path == "/namespaces/default/workflows"
    (query,) = parse_qs(parts.query, strict_parsing=True)["query"]
    api = f"{ui.base}/api/v1/namespaces/default/workflows?{parts.query}"
    deadline = asyncio.get_running_loop().time() + 15
    async with httpx.AsyncClient() as http:
        while True:
            page = await http.get(url)
            answer = await http.get(api)
            listed = {wf.id async for wf in ui.client.list_workflows(query)}
            counted = (await ui.client.count_workflows(query)).count
            through_ui = {e["execution"]["workflowId"] for e in answer.json().get("executions", [])}
            if (listed, counted, through_ui) == (expected, len(expected), expected):
                break
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError((query, listed, counted, through_ui, expected))
            await asyncio.sleep(0.2)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert answer.status_code == 200


async def test_an_incident_page_url_works(ui: UiServer) -> None:
    incident = ui.incidents["Fix"]
    url = ui.url(incident.lower())
    assert url == f"{ui.base}/namespaces/default/workflows/{incident}"
    async with httpx.AsyncClient() as http:
        page = await http.get(url)
        api = f"{ui.base}/api/v1/namespaces/default/workflows/{incident}"
        described = await http.get(api)
        for _ in range(50):  # the UI server answers 503 until its gRPC connection is up
            if described.status_code != 503:
                break
            await asyncio.sleep(0.2)
            described = await http.get(api)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert described.status_code == 200
    info = described.json()["workflowExecutionInfo"]
    assert info["execution"]["workflowId"] == incident and info["type"]["name"] == "Incident"


async def test_the_list_url_shows_open_incidents(ui: UiServer) -> None:
    url = ui.url()
    open_ids = {ui.incidents[phase.value] for phase in OPEN_PHASES}
    await selected(ui, url, open_ids)
    assert ui.incidents["Resolve"] not in open_ids


@pytest.mark.parametrize(
    ("args", "phases"),
    [
        (("--phase", "fix"), {"Fix"}),
        (("--phase", "Resolve"), {"Resolve"}),
        (("--phase", "detect", "--phase", "MONITOR"), {"Detect", "Monitor"}),
        (("--severity", "P0", "--severity", "p1"), {"Investigate", "Fix"}),
        (("--severity", "P1", "--phase", "resolve"), {"Resolve"}),
        (("--breached",), {"Investigate"}),
        (("--commander", "bob", "--phase", "fix", "--phase", "monitor"), {"Fix", "Monitor"}),
        (("--commander", "carol"), set()),
    ],
)  # fmt: skip
async def test_list_filters_narrow_it(
    ui: UiServer, args: tuple[str, ...], phases: set[str]
) -> None:
    await selected(ui, ui.url(*args), {ui.incidents[phase] for phase in phases})


def test_refusals_are_usage_errors(ui: UiServer) -> None:
    for args, reason in [
        (("--phase", "dismissed"), "dismissed incident is closed"),
        (("--commander", "x' OR 'a'='a"), "not a plain name"),
        (("INC-1", "--phase", "fix"), "filters apply to the list"),
        (("--severity", "P9"), "P9"),
    ]:
        result = ui.cli(*args)
        assert result.exit_code == 2 and result.stdout == "" and reason in result.stderr, args


def test_urls_are_encoded() -> None:
    query = incidents_query(phases=[Phase.FIX], commander="@ann.lee")
    expected = "IncidentPhase = 'Fix' AND IncidentCommander = '@ann.lee'"
    assert query == f"ExecutionStatus = 'Running' AND {expected}"
    url = list_url("https://ui.example.com", "prod ns/1", query)
    assert url.startswith("https://ui.example.com/namespaces/prod%20ns%2F1/workflows?query=")
    assert parse_qs(urlsplit(url).query)["query"] == [query]
    assert " " not in url and "'" not in url
    page = incident_url("https://ui.example.com", "default", "INC-1/../x?y")
    assert page == "https://ui.example.com/namespaces/default/workflows/INC-1%2F..%2Fx%3Fy"


def run_script(*args: str, env: dict[str, str | None]) -> tuple[int, str, str]:
    """The installed console script, as a user's shell runs it (webbrowser reads the
    environment once per process)."""
    import subprocess

    merged = {**os.environ, **env}
    clean = {key: value for key, value in merged.items() if value is not None}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "incident"), "ui", *args],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout, done.stderr


def test_open_launches_the_browser(ui: UiServer, tmp_path: Path) -> None:
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {opened}\n')
    browser.chmod(browser.stat().st_mode | stat.S_IEXEC)
    code, out, err = run_script(
        ui.incidents["Fix"], "--open", env={**ui.env, "BROWSER": str(browser)}
    )
    assert (code, err) == (0, "")
    assert opened.read_text() == out.strip() == ui.url(ui.incidents["Fix"])


def test_open_without_a_browser_says_so(ui: UiServer) -> None:
    headless = {"BROWSER": None, "DISPLAY": None, "WAYLAND_DISPLAY": None, "TERM": None}
    code, out, err = run_script("--open", env={**ui.env, **headless})
    assert code == 0 and out.strip() == ui.url()
    assert "no browser found here" in err
