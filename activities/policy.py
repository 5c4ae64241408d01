"""Hands the worker's policy (and its channels) to new incidents, once, through history."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field
from temporalio import activity

from domain.models import _Model
from domain.policy import Policy


class WorkerSetup(_Model):
    """What an incident learns from the worker that declares it."""

    policy: Policy
    """The response policy in force."""
    channels: list[str] = Field(default_factory=list)
    """Names of the notification channels, each delivered independently."""


class PolicyActivities:
    """Serves the policy the worker was started with.

    Incidents read it through a local activity when declared, so the policy in
    force is recorded in history and replays identically.
    """

    def __init__(self, policy: Policy, channels: Sequence[str] = ()) -> None:
        self._policy = policy
        self._channels = list(channels)

    @activity.defn(name="current_policy")
    def current_policy(self) -> Policy:
        """The worker's response policy (incidents of the first release read this)."""
        return self._policy

    @activity.defn(name="worker_setup")
    def worker_setup(self) -> WorkerSetup:
        """The worker's response policy and notification channels."""
        return WorkerSetup(policy=self._policy, channels=self._channels)
