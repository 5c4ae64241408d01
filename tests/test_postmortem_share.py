"""The post-mortem draft a resolved incident writes: its action-item table read from
visibility, and one upload per version to the incident's Slack channel (dev server,
real slack-sdk against the local Slack API)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.slack import SlackApi, SlackChannel, new_slack_client
from activities.templates import standard_templates
from domain.actions import ActionItemInput
from domain.comms import CommsPolicy, SlackPolicy, SlackSettings
from domain.models import AcknowledgeInput, PhaseInput, RecordInput, Severity
from domain.policy import Policy
from tests.fakes.slack import FakeSlack
from tests.helpers import declare
from workers.wiring import build_worker
from workflows.action_item import ActionItemWorkflow
from workflows.incident import IncidentWorkflow

POLICY = Policy(
    comms=CommsPolicy(
        slack=SlackPolicy(users={"alice": "UALICE"}, channels={"#incidents": "CINCIDENTS"})
    )
)


async def _eventually(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


def _drafts(fake: FakeSlack, incident_id: str) -> list[str]:
    """Drafts of ``incident_id`` uploaded (the fake Slack is shared by the session's tests)."""
    prefix = f"{incident_id}-postmortem-draft-"
    return [name for name in (u.filename for u in fake.files.values()) if name.startswith(prefix)]


async def test_draft_lists_action_items_and_is_shared_once_per_version(
    dev_env: WorkflowEnvironment, slack: FakeSlack, tmp_path: Path, terminate_later: list[Any]
) -> None:
    client: Client = dev_env.client
    settings = SlackSettings(bot_token=slack.token, api_url=slack.api_url)
    channel = SlackChannel(
        SlackApi(new_slack_client(settings)), standard_templates(), POLICY.comms.slack
    )
    worker = build_worker(
        client,
        task_queue=f"tq-{uuid.uuid4()}",
        policy=POLICY,
        channels=[channel],
        archive_dir=tmp_path / "timelines",
        postmortems_dir=tmp_path / "postmortems",
    )
    async with worker:
        handle = await declare(client, worker, severity=Severity.P1, title="Checkout | down")
        item = await client.start_workflow(
            ActionItemWorkflow.run,
            ActionItemInput(
                incident_id=handle.id,
                title="Alert on *queue* depth | now",
                owner="bob",
                due=datetime.now(UTC) + timedelta(days=3),
                added_by="alice",
                commander="@alice",
                severity=Severity.P1,
                incident_title="Checkout | down",
            ),
            id=f"{handle.id}-A1",
            task_queue=worker.task_queue,
        )
        terminate_later.append(item)
        listed = f"ActionIncident = '{handle.id}'"
        for _ in range(100):  # visibility lags the start a little
            if (await client.count_workflows(listed)).count:
                break
            await asyncio.sleep(0.1)

        await handle.execute_update(
            IncidentWorkflow.acknowledge, AcknowledgeInput(responder="alice")
        )
        await handle.execute_update(
            IncidentWorkflow.set_phase, PhaseInput(responder="alice", phase="resolve")
        )
        path = tmp_path / "postmortems" / f"{handle.id}.md"
        await _eventually(lambda: path.exists() and _drafts(slack, handle.id))
        draft = path.read_text()
        first = _drafts(slack, handle.id)

        await handle.execute_update(
            IncidentWorkflow.set_record, RecordInput(responder="alice", root_cause="bad deploy")
        )
        await _eventually(lambda: len(_drafts(slack, handle.id)) == 2)
        await asyncio.sleep(1)  # nothing more comes
        second = path.read_text()
        uploads = _drafts(slack, handle.id)
        await handle.terminate("test over")

    assert "| Alert on \\*queue\\* depth \\| now | @bob |" in draft
    assert len(first) == 1 and first[0].startswith(f"{handle.id}-postmortem-draft-")
    assert len(uploads) == 2 and len(set(uploads)) == 2, "one upload per version"
    assert "bad deploy" in second and "bad deploy" not in draft
    shared = [m for m in slack.posts(slack_channel_id(slack, handle.id)) if m.get("files")]
    assert len(shared) == 2 and "Post-mortem draft for" in shared[0]["text"]


def slack_channel_id(fake: FakeSlack, incident_id: str) -> str:
    return next(c.id for c in fake.channels.values() if c.name.startswith(incident_id.lower()))
