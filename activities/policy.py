"""Hands the worker's policy to new incidents, once, through history."""

from __future__ import annotations

from temporalio import activity

from domain.policy import Policy


class PolicyActivities:
    """Serves the policy the worker was started with.

    Incidents read it through a local activity when declared, so the policy in
    force is recorded in history and replays identically.
    """

    def __init__(self, policy: Policy) -> None:
        self._policy = policy

    @activity.defn(name="current_policy")
    def current_policy(self) -> Policy:
        """The worker's response policy."""
        return self._policy
