"""``INCIDENT_WORKER_*`` reaches the Worker that ``incident-worker`` builds."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import PollerBehaviorSimpleMaximum

from domain.policy import Policy
from domain.settings import Settings
from workers.main import load_worker_tuning, new_worker
from workers.tuning import DEFAULT_CACHED_WORKFLOWS

ROOT = Path(__file__).parent.parent
BIN = Path(sys.executable).parent

TUNED = {
    "INCIDENT_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS": "7",
    "INCIDENT_WORKER_MAX_CONCURRENT_ACTIVITIES": "11",
    "INCIDENT_WORKER_MAX_CACHED_WORKFLOWS": "13",
    "INCIDENT_WORKER_WORKFLOW_TASK_POLLERS": "3",
    "INCIDENT_WORKER_ACTIVITY_TASK_POLLERS": "2",
}


async def test_the_environment_tunes_the_worker(
    ts_env: WorkflowEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in TUNED.items():
        monkeypatch.setenv(name, value)
    settings = Settings(data_dir=tmp_path, task_queue="tuned")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no misleading thread-pool warning at start-up
        worker = new_worker(
            ts_env.client, settings, policy=Policy(), channels=[], tuning=load_worker_tuning()
        )
    config = worker.config()
    assert config["max_concurrent_workflow_tasks"] == 7
    assert config["max_concurrent_activities"] == 11
    assert config["max_cached_workflows"] == 13
    assert config["workflow_task_poller_behavior"] == PollerBehaviorSimpleMaximum(3)
    assert config["activity_task_poller_behavior"] == PollerBehaviorSimpleMaximum(2)
    assert config["task_queue"] == "tuned"


async def test_unset_variables_keep_the_sdk_defaults_but_a_larger_sticky_cache(
    ts_env: WorkflowEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in TUNED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INCIDENT_WORKER_MAX_CACHED_WORKFLOWS", "")  # empty counts as unset
    tuning = load_worker_tuning()
    assert tuning.worker_options() == {"max_cached_workflows": DEFAULT_CACHED_WORKFLOWS}
    worker = new_worker(
        ts_env.client, Settings(data_dir=tmp_path), policy=Policy(), channels=[], tuning=tuning
    )
    config = worker.config()
    assert config["max_cached_workflows"] == DEFAULT_CACHED_WORKFLOWS == 10_000
    assert config.get("max_concurrent_workflow_tasks") is None
    assert config["workflow_task_poller_behavior"] == PollerBehaviorSimpleMaximum(5)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"INCIDENT_WORKER_WORKFLOW_TASK_POLLERS": "1"},
            "INCIDENT_WORKER_WORKFLOW_TASK_POLLERS must be at least 2 while the sticky cache is on",
        ),
        (
            {"INCIDENT_WORKER_MAX_CONCURRENT_ACTIVITIES": "many"},
            "INCIDENT_WORKER_MAX_CONCURRENT_ACTIVITIES: Input should be a valid integer",
        ),
        (
            {"INCIDENT_WORKER_MAX_CACHED_WORKFLOWS": "-1"},
            "INCIDENT_WORKER_MAX_CACHED_WORKFLOWS: Input should be greater than or equal to 0",
        ),
    ],
)
def test_unusable_tuning_stops_the_worker_at_start_up(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    run = subprocess.run(
        [str(BIN / "incident-worker")],
        env={"PATH": "/usr/bin:/bin", "INCIDENT_DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert run.returncode == 2, run.stderr
    assert message in run.stderr
    assert "Traceback" not in run.stderr


def test_one_poller_is_enough_without_a_sticky_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INCIDENT_WORKER_MAX_CACHED_WORKFLOWS", "0")
    monkeypatch.setenv("INCIDENT_WORKER_WORKFLOW_TASK_POLLERS", "1")
    options = load_worker_tuning().worker_options()
    assert options["max_cached_workflows"] == 0
    assert options["workflow_task_poller_behavior"] == PollerBehaviorSimpleMaximum(1)
