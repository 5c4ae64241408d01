"""``incident metrics`` end to end: real incidents and action items on the dev server,
driven through their workflows, then the CLI's figures read back from visibility."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner, Result

from domain.models import AcknowledgeInput, DismissInput, PhaseInput, RecordInput, Severity
from domain.policy import policy_from_mapping
from starters.cli.app import app
from starters.cli.metrics import choose_period
from starters.cli.session import CliError
from tests.conftest import new_worker
from tests.helpers import Handle, declare, eventually, view
from workflows.incident import IncidentWorkflow

T = TypeVar("T")

POLICY = policy_from_mapping(
    {
        "severities": {"P1": {"ack_sla": "1h"}, "P2": {"ack_sla": "1h"}, "P3": {"ack_sla": "1h"}},
        "actions": {"remind_before": "1s", "escalate_after": "1h"},
    }
)
"""No escalation pages while the test runs; action items may be due in seconds."""


class Cli:
    """``incident …`` in-process (in a thread: the CLI runs its own event loop)."""

    def __init__(self, env: dict[str, str | None]) -> None:
        self.env = env

    async def __call__(self, *args: str) -> Result:
        result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=self.env)
        assert result.exit_code == 0, (args, result.output)
        return result

    async def json(self, *args: str) -> Any:
        return json.loads((await self(*args, "--json")).stdout)


async def command(handle: Handle, update: Any, payload: Any) -> None:
    await handle.execute_update(update, payload)


async def test_metrics_of_real_incidents(dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    client = dev_env.client
    service = f"metrics-{uuid.uuid4().hex[:8]}"
    bob = AcknowledgeInput(responder="bob")
    async with new_worker(client, policy=POLICY) as worker:
        cli = Cli(
            {
                "TEMPORAL_CONFIG_FILE": str(tmp_path / "none.toml"),
                "TEMPORAL_PROFILE": None,
                "TEMPORAL_ADDRESS": client.service_client.config.target_host,
                "TEMPORAL_NAMESPACE": client.namespace,
                "INCIDENT_TASK_QUEUE": worker.task_queue,
                "INCIDENT_USER": "alice",
                "COLUMNS": "200",
            }
        )
        # First: impact 10 min before the declaration, walked to Resolve.
        first = await declare(client, worker, severity=Severity.P2, service=service)
        declared = (await view(first)).declared_at
        await command(first, IncidentWorkflow.acknowledge, bob)
        record = RecordInput(
            responder="bob",
            impact_started=declared - timedelta(minutes=10),
            root_cause_key="db/pool",
        )
        await command(first, IncidentWorkflow.set_record, record)
        for phase in ("fix", "monitor", "resolve"):
            await command(
                first, IncidentWorkflow.set_phase, PhaseInput(responder="bob", phase=phase)
            )
        # Second: the same root cause, no impact start: a repeat, TTD not measurable.
        second = await declare(client, worker, severity=Severity.P2, service=service)
        await command(second, IncidentWorkflow.acknowledge, bob)
        key = RecordInput(responder="bob", root_cause_key="db/pool")
        await command(second, IncidentWorkflow.set_record, key)
        await command(
            second, IncidentWorkflow.set_phase, PhaseInput(responder="bob", phase="resolve")
        )
        # Third dismissed, fourth still open.
        third = await declare(client, worker, severity=Severity.P3, service=service)
        await command(third, IncidentWorkflow.dismiss, DismissInput(responder="bob", reason="test"))
        await declare(client, worker, severity=Severity.P3, service=service)
        # An action item done late, one dropped.
        late = (
            await cli("action", "add", first.id, "Pool size alarm", "--owner", "bob", "--due", "2s")
        ).stdout.strip()
        dropped = (
            await cli("action", "add", second.id, "Rewrite pool", "--owner", "bob", "--due", "7d")
        ).stdout.strip()
        await asyncio.sleep(2.5)
        await cli("action", "done", late)
        await cli("action", "wontdo", dropped, "--reason", "covered by the alarm")

        one, two = await view(first), await view(second)
        now = datetime.now(UTC)
        window = (
            "--since",
            (now - timedelta(hours=1)).isoformat(),
            "--until",
            (now + timedelta(hours=1)).isoformat(),
        )

        async def figures() -> Any:
            got = await cli.json("metrics", "--service", service, *window)
            overall = got["overall"]
            assert (
                overall["declared"],
                overall["resolved"],
                overall["dismissed"],
                overall["open"],
            ) == (4, 2, 1, 1)
            assert got["actions"]["done_late"] == 1 and got["actions"]["dropped"] == 1
            return got

        got = await eventually(figures)
        table = (await cli("metrics", "--service", service, *window)).stdout

    assert one.acknowledged_at and two.acknowledged_at and one.resolved_at and two.resolved_at
    overall = got["overall"]
    assert overall["ttd"] == {
        "covered": 1,
        "left_out": 1,
        "mean": 600.0,
        "median": 600.0,
        "p90": 600.0,
    }
    ttas = sorted(
        [
            (one.acknowledged_at - one.declared_at).total_seconds(),
            (two.acknowledged_at - two.declared_at).total_seconds(),
        ]
    )
    assert overall["tta"]["covered"] == 2 and overall["tta"]["p90"] == ttas[1]
    assert abs(overall["tta"]["mean"] - sum(ttas) / 2) < 1e-6
    ttr_first = (one.resolved_at - (one.declared_at - timedelta(minutes=10))).total_seconds()
    ttr_second = (two.resolved_at - two.declared_at).total_seconds()
    assert abs(overall["ttr"]["mean"] - (ttr_first + ttr_second) / 2) < 1e-6
    assert (overall["ttm"]["covered"], overall["ttm"]["left_out"]) == (
        1,
        1,
    )  # second skipped Monitor
    assert got["by_severity"]["P3"]["dismissed"] == 1 and got["open_by_phase"]["Detect"] == 1
    assert [(r["incident_id"], r["repeats"], r["kind"]) for r in got["repeats"]] == [
        (second.id, first.id, "root_cause")
    ]
    assert got["actions"]["completion"] == 0.0
    assert [i["id"] for i in got["actions"]["dropped_items"]] == [dropped]
    targets = {t["name"]: t["status"] for t in got["targets"]}
    assert targets["Repeat incidents"] == "missed" and targets["Action items on time"] == "missed"
    assert targets["MTTD"] == "missed"  # 10 minutes ≥ 5 minutes

    assert f"{second.id} repeats {first.id} (root cause db/pool)" in table
    assert "✗ missed" in table and "1 late" in table and "1 dropped" in table


def test_the_period_options() -> None:
    now = datetime(2026, 11, 27, 10, tzinfo=UTC)
    assert choose_period(None, None, None, now).label == "2026-11"
    assert choose_period("2026-10", None, None, now).end == datetime(2026, 11, 1, tzinfo=UTC)
    week = choose_period(None, "2026-11-03", "2026-11-09", now)
    assert (week.start, week.end) == (D(3), D(10))  # --until: that whole day
    ending = choose_period(None, None, "2026-11-09", now)
    assert (ending.start, ending.end) == (D(10) - timedelta(days=30), D(10))
    since = choose_period(None, "2026-11-20 06:30", None, now)
    assert (since.start, since.end) == (D(20) + timedelta(hours=6, minutes=30), now)
    for bad in (
        ("2026-11", "2026-11-01", None),
        (None, "yesterday", None),
        ("11/2026", None, None),
    ):
        with pytest.raises(CliError):
            choose_period(*bad, now)


def D(day: int) -> datetime:  # noqa: N802
    return datetime(2026, 11, day, tzinfo=UTC)
