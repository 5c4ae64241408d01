"""The ``incident`` CLI end to end: a real dev server, a real worker, the CLI as a user runs it.

Commands run in-process through typer's ``CliRunner`` in a thread (the CLI runs
its own event loop), configured only through the environment, like a user's
shell. The unreachable-server case also runs the installed console script.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner, Result

from domain.launch import initial_search_attributes, memo
from domain.models import Declaration, NoteInput, Severity
from domain.policy import Policy
from starters.cli import app
from starters.incidents import new_incident_id, start_incident
from tests.conftest import new_worker
from tests.helpers import declare, eventually
from workflows.alert_group import AlertGroupWorkflow, GroupInput, alert_group_id
from workflows.incident import IncidentInput, IncidentWorkflow

ID = re.compile(r"^INC-\d{8}-[2-9A-HJ-NP-Z]{4}$")
T = TypeVar("T")


class Cli:
    """Runs ``incident ...`` with a given environment."""

    def __init__(self, env: dict[str, str | None]) -> None:
        self.env = env
        self.runner = CliRunner()

    async def __call__(self, *args: str, **env: str | None) -> Result:
        return await asyncio.to_thread(self.runner.invoke, app, list(args), env={**self.env, **env})

    async def ok(self, *args: str, **env: str | None) -> Result:
        result = await self(*args, **env)
        assert result.exit_code == 0, (args, result.output)
        assert "Traceback" not in result.output
        return result

    async def json(self, *args: str) -> Any:
        return json.loads((await self.ok(*args, "--json")).stdout)

    async def refused(self, *args: str, code: int = 1) -> str:
        """Run a command that must fail; return its stderr."""
        result = await self(*args)
        assert result.exit_code == code, (args, result.output)
        assert "Traceback" not in result.output
        assert result.stdout == ""
        return result.stderr


def base_env(tmp: Path) -> dict[str, str | None]:
    """Only what a user's shell would set; nothing from the host's Temporal config."""
    return {
        "TEMPORAL_CONFIG_FILE": str(tmp / "no-temporal.toml"),
        "TEMPORAL_PROFILE": None,
        "TEMPORAL_API_KEY": None,
        "TEMPORAL_TLS": None,
        "INCIDENT_USER": "alice",
        "COLUMNS": "200",
    }


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cli(
    dev_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Cli]:
    """The CLI pointed at the dev server, with a worker on its own task queue."""
    worker = new_worker(dev_env.client)
    env = base_env(tmp_path_factory.mktemp("cli"))
    env |= {
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": dev_env.client.namespace,
        "INCIDENT_TASK_QUEUE": worker.task_queue,
    }
    async with worker:
        yield Cli(env)


def listed(rows: list[dict[str, Any]], incident_id: str) -> dict[str, Any] | None:
    return next((row for row in rows if row["id"] == incident_id), None)


def kinds(view: dict[str, Any]) -> list[str]:
    return [event["kind"] for event in view["timeline"]]


async def test_declare_and_walk_an_incident_through_every_phase(cli: Cli, tmp_path: Path) -> None:
    declared = await cli.ok(
        "declare",
        "Checkout returns 500s",
        "--severity",
        "p1",
        "--service",
        "checkout",
        "--impact",
        "30% of checkouts fail",
    )
    incident = declared.stdout.strip()
    assert ID.match(incident), declared.stdout
    assert "warning" not in declared.stderr
    assert f"incident ack {incident}" in declared.stderr

    async def in_list() -> str:
        result = await cli.ok("list")
        assert incident in result.stdout
        return result.stdout

    table = await eventually(in_list)
    assert "Checkout returns 500s" in table and "checkout" in table and "Detect" in table

    row = listed(await cli.json("list"), incident)
    assert row is not None
    assert row | {"detected_at": None} == {
        "id": incident,
        "title": "Checkout returns 500s",
        "severity": "P1",
        "phase": "Detect",
        "service": "checkout",
        "commander": None,
        "sla_breached": False,
        "status": "running",
        "detected_at": None,
        "acknowledged_at": None,
        "resolved_at": None,
    }
    assert listed(await cli.json("list", "--phase", "detect", "--severity", "P1"), incident)
    assert not listed(await cli.json("list", "--phase", "fix"), incident)
    assert not listed(await cli.json("list", "--severity", "P3"), incident)

    view = await cli.json("show", incident.lower())
    assert view["id"] == incident and view["phase"] == "Detect"
    assert view["declared_by"] == "alice" and view["impact"] == "30% of checkouts fail"
    assert kinds(view) == ["declared"]
    assert view["ack_deadline"] and view["resolve_deadline"] and view["next_update_at"]

    shown = (await cli.ok("show", incident)).stdout
    for expected in ("Checkout returns 500s", "Ack SLA", "Resolve SLA", "Next update"):
        assert expected in shown
    assert "Timeline" in shown and f"incident ack {incident}" in shown

    acked = await cli.json("ack", incident, "--as", "bob")
    assert acked["incident_id"] == incident and acked["phase"] == "Investigate"
    assert "bob" in acked["message"]

    assert (await cli.json("phase", incident, "fix", "--note", "bad deploy 4711"))["phase"] == "Fix"
    posted = await cli.json(
        "update", incident, "Rolling back 4711", "--impact", "10% fail", "--eta", "~20 min"
    )
    assert posted["phase"] == "Fix" and "update posted" in posted["message"]
    raised = await cli.json("severity", incident, "P0", "--reason", "EU down too")
    assert "P0" in raised["message"]
    assert (await cli.json("note", incident, "rollback at 14:02", "--as", "carol"))[
        "phase"
    ] == "Fix"
    assert (await cli.json("phase", incident, "monitor"))["phase"] == "Monitor"

    async def row_in(phase: str) -> None:
        row = listed(await cli.json("list", "--phase", phase), incident)
        assert row is not None and row["severity"] == "P0" and row["commander"] == "bob"

    await eventually(lambda: row_in("Monitor"))

    resolved = await cli.ok("resolve", incident, "--note", "error rate normal")
    assert "Resolve" in resolved.stdout
    assert "due" in (await cli.ok("postmortem", incident)).stdout
    meeting = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%d %H:%M")
    scheduled = await cli.ok("postmortem", incident, "--schedule", meeting, "--attendees", "@bob")
    assert f"scheduled for {meeting} UTC" in scheduled.stdout
    assert f"review meeting: {meeting}" in (await cli.ok("postmortem", incident)).stdout
    data_dir = tmp_path / "data"
    document = tmp_path / "final.md"
    document.write_text("# Post-Mortem\n\nThe final one.\n")
    done_text = await cli.ok(
        "postmortem",
        incident,
        "--done",
        "--url",
        "https://wiki/pm/42",
        "--file",
        str(document),
        INCIDENT_DATA_DIR=str(data_dir),
    )
    assert "closed" in done_text.stdout

    final = await cli.json("show", incident)
    assert final["closed"] is True and final["postmortem_url"] == "https://wiki/pm/42"
    kept = final["postmortem_document"]
    assert kept["sha256"] == hashlib.sha256(document.read_bytes()).hexdigest()
    assert Path(kept["path"]).parent == (data_dir / "postmortems" / "final").resolve()
    assert Path(kept["path"]).read_bytes() == document.read_bytes()
    assert (final["severity"], final["commander"], final["eta"]) == ("P0", "bob", "~20 min")
    assert kinds(final) == [
        "declared",
        "acknowledged",
        "phase_changed",
        "update_posted",
        "severity_changed",
        "note",
        "phase_changed",
        "phase_changed",
        "resolved",
        "note",
        "postmortem_recorded",
        "closed",
    ]
    actors: dict[str, str] = {}
    for event in final["timeline"]:
        actors.setdefault(event["kind"], event["actor"])
    assert actors["acknowledged"] == "bob" and actors["note"] == "carol"
    assert actors["severity_changed"] == "alice"

    async def closed_everywhere() -> None:
        assert not listed(await cli.json("list"), incident)
        row = listed(await cli.json("list", "--all"), incident)
        assert row is not None and row["phase"] == "Resolve" and row["status"] == "completed"

    await eventually(closed_everywhere)
    assert "is closed" in await cli.refused("note", incident, "too late")
    assert "recorded" in (await cli.ok("show", incident)).stdout


async def test_the_workflow_refuses_impossible_commands_with_its_reason(
    cli: Cli, dev_env: WorkflowEnvironment
) -> None:
    declared = await cli.json(
        "declare", "[bold]Login[/bold] \x1b[31mslow\u202e\u200b\u2066", "-s", "P2"
    )
    incident = declared["incident_id"]
    assert declared["phase"] == "Detect" and ID.match(incident)
    before = await cli.json("show", incident)

    assert "acknowledge it first" in await cli.refused("phase", incident, "monitor")
    assert "unknown phase 'sideways'" in await cli.refused("phase", incident, "sideways")
    assert "unknown severity 'P9'" in await cli.refused("severity", incident, "P9")
    assert "still open" in await cli.refused("postmortem", incident, "--done")
    assert "reason is required" in await cli.refused("dismiss", incident, "--reason", " ")
    assert "responder name is empty" in await cli.refused("ack", incident, "--as", "")
    assert (await cli.json("show", incident))["timeline"] == before["timeline"]

    await cli.ok("ack", incident)
    assert "already acknowledged by alice" in await cli.refused("ack", incident)

    shown = (await cli.ok("show", incident)).stdout
    assert "[bold]Login[/bold] [31mslow\n" in shown and "\x1b" not in shown
    assert not {"\u202e", "\u200b", "\u2066"} & set(shown)

    await cli.ok("dismiss", incident, "--reason", "synthetic check misconfigured")
    await dev_env.client.get_workflow_handle(incident).result()
    assert f"incident {incident} is closed" in await cli.refused("ack", incident)
    dismissed = await cli.json("show", incident)
    assert dismissed["phase"] == "Dismissed" and dismissed["closed"] is True


async def test_unknown_incident_and_bad_input(cli: Cli) -> None:
    missing = "INC-20000101-ZZZZ"
    for command in (("show", missing), ("ack", missing), ("note", missing, "hi")):
        assert f"incident {missing} not found" in await cli.refused(*command)

    def one_line(stderr: str) -> str:
        assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
        assert "╭" not in stderr and "Usage:" not in stderr
        return stderr

    usage_errors = {
        ("declare", "", "--severity", "P1"): "Invalid value for 'TITLE': must not be empty",
        ("declare", "  ", "--severity", "P1"): "Invalid value for 'TITLE': must not be empty",
        ("show", ""): "Invalid value for 'ID': must not be empty (see: incident show --help)",
        ("ack", " "): "Invalid value for 'ID': must not be empty",
        ("declare", "x", "--severity", "P9"): "'P9' is not one of",
        ("postmortem", missing, "--url", "https://x"): "--url and --file are recorded with --done",
        ("postmortem", missing, "--attendees", "@a"): "--attendees go with --schedule",
        ("postmortem", missing, "--schedule", "soon"): "'soon' is not a time",
        ("show",): "Missing argument 'ID'.",
        ("sideways",): "No such command 'sideways'. (see: incident --help)",
    }
    for command, message in usage_errors.items():
        assert message in one_line(await cli.refused(*command, code=2)), command


async def test_an_id_of_another_kind_is_not_an_incident(
    cli: Cli, dev_env: WorkflowEnvironment, terminate_later: list[Any]
) -> None:
    group = await dev_env.client.start_workflow(
        AlertGroupWorkflow.run,
        GroupInput(source="generic", key="checkout-5xx"),
        id=alert_group_id("generic", f"checkout-5xx-{uuid.uuid4()}"),
        task_queue=cli.env["INCIDENT_TASK_QUEUE"] or "",
    )
    terminate_later.append(group)
    for command in (("show", group.id), ("show", group.id, "--json"), ("ack", group.id)):
        stderr = await cli.refused(*command)
        assert stderr.count("\n") == 1, stderr
        assert f"{group.id} is not an incident: it is an alert group" in stderr


async def test_an_incident_that_ended_without_closing_says_so(
    cli: Cli, dev_env: WorkflowEnvironment
) -> None:
    incident = (await cli.ok("declare", "History too large", "-s", "P1")).stdout.strip()
    handle = dev_env.client.get_workflow_handle(incident)
    await handle.terminate(reason="Workflow history size exceeds limit.")
    for command in (("show", incident), ("show", incident, "--json"), ("postmortem", incident)):
        stderr = await cli.refused(*command)
        assert f"incident {incident} was terminated at " in stderr
        assert "(Workflow history size exceeds limit.)" in stderr
        assert "no longer escalates" in stderr and "last phase Detect" in stderr
    assert "was terminated" in await cli.refused("ack", incident)

    declaration = Declaration(title="nobody ran it", severity=Severity.P3, declared_by="alice")
    timed_out = await dev_env.client.start_workflow(
        IncidentWorkflow.run,
        IncidentInput(declaration=declaration),
        id=new_incident_id(),
        task_queue=f"nobody-polls-{uuid.uuid4()}",
        execution_timeout=timedelta(seconds=1),
        search_attributes=initial_search_attributes(declaration),
        memo=memo(declaration),
    )
    with contextlib.suppress(WorkflowFailureError):
        await timed_out.result()
    assert f"incident {timed_out.id} was timed out" in await cli.refused("show", timed_out.id)

    async def listed_as_ended() -> None:
        rows = await cli.json("list", "--all", "--limit", "1000")
        assert (listed(rows, incident) or {}).get("status") == "terminated"
        assert (listed(rows, timed_out.id) or {}).get("status") == "timed_out"
        assert not listed(await cli.json("list"), incident)

    await eventually(listed_as_ended)
    table = (await cli.ok("list", "--all", "--limit", "1000")).stdout
    [line] = [line for line in table.splitlines() if incident in line]
    assert "Detect TERMINATED" in line
    [line] = [line for line in table.splitlines() if timed_out.id in line]
    assert "Detect TIMED OUT" in line


async def test_list_all_shows_an_incident_once_after_continue_as_new(
    cli: Cli, dev_env: WorkflowEnvironment, terminate_later: list[Any]
) -> None:
    async with new_worker(dev_env.client, policy=Policy(max_history_events=50)) as worker:
        handle = await declare(dev_env.client, worker, title="Long-running", severity=Severity.P3)
        terminate_later.append(handle)
        for number in range(15):
            note = NoteInput(responder="alice", text=f"note {number}")
            await handle.execute_update(IncidentWorkflow.add_note, note)
        first = dev_env.client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
        assert (await first.describe()).status is WorkflowExecutionStatus.CONTINUED_AS_NEW

        async def listed_once() -> None:
            rows = await cli.json("list", "--all", "--limit", "1000")
            assert [row["status"] for row in rows if row["id"] == handle.id] == ["running"]

        await eventually(listed_once)


async def test_a_silent_worker_times_out_with_advice(
    cli: Cli, dev_env: WorkflowEnvironment
) -> None:
    declared = await cli.ok(
        "declare", "nobody home", "--severity", "P3", INCIDENT_TASK_QUEUE="no-worker"
    )
    assert "no worker is polling task queue 'no-worker'" in declared.stderr
    incident = declared.stdout.strip()
    try:
        stderr = await cli.refused("--timeout", "1", "ack", incident, code=2)
        assert "no answer within 1s" in stderr and "worker running" in stderr
    finally:
        await dev_env.client.get_workflow_handle(incident).terminate("test cleanup")


async def test_a_worker_starting_just_after_declare_is_not_reported_missing(
    cli: Cli, dev_env: WorkflowEnvironment, terminate_later: list[Any]
) -> None:
    """A worker whose poller is not registered yet when ``declare`` checks (the old flake)."""
    worker = new_worker(dev_env.client)
    declaring = asyncio.create_task(
        cli("declare", "worker starting", "-s", "P3", INCIDENT_TASK_QUEUE=worker.task_queue)
    )
    await asyncio.sleep(0.5)
    async with worker:
        declared = await declaring
        assert declared.exit_code == 0, declared.output
        terminate_later.append(dev_env.client.get_workflow_handle(declared.stdout.strip()))
    assert "warning" not in declared.stderr, declared.stderr


async def run_script(*args: str, env: dict[str, str | None]) -> tuple[int, bytes, bytes]:
    """Run the installed ``incident`` console script, as a user's shell does."""
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "incident"),
        *args,
        env=process_env(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out, err


def process_env(overrides: dict[str, str | None]) -> dict[str, str]:
    env = {**os.environ, **overrides}
    return {key: value for key, value in env.items() if value is not None}


async def test_the_console_script_reports_exit_codes(cli: Cli) -> None:
    incident = (await cli.ok("declare", "via the script", "-s", "P3")).stdout.strip()
    code, out, _ = await run_script("note", incident, "from a shell", "--json", env=cli.env)
    assert code == 0 and json.loads(out)["incident_id"] == incident
    code, out, err = await run_script("phase", incident, "fix", env=cli.env)
    assert (code, out) == (1, b"") and b"acknowledge it first" in err
    assert b"Traceback" not in err
    await cli.ok("dismiss", incident, "--reason", "test")


async def test_a_missing_namespace_is_a_settings_problem(cli: Cli) -> None:
    for command in (("list",), ("show", "INC-20000101-ZZZZ"), ("ack", "INC-20000101-ZZZZ")):
        stderr = await cli(*command, TEMPORAL_NAMESPACE="no-such-namespace")
        assert stderr.exit_code == 2, stderr.output
        assert "Namespace no-such-namespace is not found" in stderr.stderr


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_temporal_names_the_address(tmp_path: Path) -> None:
    address = f"127.0.0.1:{closed_port()}"
    cli = Cli(base_env(tmp_path) | {"TEMPORAL_ADDRESS": address})
    for command in (("list",), ("show", "INC-X"), ("ack", "INC-X"), ("declare", "x", "-s", "P1")):
        stderr = await cli.refused(*command, code=2)
        assert f"cannot reach Temporal at {address}" in stderr

    code, out, err = await run_script("list", env=cli.env)
    assert (code, out) == (2, b"")
    assert f"Temporal at {address} (namespace default): connection refused".encode() in err
    assert b"Traceback" not in err


async def test_a_generated_id_already_taken_is_replaced(dev_env: WorkflowEnvironment) -> None:
    client = dev_env.client
    async with new_worker(client) as worker:
        taken = await start_incident(
            client, Declaration(title="first", severity=Severity.P3), task_queue=worker.task_queue
        )
        fresh = new_incident_id()
        ids = iter([taken.id, fresh])
        second = await start_incident(
            client,
            Declaration(title="second", severity=Severity.P3),
            task_queue=worker.task_queue,
            new_id=lambda: next(ids),
        )
        with pytest.raises(WorkflowAlreadyStartedError):
            await start_incident(
                client,
                Declaration(title="third", severity=Severity.P3),
                task_queue=worker.task_queue,
                incident_id=taken.id,
            )
        titles = [(await h.query(IncidentWorkflow.view)).title for h in (taken, second)]
        for handle in (taken, second):
            await handle.terminate("test over")
    assert second.id == fresh and titles == ["first", "second"]
