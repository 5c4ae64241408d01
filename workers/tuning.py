"""``INCIDENT_WORKER_*``: how much work one worker process takes on at a time.

Every setting is optional: left unset, the Temporal SDK's own default applies
(100 workflow tasks, 100 activities, 5 pollers of each kind), so an operator
tunes only what the metrics ask for, except the sticky cache: 10,000 here
(:data:`DEFAULT_CACHED_WORKFLOWS`) instead of the SDK's 1,000. docs/deployment.md
says when to change which.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from temporalio.worker import PollerBehaviorSimpleMaximum

DEFAULT_CACHED_WORKFLOWS = 10_000
"""Sticky cache when ``INCIDENT_WORKER_MAX_CACHED_WORKFLOWS`` is unset. Every open incident
wakes at least every stakeholder-update interval, and an alert-opened one takes two places
(its alert group stays open too), so the SDK's 1,000 is full at ~500 open incidents; past
that each timer replays an evicted history, and at 1,800 open incidents one worker spent
its CPU replaying and the webhook answered 503 (issue 11). A place costs ~0.14 MB, so this
bounds a worker at about 1.5 GB while keeping 5,000 alert-opened incidents warm."""


class WorkerTuning(BaseSettings):
    """The worker's concurrency, sticky cache and pollers, read from the environment."""

    model_config = SettingsConfigDict(
        env_prefix="INCIDENT_WORKER_", extra="ignore", env_ignore_empty=True
    )

    max_concurrent_workflow_tasks: int | None = Field(default=None, ge=1)
    """``INCIDENT_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS``: workflow tasks run at once (SDK: 100)."""
    max_concurrent_activities: int | None = Field(default=None, ge=1)
    """``INCIDENT_WORKER_MAX_CONCURRENT_ACTIVITIES``: activities run at once (SDK: 100);
    deliveries are I/O-bound, so this bounds concurrent Slack, Statuspage and SMTP calls."""
    max_cached_workflows: int = Field(default=DEFAULT_CACHED_WORKFLOWS, ge=0)
    """``INCIDENT_WORKER_MAX_CACHED_WORKFLOWS``: the sticky cache (10,000; the SDK's is 1,000).
    It bounds the worker's memory; an evicted incident replays its history on its next
    task. 0 turns sticky execution off."""
    workflow_task_pollers: int | None = Field(default=None, ge=1)
    """``INCIDENT_WORKER_WORKFLOW_TASK_POLLERS``: concurrent workflow-task polls (SDK: 5)."""
    activity_task_pollers: int | None = Field(default=None, ge=1)
    """``INCIDENT_WORKER_ACTIVITY_TASK_POLLERS``: concurrent activity-task polls (SDK: 5)."""

    @model_validator(mode="after")
    def _sticky_needs_two(self) -> WorkerTuning:
        # With a sticky cache the SDK polls the sticky and the shared queue at once, so it
        # refuses fewer than two workflow-task slots or pollers; say so by variable name.
        if self.max_cached_workflows == 0:
            return self
        for name in ("max_concurrent_workflow_tasks", "workflow_task_pollers"):
            value = getattr(self, name)
            if value is not None and value < 2:
                raise ValueError(
                    f"INCIDENT_WORKER_{name.upper()} must be at least 2 while the sticky "
                    "cache is on (INCIDENT_WORKER_MAX_CACHED_WORKFLOWS is not 0)"
                )
        return self

    def worker_options(self) -> dict[str, Any]:
        """Keyword arguments of :class:`temporalio.worker.Worker` for the settings given."""
        options: dict[str, Any] = {
            name: value
            for name in (
                "max_concurrent_workflow_tasks",
                "max_concurrent_activities",
                "max_cached_workflows",
            )
            if (value := getattr(self, name)) is not None
        }
        if self.workflow_task_pollers is not None:
            options["workflow_task_poller_behavior"] = PollerBehaviorSimpleMaximum(
                self.workflow_task_pollers
            )
        if self.activity_task_pollers is not None:
            options["activity_task_poller_behavior"] = PollerBehaviorSimpleMaximum(
                self.activity_task_pollers
            )
        return options


def load_tuning() -> WorkerTuning:
    """The tuning the environment asks for.

    Raises:
        ValueError: naming each ``INCIDENT_WORKER_*`` variable that is unusable and why.
    """
    try:
        return WorkerTuning()
    except ValidationError as error:
        problems = []
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"])
            name = f"INCIDENT_WORKER_{where.upper()}: " if where else ""
            problems.append(name + problem["msg"].removeprefix("Value error, "))
        raise ValueError("; ".join(problems)) from None
