"""Notification delivery: channels progress independently, and clocks never stop.

A channel that keeps failing (a Slack outage) must not delay the others, must
not freeze the incident's clocks while it continues as new, and a page it
cannot deliver goes to the fallback targets with the incident flagged.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import (
    DescribeWorkflowExecutionRequest,
    DescribeWorkflowExecutionResponse,
)
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from domain import search_attributes as sa
from domain.models import DismissInput, EventKind, Notification, NotifyResult, Severity
from domain.policy import Policy
from tests.conftest import new_worker
from tests.helpers import Handle, close_to, declare, offsets, view
from workflows.clocks import page_offset, total_pages
from workflows.delivery import DELIVERY_GIVE_UP
from workflows.incident import IncidentWorkflow


class Recorder:
    """A working channel that notes how long each message waited for it."""

    name = "console"

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, timedelta]] = []

    async def deliver(self, notification: Notification) -> NotifyResult:
        started = activity.info().current_attempt_scheduled_time
        self.seen.append((notification.key, notification.kind.value, started - notification.at))
        return NotifyResult()


class SlackDown:
    """A channel in an outage: every call fails and Temporal keeps retrying."""

    name = "slack"

    async def deliver(self, notification: Notification) -> NotifyResult:
        raise RuntimeError("slack: 503 service unavailable")


class SlackRevoked:
    """A channel whose token was revoked: every call fails for good."""

    name = "slack"

    async def deliver(self, notification: Notification) -> NotifyResult:
        raise ApplicationError("slack: invalid_auth", non_retryable=True)


@pytest.mark.parametrize(
    "policy",
    [Policy(), Policy(max_history_events=50)],
    ids=["one run", "continue-as-new every 50 events"],
)
async def test_a_failing_channel_delays_no_other_channel_and_no_clock(
    ts_env: WorkflowEnvironment, policy: Policy
) -> None:
    console = Recorder()
    sla = policy.for_severity(Severity.P0).ack_sla
    pages = total_pages(policy)
    async with new_worker(ts_env.client, policy=policy, channels=[console, SlackDown()]) as worker:
        handle = await declare(ts_env.client, worker, severity=Severity.P0)
        await ts_env.sleep(sla + page_offset(pages - 1, policy) + timedelta(minutes=10))
        incident = await view(handle)
        continued = await _continued(handle)

    expected = [sla + page_offset(step, policy) for step in range(pages)]
    assert close_to(offsets(incident, EventKind.ESCALATION_PAGE)[:pages], expected)
    paged = [delay for _, kind, delay in console.seen if kind == "page"]
    assert len(paged) >= pages, "every page reached the working channel"
    assert max(delay for _, _, delay in console.seen) < timedelta(seconds=5), console.seen
    if policy.max_history_events == 50:
        assert continued, "the incident continued as new while Slack was down"


async def test_a_page_that_cannot_be_delivered_goes_to_the_fallback_and_flags_the_incident(
    ts_env: WorkflowEnvironment,
) -> None:
    policy = Policy()
    console = Recorder()
    sla = policy.for_severity(Severity.P1).ack_sla
    async with new_worker(
        ts_env.client, policy=policy, channels=[console, SlackRevoked()]
    ) as worker:
        handle = await declare(ts_env.client, worker, severity=Severity.P1)
        await ts_env.sleep(sla + timedelta(seconds=30))
        incident = await view(handle)
        flagged = await _flagged(handle)

    failures = [e.text for e in incident.timeline if e.kind is EventKind.NOTIFICATION_FAILED]
    assert any("page" in text and "invalid_auth" in text for text in failures), failures
    fallback = policy.escalation.fallback_targets
    assert any(
        e.kind is EventKind.ESCALATION_PAGE and "fallback" in e.text for e in incident.timeline
    )
    assert incident.delivery_failed
    assert flagged, "IncidentDeliveryFailed is set"
    pages = [kind for _, kind, _ in console.seen if kind == "page"]
    assert len(pages) == 2, "the page and the fallback page both reached the console"
    assert fallback, "the default policy names fallback targets"


async def test_a_channel_down_for_good_gives_up_and_the_incident_completes(
    ts_env: WorkflowEnvironment,
) -> None:
    console = Recorder()
    async with new_worker(ts_env.client, policy=Policy(), channels=[console, SlackDown()]) as w:
        handle = await declare(ts_env.client, w, severity=Severity.P3)
        await handle.execute_update(
            IncidentWorkflow.dismiss, DismissInput(responder="amy", reason="synthetic check")
        )
        await ts_env.sleep(DELIVERY_GIVE_UP + timedelta(minutes=5))
        result = await handle.result()

    assert result.closed
    failed = [e.text for e in result.timeline if e.kind is EventKind.NOTIFICATION_FAILED]
    assert any(text.startswith("slack: dismissed") for text in failed), failed
    assert {kind for _, kind, _ in console.seen} == {"declared", "dismissed"}


async def _describe(handle: Handle) -> DescribeWorkflowExecutionResponse:
    """The latest run, described raw (the time-skipping server's datetime search attributes
    do not decode through the typed client)."""
    client = handle._client  # noqa: SLF001 - the handle's own client
    return await client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=client.namespace, execution=WorkflowExecution(workflow_id=handle.id)
        )
    )


async def _continued(handle: Handle) -> bool:
    """Whether the incident's latest run is not its first one."""
    latest = await _describe(handle)
    return latest.workflow_execution_info.execution.run_id != handle.first_execution_run_id


async def _flagged(handle: Handle) -> bool:
    """The incident's ``IncidentDeliveryFailed`` search attribute."""
    fields = (await _describe(handle)).workflow_execution_info.search_attributes.indexed_fields
    payload = fields.get(sa.DELIVERY_FAILED.name)
    return payload is not None and json.loads(payload.data) is True
