"""The incident record: one validated update, its timeline entry, the CLI, and the
post-mortem draft the workflow writes when a resolved incident owes a post-mortem."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from domain.models import (
    AcknowledgeInput,
    EventKind,
    FixStrategy,
    PhaseInput,
    PostmortemInput,
    RecordInput,
    Severity,
)
from domain.policy import Policy
from tests.conftest import new_worker
from tests.helpers import Handle, declare, settle, view
from tests.test_cli import Cli, base_env
from workers.wiring import WORKFLOWS
from workflows.incident import IncidentWorkflow

FULL = RecordInput(
    responder="dave",
    users_affected="12%",
    services_down=["api", "checkout"],
    data_loss=False,
    revenue_impact=1200,
    customer_complaints=4,
    root_cause="A bad config shipped in deploy v42",
    root_cause_key="deploy/bad-config",
    resolution="Rolled back to v41",
    fix_strategy="rollback",
)


async def _ack(handle: Handle) -> None:
    await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bob"))


async def _phase(handle: Handle, name: str) -> None:
    await handle.execute_update(IncidentWorkflow.set_phase, PhaseInput(responder="bob", phase=name))


async def test_set_record_writes_the_fields_and_one_entry_naming_who(
    ts_env: WorkflowEnvironment,
) -> None:
    async with new_worker(ts_env.client) as worker:
        handle = await declare(ts_env.client, worker)
        await _ack(handle)
        started = (await view(handle)).declared_at - timedelta(minutes=8)
        command = FULL.model_copy(update={"impact_started": started})
        result = await handle.execute_update(IncidentWorkflow.set_record, command)
        again = await handle.execute_update(IncidentWorkflow.set_record, command)
        fixed = await handle.execute_update(
            IncidentWorkflow.set_record, RecordInput(responder="erin", customer_complaints=5)
        )
        incident = await view(handle)

    assert "10 field(s)" in result.message and "unchanged" in again.message
    assert "1 field(s)" in fixed.message
    record = incident.record
    assert record.services_down == ["api", "checkout"] and record.data_loss is False
    assert record.fix_strategy is FixStrategy.ROLLBACK and record.customer_complaints == 5
    assert record.impact_started == started and incident.impact_started == started
    entries = [e for e in incident.timeline if e.kind is EventKind.RECORD_CHANGED]
    assert [e.actor for e in entries] == ["dave", "erin"]
    assert "root cause key → deploy/bad-config" in entries[0].text
    assert entries[1].text == "record: customer complaints → 5"


async def test_long_texts_are_capped(ts_env: WorkflowEnvironment) -> None:
    async with new_worker(ts_env.client) as worker:
        handle = await declare(ts_env.client, worker)
        await handle.execute_update(
            IncidentWorkflow.set_record,
            RecordInput(responder="bob", root_cause="x" * 50_000, users_affected="y" * 999),
        )
        record = (await view(handle)).record
    assert record.root_cause is not None and len(record.root_cause) == 4000
    assert record.users_affected is not None and len(record.users_affected) == 200


REJECTED: list[tuple[dict[str, Any], str]] = [
    ({"revenue_impact": -1}, "revenue impact must be a finite amount of 0 or more"),
    ({"customer_complaints": -2}, "customer complaints must be 0 or more"),
    ({"root_cause_key": "Deploy Bad Config"}, "is not a short normalised tag"),
    ({"root_cause_key": "x" * 65}, "is not a short normalised tag"),
    ({"fix_strategy": "pray"}, "unknown fix strategy 'pray'; use one of: rollback, hotfix"),
    ({"impact_started": datetime.now(UTC) + timedelta(days=1)}, "is in the future"),
    ({"impact_started": datetime(2026, 11, 27, 9, 58)}, "needs a time zone"),
    ({"services_down": ["api", " "]}, "a service name in services down is empty"),
    ({"root_cause": "  "}, "root cause is empty"),
    ({}, "nothing to set"),
]


async def test_bad_values_are_refused_with_the_reason_and_nothing_written(
    dev_env: WorkflowEnvironment, terminate_later: list[Any]
) -> None:
    # On the real server a rejected update leaves no trace in history.
    async with new_worker(dev_env.client, policy=Policy()) as worker:
        handle = await declare(dev_env.client, worker, severity=Severity.P1)
        terminate_later.append(handle)
        length = await settle(handle)
        reasons = []
        for fields, _ in REJECTED:
            with pytest.raises(WorkflowUpdateFailedError) as rejected:
                await handle.execute_update(
                    IncidentWorkflow.set_record, RecordInput(responder="bob", **fields)
                )
            reasons.append(str(rejected.value.cause))
        after = await handle.fetch_history()
        incident = await view(handle)

    for (_, expected), reason in zip(REJECTED, reasons, strict=True):
        assert expected in reason
    assert len(after.events) == length
    assert incident.record.model_dump(exclude_none=True) == {}


async def test_a_resolved_p1_writes_its_postmortem_draft_once(
    ts_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    drafts = tmp_path / "postmortems"
    async with new_worker(ts_env.client, postmortems_dir=drafts) as worker:
        handle = await declare(ts_env.client, worker, severity=Severity.P1)
        await _ack(handle)
        await handle.execute_update(IncidentWorkflow.set_record, FULL)
        await _phase(handle, "fix")
        await _phase(handle, "monitor")
        await _phase(handle, "resolve")
        path = drafts / f"{handle.id}.md"
        first = await _file_containing(path, "A bad config shipped in deploy v42")
        await handle.execute_update(
            IncidentWorkflow.set_record,
            RecordInput(responder="bob", root_cause="An expired certificate"),
        )
        second = await _file_containing(path, "An expired certificate")
        await handle.execute_update(
            IncidentWorkflow.record_postmortem, PostmortemInput(responder="bob")
        )
        await handle.result()
        history = await handle.fetch_history()

    assert first.startswith(f"# Post-Mortem: {handle.id} - API returns 500s")
    assert "**Severity:** P1" in first and "**Attendees:** @bob, @alice, @dave" in first
    assert "- ✅ acknowledged in 0 min against a 15 min SLA" in first
    assert "## Root Cause\n\nA bad config shipped in deploy v42\n" in first
    assert "## Root Cause\n\nAn expired certificate\n" in second, "written again"
    scheduled = [
        e
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name
        == "write_postmortem_draft"
    ]
    assert len(scheduled) == 2, "once at Resolve, once after the record changed"
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
    assert len(scheduled[0].activity_task_scheduled_event_attributes.input.payloads[0].data) < (
        512 * 1024
    ), "the view, not a document, travels in history"


async def _file_containing(path: Path, text: str) -> str:
    for _ in range(200):
        if path.exists() and text in (content := path.read_text(encoding="utf-8")):
            return content
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never contained {text!r}")


async def test_no_draft_without_a_postmortem_owed(
    ts_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    drafts = tmp_path / "postmortems"
    async with new_worker(ts_env.client, postmortems_dir=drafts) as worker:
        handle = await declare(ts_env.client, worker, severity=Severity.P3)
        await _ack(handle)
        await _phase(handle, "resolve")
        await handle.result()
    assert not drafts.exists()


# ------------------------------------------------------------------------ CLI


@pytest_asyncio.fixture(loop_scope="session")
async def cli(dev_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Cli]:
    worker = new_worker(dev_env.client)
    env = base_env(tmp_path) | {
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": dev_env.client.namespace,
        "INCIDENT_TASK_QUEUE": worker.task_queue,
    }
    async with worker:
        yield Cli(env)


async def test_cli_sets_the_record_and_prints_the_documents(
    cli: Cli, dev_env: WorkflowEnvironment, terminate_later: list[Any]
) -> None:
    incident = (await cli.ok("declare", "Checkout down", "--severity", "P1")).stdout.strip()
    await cli.ok("ack", incident)
    set_args = [
        "set",
        incident,
        "--users-affected",
        "12%",
        "--services-down",
        "api,checkout",
        "--data-loss",
        "no",
        "--revenue-impact",
        "1200",
        "--customer-complaints",
        "4",
        "--root-cause",
        "bad config",
        "--root-cause-key",
        "Deploy/Bad-Config",
        "--resolution",
        "rolled back",
        "--fix-strategy",
        "rollback",
        "--impact-started",
        (datetime.now(UTC) - timedelta(minutes=30)).strftime("%Y-%m-%d %H:%M"),
    ]
    await cli.ok(*set_args)
    shown = await cli.json("show", incident)
    assert shown["record"]["root_cause_key"] == "deploy/bad-config"
    assert shown["record"]["services_down"] == ["api", "checkout"]
    assert "Root-cause key" in (await cli.ok("show", incident)).stdout

    document = (await cli.ok("doc", incident)).stdout
    assert document.startswith(f"# Incident: {incident} - Checkout down")
    assert "**Revenue Impact:** $1,200  " in document
    as_json = json.loads((await cli.ok("doc", incident, "--json")).stdout)
    assert as_json["markdown"] == document
    draft = (await cli.ok("postmortem", incident, "--draft")).stdout
    assert draft.startswith(f"# Post-Mortem: {incident} - Checkout down")
    assert "No action items recorded yet" in draft

    await cli.ok(
        "action", "add", incident, "Alert on config drift", "--owner", "@bob", "--due", "7d"
    )
    await cli.ok(
        "action", "add", incident, "Canary | config | deploys", "--owner", "amy", "--due", "3d"
    )
    for _ in range(100):  # visibility lags a little behind the start
        draft = (await cli.ok("postmortem", incident, "--draft")).stdout
        if "Canary" in draft:
            break
        await asyncio.sleep(0.1)
    assert "| Alert on config drift | @bob |" in draft
    assert "Canary \\| config \\| deploys" in draft, "a pipe cannot add a table column"
    assert "⏳ open" in draft
    assert "Alert on config drift" in (await cli.ok("doc", incident)).stdout

    refused = await cli.refused("set", incident, "--revenue-impact", "-5")
    assert "revenue impact must be a finite amount of 0 or more" in refused
    assert "unknown fix strategy" in await cli.refused("set", incident, "--fix-strategy", "x")
    assert "not found" in await cli.refused("doc", "INC-20000101-NONE")
    terminate_later.append(dev_env.client.get_workflow_handle(incident))
