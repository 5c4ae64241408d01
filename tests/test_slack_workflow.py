"""Slack end to end: real Temporal dev server, real worker, real slack-sdk, local Slack API."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.slack import SlackApi, SlackChannel, new_slack_client
from activities.templates import standard_templates
from domain.comms import CommsPolicy, SlackPolicy, SlackSettings
from domain.models import (
    AcknowledgeInput,
    EventKind,
    Notification,
    NotifyResult,
    PhaseInput,
    StatusUpdateInput,
)
from domain.policy import Policy
from tests.fakes.slack import FakeSlack
from tests.helpers import declare, view
from workers.wiring import build_worker
from workflows.incident import IncidentWorkflow

POLICY = Policy(
    comms=CommsPolicy(
        slack=SlackPolicy(users={"alice": "UALICE"}, channels={"#incidents": "CINCIDENTS"})
    )
)


def slack_channel(fake: FakeSlack) -> SlackChannel:
    settings = SlackSettings(bot_token=fake.token, api_url=fake.api_url)
    return SlackChannel(
        SlackApi(new_slack_client(settings)), standard_templates(), POLICY.comms.slack
    )


class CountingChannel:
    """A second channel that records each delivery, to prove retries skip finished channels."""

    name = "counting"

    def __init__(self) -> None:
        self.keys: list[str] = []

    async def deliver(self, notification: Notification) -> NotifyResult:
        self.keys.append(notification.key)
        return NotifyResult()


async def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def kinds(fake: FakeSlack, channel: str) -> list[str]:
    # Messages carrying a shared file (the post-mortem draft) are not notifications.
    return [m["metadata"]["event_payload"]["kind"] for m in fake.posts(channel) if "files" not in m]


async def test_lifecycle_in_order_with_rate_limit_honoured_and_no_duplicates(
    dev_env: WorkflowEnvironment, slack: FakeSlack, terminate_later: list
) -> None:
    client: Client = dev_env.client
    slack.fail("chat.postMessage", status=429, retry_after=2)
    counting = CountingChannel()
    worker = build_worker(
        client,
        task_queue=f"tq-{uuid.uuid4()}",
        policy=POLICY,
        channels=[counting, slack_channel(slack)],
    )
    async with worker:
        handle = await declare(client, worker, title="API returns 500s")
        terminate_later.append(handle)
        await eventually(lambda: kinds(slack, "CINCIDENTS") == ["declared"])
        limited, retried = [c for c in slack.calls if c.method == "chat.postMessage"][:2]
        assert limited.status == 429
        assert retried.at - limited.at >= 2.0
        assert counting.keys == [f"{handle.id}/1"]

        await handle.execute_update(
            IncidentWorkflow.acknowledge, AcknowledgeInput(responder="alice")
        )
        await handle.execute_update(
            IncidentWorkflow.post_update,
            StatusUpdateInput(responder="alice", text="<!channel> rollback started", eta="15m"),
        )
        await handle.execute_update(
            IncidentWorkflow.set_phase, PhaseInput(responder="alice", phase="fix")
        )
        await handle.execute_update(
            IncidentWorkflow.set_phase, PhaseInput(responder="alice", phase="resolve")
        )
        incident = (await view(handle)).model_copy()
        await eventually(lambda: kinds(slack, "CINCIDENTS")[-1:] == ["resolved"])
        channel = (await view(handle)).id

    name = next(c.name for c in slack.channels.values() if c.name.startswith("inc-"))
    assert name.startswith(channel.lower()) and name.endswith("-api-returns-500s")
    assert kinds(slack, name) == [
        "declared",
        "acknowledged",
        "update",
        "phase_changed",
        "resolved",
    ]
    assert kinds(slack, "CINCIDENTS") == ["declared", "update", "resolved"]
    update = slack.posts(name)[2]["text"]
    assert "Update: &lt;!channel&gt; rollback started" in update and "<!channel>" not in update
    assert "UALICE" in slack.by_name(name).members
    assert incident.phase.value == "Resolve"
    assert len(counting.keys) == len(set(counting.keys)) == 5


async def test_no_duplicate_post_after_lost_response_and_worker_restart(
    dev_env: WorkflowEnvironment, slack: FakeSlack, terminate_later: list
) -> None:
    client = dev_env.client
    task_queue = f"tq-{uuid.uuid4()}"
    # The first post reaches Slack but its answer is lost, as when a worker dies mid-call.
    slack.fail("chat.postMessage", status=500, after_effect=True)
    first = build_worker(
        client, task_queue=task_queue, policy=POLICY, channels=[slack_channel(slack)]
    )
    async with first:
        handle = await declare(client, first)
        terminate_later.append(handle)
        await eventually(lambda: any(c.status == 500 for c in slack.calls))
    failed_at = len(slack.calls)

    second = build_worker(
        client, task_queue=task_queue, policy=POLICY, channels=[slack_channel(slack)]
    )
    async with second:
        await eventually(lambda: kinds(slack, "CINCIDENTS") == ["declared"])
        refs_view = await view(handle)

    name = next(c.name for c in slack.channels.values() if c.name.startswith("inc-"))
    assert kinds(slack, name) == ["declared"]
    assert [c.method for c in slack.calls[failed_at:]] == [
        "conversations.create",
        "conversations.list",
        "conversations.join",
        "conversations.invite",
        "conversations.history",
        "conversations.join",
        "conversations.history",
        "chat.postMessage",
    ]
    assert refs_view.phase.value == "Detect"


async def test_permanent_slack_error_is_recorded_in_the_timeline(
    dev_env: WorkflowEnvironment, slack: FakeSlack, terminate_later: list
) -> None:
    client = dev_env.client
    settings = SlackSettings(bot_token="xoxb-revoked", api_url=slack.api_url)
    channel = SlackChannel(
        SlackApi(new_slack_client(settings)), standard_templates(), POLICY.comms.slack
    )
    worker = build_worker(
        client, task_queue=f"tq-{uuid.uuid4()}", policy=POLICY, channels=[channel]
    )
    async with worker:
        handle = await declare(client, worker)
        terminate_later.append(handle)

        async def failures() -> list[str]:
            return [
                e.text
                for e in (await view(handle)).timeline
                if e.kind is EventKind.NOTIFICATION_FAILED
            ]

        for _ in range(200):
            if await failures():
                break
            await asyncio.sleep(0.05)
        assert await failures() == [
            "slack: declared notification not delivered: "
            "Slack conversations.create failed: invalid_auth (the bot token is invalid)"
        ]
    assert [c.method for c in slack.calls] == ["conversations.create"]
