"""Committed histories replay against today's workflow code.

A failure here means a change to workflow logic would break incidents that are
already running: guard the change with ``workflow.patched`` instead.

``histories/unreplayable`` holds histories that running workflows really have
and that no code change can make replay again; each must keep failing with a
nondeterminism error, which is why ``docs/operations.md`` resets such workflows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from tests.record_histories import first_task_split
from workers.wiring import WORKFLOWS

FOLDER = Path(__file__).parent / "histories"
HISTORIES = sorted(FOLDER.glob("*.json"))
UNREPLAYABLE = sorted((FOLDER / "unreplayable").glob("*.json"))


def _workflow_type(path: Path) -> str:
    started = json.loads(path.read_text())["events"][0]
    name: str = started["workflowExecutionStartedEventAttributes"]["workflowType"]["name"]
    return name


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def _replayer() -> Replayer:
    return Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)


def test_histories_cover_every_workflow_and_a_full_lifecycle() -> None:
    names = {path.stem for path in HISTORIES}
    recorded = {
        "incident_full_lifecycle",
        "incident_dismissed",
        "incident_continued_as_new",
        "incident_after_continue_as_new",
        "incident_failed_notify",
        "incident_query_in_first_task",
        "incident_from_alert",
        "alert_group",
        "alert_group_after_continue_as_new",
    }
    assert recorded <= names
    assert all(
        _workflow_type(FOLDER / f"{name}.json") == "Incident"
        for name in recorded
        if name.startswith("incident")
    )
    assert {
        "legacy_incident_full_lifecycle",
        "legacy_incident_full_lifecycle_v1",
        "legacy_incident_dismissed",
        "legacy_incident_continued_as_new",
        "legacy_incident_from_alert",
        "alert_group_v1",
    } <= names
    assert all(_workflow_type(p) == "IncidentWorkflow" for p in FOLDER.glob("legacy_*.json"))
    assert {_workflow_type(path) for path in HISTORIES} == {
        "Incident",
        "IncidentWorkflow",
        "AlertGroupWorkflow",
    }
    assert {path.stem for path in UNREPLAYABLE} == {
        "alert_group_fast_join_unmarked",
        "legacy_incident_query_in_first_task",
    }


def test_query_histories_really_split_their_first_task() -> None:
    split = [
        FOLDER / "incident_query_in_first_task.json",
        FOLDER / "unreplayable" / "legacy_incident_query_in_first_task.json",
    ]
    whole = [FOLDER / "incident_dismissed.json", FOLDER / "legacy_incident_dismissed.json"]
    assert all(first_task_split(_history(path)) for path in split)
    assert not any(first_task_split(_history(path)) for path in whole)


def test_recorded_histories_hold_what_they_are_named_after() -> None:
    def events(name: str) -> list[dict[str, Any]]:
        loaded: list[dict[str, Any]] = json.loads((FOLDER / f"{name}.json").read_text())["events"]
        return loaded

    def signals(name: str) -> list[str]:
        return [
            e["workflowExecutionSignaledEventAttributes"]["signalName"]
            for e in events(name)
            if "workflowExecutionSignaledEventAttributes" in e
        ]

    def continued(name: str) -> bool:
        started = events(name)[0]["workflowExecutionStartedEventAttributes"]
        return bool(started.get("continuedExecutionRunId"))

    assert "trigger_after_close" in signals("alert_group")
    assert continued("alert_group_after_continue_as_new")
    assert continued("incident_after_continue_as_new")
    assert events("incident_continued_as_new")[-1]["eventType"].endswith("CONTINUED_AS_NEW")


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_history_replays(path: Path) -> None:
    result = await _replayer().replay_workflow(_history(path), raise_on_replay_failure=True)
    assert result.replay_failure is None


@pytest.mark.parametrize("path", UNREPLAYABLE, ids=[path.stem for path in UNREPLAYABLE])
async def test_unreplayable_history_fails_with_a_nondeterminism_error(path: Path) -> None:
    with pytest.raises(NondeterminismError, match="TMPRL1100"):
        await _replayer().replay_workflow(_history(path))
