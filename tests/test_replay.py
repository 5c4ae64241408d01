"""Committed histories replay against today's workflow code.

A failure here means a change to workflow logic would break incidents that are
already running: guard the change with ``workflow.patched`` instead.

``histories/unreplayable`` holds histories that running workflows really have
and that no code change can make replay again; each must keep failing with a
nondeterminism error, which is why ``docs/operations.md`` resets such workflows.

The replayer polls a task queue of its own (``replay-…``), while a worker replaying
a workflow polls the workflow's; since an alert group names its source's intake
after ``workflow.info().task_queue``, each history replays with ``info()`` telling
the task queue it was recorded on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.workflow import NondeterminismError

from tests.record_histories import first_task_split
from tests.replaying import patch_ids, replayer_for
from workflows.action_item import SINGLE_DISPATCHER as ACTION_SINGLE_DISPATCHER
from workflows.incident import SINGLE_DISPATCHER
from workflows.legacy.alert_group_v1 import STORM_CAP

FOLDER = Path(__file__).parent / "histories"
HISTORIES = sorted(FOLDER.glob("*.json"))
UNREPLAYABLE = sorted((FOLDER / "unreplayable").glob("*.json"))


def _workflow_type(path: Path) -> str:
    started = json.loads(path.read_text())["events"][0]
    name: str = started["workflowExecutionStartedEventAttributes"]["workflowType"]["name"]
    return name


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


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
        "incident_alert_storm",
        "alert_group",
        "alert_group_after_continue_as_new",
        "alert_intake",
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
        "legacy_alert_group",
        "legacy_alert_group_after_continue_as_new",
        "legacy_alert_group_v1",
        "legacy_alert_group_before_storm_cap",
        "legacy_alert_group_after_continue_as_new_before_storm_cap",
    } <= names
    assert all(
        _workflow_type(p) == "IncidentWorkflow" for p in FOLDER.glob("legacy_incident*.json")
    )
    assert all(
        _workflow_type(p) == "AlertGroupWorkflow" for p in FOLDER.glob("legacy_alert_group*.json")
    )
    assert all(_workflow_type(p) == "AlertGroup" for p in FOLDER.glob("alert_group*.json"))
    assert _workflow_type(FOLDER / "alert_intake.json") == "AlertIntakeWorkflow"
    for name in ("action_item", "action_item_after_continue_as_new", "action_item_jira"):
        assert _workflow_type(FOLDER / f"{name}.json") == "ActionItem"
        assert _patches(FOLDER / f"{name}.json") == {ACTION_SINGLE_DISPATCHER}, name
        assert _patches(FOLDER / f"{name}_before_dispatcher.json") == set(), name
    assert _workflow_type(FOLDER / "monthly_report.json") == "MonthlyReport"
    assert _workflow_type(FOLDER / "monthly_report_scheduled.json") == "MonthlyReportScheduled"
    assert {_workflow_type(path) for path in HISTORIES} == {
        "Incident",
        "IncidentWorkflow",
        "AlertGroup",
        "AlertGroupWorkflow",
        "AlertIntakeWorkflow",
        "ActionItem",
        "MonthlyReport",
        "MonthlyReportScheduled",
    }
    assert {path.stem for path in UNREPLAYABLE} == {
        "legacy_alert_group_fast_join_unmarked",
        "legacy_incident_query_in_first_task",
        "incident_merged_activation",
    }
    before = {f"{name}_before_dispatcher" for name in recorded if name.startswith("incident")}
    assert before <= names
    assert all(_patches(FOLDER / f"{name}.json") == set() for name in before)
    assert all(
        _patches(FOLDER / f"{name}.json") == {SINGLE_DISPATCHER}
        for name in recorded
        if name.startswith("incident")
    )


def _patches(path: Path) -> set[str]:
    return patch_ids(_history(path))


def test_query_histories_really_split_their_first_task() -> None:
    split = [
        FOLDER / "incident_query_in_first_task.json",
        FOLDER / "incident_query_in_first_task_before_dispatcher.json",
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

    def started(name: str) -> dict[str, Any]:
        attributes: dict[str, Any] = events(name)[0]["workflowExecutionStartedEventAttributes"]
        return attributes

    def continued(name: str) -> bool:
        return bool(started(name).get("continuedExecutionRunId"))

    def patches(name: str) -> set[str]:
        return _patches(FOLDER / f"{name}.json")

    def children(name: str) -> list[str]:
        return [
            e["startChildWorkflowExecutionInitiatedEventAttributes"]["workflowType"]["name"]
            for e in events(name)
            if "startChildWorkflowExecutionInitiatedEventAttributes" in e
        ]

    updates = [
        e["workflowExecutionUpdateAcceptedEventAttributes"]["acceptedRequest"]["input"]["name"]
        for e in events("incident_full_lifecycle")
        if "workflowExecutionUpdateAcceptedEventAttributes" in e
    ]
    assert {"check", "schedule_review", "record_postmortem"} <= set(updates)
    assert "trigger_after_close" in signals("alert_group")
    assert "trigger_after_close" in signals("legacy_alert_group")
    assert continued("alert_group_after_continue_as_new")
    assert continued("legacy_alert_group_after_continue_as_new")
    assert continued("incident_after_continue_as_new")
    assert events("incident_continued_as_new")[-1]["eventType"].endswith("CONTINUED_AS_NEW")

    # The storm cap: groups ask their source's intake before opening an incident. New
    # groups do so without a patch; legacy groups by theirs.
    for name in ("alert_group", "alert_group_after_continue_as_new"):
        assert not patches(name), name
        assert signals(name).count("opening_decision") >= 1, name
    for name in ("legacy_alert_group", "legacy_alert_group_after_continue_as_new"):
        assert STORM_CAP in patches(name), name
        assert signals(name).count("opening_decision") >= 1, name
    assert "AlertIntakeWorkflow" in children("alert_group"), "the group started its intake"
    for name in (
        "legacy_alert_group_before_storm_cap",
        "legacy_alert_group_after_continue_as_new_before_storm_cap",
    ):
        assert STORM_CAP not in patches(name), name
        assert "opening_decision" not in signals(name), name
    intake = signals("alert_intake")
    assert intake.count("request_opening") > 3 and "incident_closed" in intake
    assert children("alert_intake") == ["Incident"], "one alert-storm incident"
    assert started("incident_alert_storm")["parentWorkflowExecution"]["workflowId"].startswith(
        "alertintake-"
    )
    # Later storm alerts join it, one by one or batched by the webhook.
    joined = [s for s in signals("incident_alert_storm") if s in ("alert_fired", "alert_batch")]
    assert len(joined) >= 2


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_history_replays(path: Path) -> None:
    history = _history(path)
    result = await replayer_for(history).replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


@pytest.mark.parametrize("path", UNREPLAYABLE, ids=[path.stem for path in UNREPLAYABLE])
async def test_unreplayable_history_fails_with_a_nondeterminism_error(path: Path) -> None:
    history = _history(path)
    with pytest.raises(NondeterminismError, match="TMPRL1100"):
        await replayer_for(history).replay_workflow(history)
