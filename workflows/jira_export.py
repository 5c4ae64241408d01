"""An action item's Jira issue, created from the workflow (once: the activity searches first)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities.jira import JiraIssueInput, JiraIssues
    from domain.actions import MAX_NOTE, ActionState, clamp
    from domain.policy import JiraPolicy

JIRA_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=10),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
)
"""Jira down: keep trying, at most every 10 minutes, as long as the item is open. The
first retry waits 10 s so Jira's search (eventually consistent) sees an issue whose
creation answer was lost."""
JIRA_ATTEMPT = timedelta(minutes=1)
"""One attempt: a search and a create, each within ``JIRA_TIMEOUT``."""


async def export_to_jira(state: ActionState, jira: JiraPolicy) -> None:
    """Create ``state``'s issue (or find the one an earlier attempt created).

    Records ``jira_key`` and ``jira_url`` on ``state``, or ``jira_error`` when Jira
    refuses for good. Retried until then; the activity is abandoned, not cancelled,
    when the caller stops (the next run asks again, and finds the issue).

    Raises:
        asyncio.CancelledError: the caller is stopping.
    """
    issue = JiraIssueInput(
        action_id=state.id,
        incident_id=state.incident_id,
        incident_title=state.incident_title,
        title=state.title,
        owner=state.owner,
        due=state.due,
        project=jira.project,
        issue_type=jira.issue_type,
    )
    try:
        ref = await workflow.execute_activity_method(
            JiraIssues.export,
            issue,
            start_to_close_timeout=JIRA_ATTEMPT,
            retry_policy=JIRA_RETRY,
            cancellation_type=workflow.ActivityCancellationType.ABANDON,
            summary=f"jira: issue in {jira.project}",
        )
    except ActivityError as error:
        if isinstance(error.cause, CancelledError):
            raise asyncio.CancelledError from None
        state.jira_error = clamp(str(error.cause or error), MAX_NOTE)
        workflow.logger.error("%s: Jira export gave up: %s", state.id, state.jira_error)
    else:
        state.jira_key, state.jira_url = ref.key, ref.url
