"""Action items: every clock at its offset exactly once (also across continue-as-new),
validator rejections, completion on time or late, and listing through visibility."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.actions import (
    ActionDone,
    ActionEdit,
    ActionItemInput,
    ActionState,
    ActionStatus,
    ActionWontdo,
    check_owner,
)
from domain.models import IncidentFacts, Notification, NotifyResult, Phase, Severity
from domain.policy import Policy
from starters.cli.actions import list_query, parse_due
from starters.cli.session import CliError
from tests.conftest import Outbox, new_worker
from tests.fakes.slack import FakeSlack
from tests.helpers import declare
from tests.test_cli import Cli, base_env, eventually
from workflows.action_item import ActionItemWorkflow

POLICY = Policy()
ACTIONS = POLICY.actions
Handle = WorkflowHandle[ActionItemWorkflow, ActionState]


async def _add(
    client: Client,
    worker: Worker,
    *,
    due_in: timedelta,
    now: datetime,
    max_history_events: int | None = None,
) -> Handle:
    item = ActionItemInput(
        incident_id="INC-20261127-3A7X",
        title="Alert on queue depth",
        owner="bob",
        due=now + due_in,
        added_by="alice",
        commander="@carol",
        severity=Severity.P1,
        incident_title="Checkout returns 500s",
        max_history_events=max_history_events,
    )
    return await client.start_workflow(
        ActionItemWorkflow.run,
        item,
        id=f"INC-20261127-3A7X-A{uuid.uuid4().int % 10_000}",
        task_queue=worker.task_queue,
    )


def _sent(
    outbox: Outbox, handle: Handle, added: datetime
) -> list[tuple[str, timedelta, list[str]]]:
    """(kind, offset from adding, targets) of every message the item sent, in order."""
    rows = [r for r in outbox.records() if r["key"].startswith(f"{handle.id}/")]
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)), f"a message was delivered twice: {keys}"
    return [(r["kind"], datetime.fromisoformat(r["at"]) - added, r["targets"]) for r in rows]


def _at(sent: list[tuple[str, timedelta, list[str]]], kind: str) -> list[timedelta]:
    return [offset for k, offset, _ in sent if k == kind]


def _near(actual: list[timedelta], expected: list[timedelta]) -> bool:
    return len(actual) == len(expected) and all(
        0 <= (a - e).total_seconds() <= 2 for a, e in zip(actual, expected, strict=True)
    )


@pytest.mark.parametrize(
    ("max_history_events", "cached"),
    [(None, 1000), (12, 1000), (12, 0)],
    ids=["one_run", "continued_as_new", "continued_as_new_every_task_replays"],
)
async def test_every_clock_fires_once_at_its_offset(
    ts_env: WorkflowEnvironment, outbox: Outbox, max_history_events: int | None, cached: int
) -> None:
    due = timedelta(days=3)
    async with new_worker(
        ts_env.client, policy=POLICY, channels=[outbox.channel], max_cached_workflows=cached
    ) as worker:
        added = await ts_env.get_current_time()
        handle = await _add(
            ts_env.client, worker, due_in=due, now=added, max_history_events=max_history_events
        )
        await ts_env.sleep(timedelta(days=15))
        state = await handle.query(ActionItemWorkflow.view)
        described = await handle.describe()
    sent = _sent(outbox, handle, added)

    assert _near(_at(sent, "action_reminder"), [due - ACTIONS.remind_before])
    assert _near(_at(sent, "action_overdue"), [due])
    assert _near(_at(sent, "action_escalated"), [due + ACTIONS.escalate_after])
    every = ACTIONS.digest_every
    assert _near(_at(sent, "action_digest"), [every, 2 * every])
    targets = {kind: who for kind, _, who in sent}
    assert targets["action_reminder"] == ["@bob"] and targets["action_overdue"] == ["@bob"]
    assert targets["action_escalated"] == ["@carol", *ACTIONS.escalate_to, "@bob"]
    assert targets["action_digest"] == ["@carol"]
    assert state.marks.digests_sent == 2 and state.status is ActionStatus.OPEN
    first_run = described.raw_description.workflow_execution_info.first_run_id
    continued = described.run_id != first_run
    assert continued is (max_history_events is not None)


async def test_editing_the_due_date_rearms_the_clocks(
    ts_env: WorkflowEnvironment, outbox: Outbox
) -> None:
    async with new_worker(ts_env.client, policy=POLICY, channels=[outbox.channel]) as worker:
        added = await ts_env.get_current_time()
        handle = await _add(ts_env.client, worker, due_in=timedelta(days=2), now=added)
        await ts_env.sleep(timedelta(days=2, hours=1))  # reminded, then overdue
        new_due = await ts_env.get_current_time() + timedelta(days=3)
        await handle.execute_update(
            ActionItemWorkflow.edit, ActionEdit(responder="bob", due=new_due, owner="dave")
        )
        await ts_env.sleep(timedelta(days=3, hours=1))
        result = await handle.execute_update(ActionItemWorkflow.done, ActionDone(responder="dave"))
        state = await handle.result()
    sent = _sent(outbox, handle, added)
    kinds = [kind for kind, _, _ in sent]

    assert kinds == [
        "action_reminder",
        "action_overdue",
        "action_reminder",
        "action_overdue",
        "action_done",
    ]
    assert sent[2][2] == ["@dave"], "the new owner is reminded"
    assert _near(_at(sent, "action_reminder")[1:], [new_due - added - ACTIONS.remind_before])
    assert result.on_time is False and state.on_time is False and state.owner == "@dave"


async def test_done_on_time_and_late_are_recorded(
    ts_env: WorkflowEnvironment, outbox: Outbox
) -> None:
    async with new_worker(ts_env.client, policy=POLICY, channels=[outbox.channel]) as worker:
        now = await ts_env.get_current_time()
        early = await _add(ts_env.client, worker, due_in=timedelta(days=1), now=now)
        late = await _add(ts_env.client, worker, due_in=timedelta(hours=1), now=now)
        await ts_env.sleep(timedelta(hours=2))
        on_time = await early.execute_update(
            ActionItemWorkflow.done, ActionDone(responder="bob", note="alert added")
        )
        overdue = await late.execute_update(ActionItemWorkflow.done, ActionDone(responder="bob"))
        early_state, late_state = await early.result(), await late.result()

    assert on_time.on_time is True and "on time" in on_time.message
    assert overdue.on_time is False and "late" in overdue.message
    assert early_state.status is ActionStatus.DONE and early_state.note == "alert added"
    assert early_state.completed_at is not None and early_state.completed_at <= early_state.due
    assert late_state.completed_at is not None and late_state.completed_at > late_state.due
    assert "action_done" in [kind for kind, _, _ in _sent(outbox, late, now)]


async def test_validators_reject_with_the_reason_and_write_nothing(
    ts_env: WorkflowEnvironment, outbox: Outbox
) -> None:
    async with new_worker(ts_env.client, policy=POLICY, channels=[outbox.channel]) as worker:
        now = await ts_env.get_current_time()
        handle = await _add(ts_env.client, worker, due_in=timedelta(days=5), now=now)
        past = now - timedelta(hours=1)
        refusals = {
            "in the past": ActionEdit(responder="bob", due=past),
            "unknown owner format": ActionEdit(responder="bob", owner="bob <script>"),
            "nothing to change": ActionEdit(responder="bob"),
            "must not be empty": ActionEdit(responder="bob", title="  "),
        }
        for reason, command in refusals.items():
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await handle.execute_update(ActionItemWorkflow.edit, command)
            assert reason in str(refused.value.cause), reason
        with pytest.raises(WorkflowUpdateFailedError) as no_reason:
            await handle.execute_update(
                ActionItemWorkflow.wontdo, ActionWontdo(responder="b", reason=" ")
            )
        assert "reason is required" in str(no_reason.value.cause)
        untouched = await handle.query(ActionItemWorkflow.view)
        history = await handle.fetch_history()
        dropped = await handle.execute_update(
            ActionItemWorkflow.wontdo, ActionWontdo(responder="bob", reason="replaced by X")
        )
        state = await handle.result()

    assert untouched.edits == 0 and untouched.due == now + timedelta(days=5)
    assert not any(
        e.HasField("workflow_execution_update_accepted_event_attributes") for e in history.events
    )
    assert dropped.status is ActionStatus.DROPPED
    assert state.reason == "replaced by X" and state.completed_at is not None


def test_input_rules() -> None:
    assert check_owner("@bob") is None and check_owner("bob.smith") is None
    assert check_owner("x" * 101) is not None and check_owner("a\tb") is not None
    now = datetime(2026, 11, 27, 12, tzinfo=UTC)
    assert parse_due("7d", now) == now + timedelta(days=7)
    assert parse_due("2026-12-03", now) == datetime(2026, 12, 3, 23, 59, 59, tzinfo=UTC)
    assert parse_due("2026-12-03 14:00", now) == datetime(2026, 12, 3, 14, tzinfo=UTC)
    for bad in ("2026-11-01", "soon", "2026-13-01"):
        with pytest.raises(CliError):
            parse_due(bad, now)
    query = list_query(owner="bob", incident=None, overdue=True, include_closed=False, now=now)
    assert "ActionOwner = '@bob'" in query and f"ActionDueAt < {int(now.timestamp())}" in query


# ---------------------------------------------------------------- dev server, CLI


@pytest_asyncio.fixture(loop_scope="session")
async def actions_cli(dev_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Any]:
    worker = new_worker(dev_env.client, policy=POLICY)
    env = base_env(tmp_path) | {
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": dev_env.client.namespace,
        "INCIDENT_TASK_QUEUE": worker.task_queue,
    }
    async with worker:
        yield Cli(env), worker


async def test_cli_adds_lists_and_closes_action_items_across_incidents(
    dev_env: WorkflowEnvironment, actions_cli: Any, terminate_later: list[Any]
) -> None:
    cli, worker = actions_cli
    client = dev_env.client
    first = await declare(client, worker, title="Checkout returns 500s")
    second = await declare(client, worker, title="Search is slow")
    terminate_later.extend([first, second])

    soon = (
        await cli.ok("action", "add", first.id, "Add queue alert", "--owner", "bob", "--due", "2s")
    ).stdout.strip()
    later = (
        await cli.ok("action", "add", first.id.lower(), "Runbook", "--owner", "@ann", "--due", "7d")
    ).stdout.strip()
    other = await cli.json(
        "action", "add", second.id, "Cache warmup", "--owner", "bob", "--due", "2026-12-31"
    )
    ids = [soon, later, other["action_id"]]
    terminate_later.extend(client.get_workflow_handle(aid) for aid in ids)
    assert ids[:2] == [f"{first.id}-A1", f"{first.id}-A2"] and ids[2] == f"{second.id}-A1"

    async def overdue() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await cli.json("actions", "--overdue", "--owner", "bob")
        assert [row["id"] for row in rows if row["incident_id"] in (first.id, second.id)] == [soon]
        return rows

    rows = await eventually(overdue)
    assert rows[0]["overdue"] is True and rows[0]["title"] == "Add queue alert"

    async def by_owner() -> None:
        mine = await cli.json("actions", "--owner", "@bob")
        assert {row["id"] for row in mine} >= {soon, other["action_id"]}
        assert later not in {row["id"] for row in mine}
        of_first = await cli.json("actions", "--incident", first.id)
        assert [row["id"] for row in of_first] == [soon, later], "soonest due first"

    await eventually(by_owner)
    table = await cli.ok("actions", "--incident", first.id)
    assert "OVERDUE" in table.stdout and "Runbook" in table.stdout

    done = await cli.json("action", "done", soon, "--note", "added")
    assert done["on_time"] is False and done["status"] == "done"
    early = await cli.json("action", "done", later)
    assert early["on_time"] is True

    async def closed() -> None:
        rows = await cli.json("actions", "--incident", first.id, "--all")
        assert {(row["id"], row["status"], row["on_time"]) for row in rows} == {
            (soon, "done", False),
            (later, "done", True),
        }
        assert await cli.json("actions", "--incident", first.id) == []

    await eventually(closed)


async def test_cli_refusals_exit_1_with_the_reason(
    dev_env: WorkflowEnvironment, actions_cli: Any, terminate_later: list[Any]
) -> None:
    cli, worker = actions_cli
    incident = await declare(dev_env.client, worker)
    terminate_later.append(incident)

    assert "not found" in await cli.refused(
        "action", "add", "INC-20200101-ZZZZ", "x", "--owner", "bob", "--due", "1d"
    )
    assert "in the past" in await cli.refused(
        "action", "add", incident.id, "x", "--owner", "bob", "--due", "2020-01-01"
    )
    assert "owner format" in await cli.refused(
        "action", "add", incident.id, "x", "--owner", "b o b", "--due", "1d"
    )
    assert "not found" in await cli.refused("action", "done", f"{incident.id}-A9")
    assert "not an action ID" in await cli.refused("action", "done", "nope")
    aid = (
        await cli.ok("action", "add", incident.id, "x", "--owner", "bob", "--due", "1d")
    ).stdout.strip()
    terminate_later.append(dev_env.client.get_workflow_handle(aid))
    assert "nothing to change" in await cli.refused("action", "edit", aid)
    assert "reason" in await cli.refused("action", "wontdo", aid, "--reason", " ")
    await cli.ok("action", "wontdo", aid, "--reason", "duplicate of A1")
    assert "closed (dropped)" in await cli.refused("action", "done", aid)


async def test_of_two_closing_commands_in_one_task_exactly_one_wins(
    ts_env: WorkflowEnvironment, outbox: Outbox
) -> None:
    async with new_worker(ts_env.client, policy=POLICY, channels=[outbox.channel]) as worker:
        now = await ts_env.get_current_time()
        handle = await _add(ts_env.client, worker, due_in=timedelta(days=2), now=now)
        await handle.query(ActionItemWorkflow.view)  # started and set up
        outcomes = await asyncio.gather(
            handle.execute_update(ActionItemWorkflow.done, ActionDone(responder="bob")),
            handle.execute_update(
                ActionItemWorkflow.wontdo, ActionWontdo(responder="carol", reason="obsolete")
            ),
            return_exceptions=True,
        )
        state = await handle.result()

    won = [o for o in outcomes if not isinstance(o, BaseException)]
    # Refused by the validator or the handler's re-check (or, had the winner already
    # closed the workflow, by the server): either way it changed nothing.
    lost = [o for o in outcomes if isinstance(o, WorkflowUpdateFailedError | RPCError)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert won[0].status is state.status
    closing = [r["kind"] for r in outbox.records() if r["key"].startswith(f"{handle.id}/")]
    assert closing == [f"action_{'done' if state.status is ActionStatus.DONE else 'dropped'}"]


def test_hostile_titles_are_escaped_in_slack_and_folded_on_the_console() -> None:
    from activities.outbox import render_console
    from activities.template_check import _sample
    from activities.templates import Trusted, standard_templates
    from domain.models import NotificationKind

    templates = standard_templates()
    sample = _sample(NotificationKind.ACTION_OVERDUE)
    sample.key = "INC-20260101-TEST-A3/2"
    sample.text = "INC-20260101-TEST-A3 “<!channel> fix\nFAKE LINE” (owner @bob)"
    slack = templates.render("slack", sample, mentions=Trusted("<@U1>"))
    console = render_console(templates, sample)

    assert "&lt;!channel&gt;" in slack and "<!channel>" not in slack
    assert "incident action done INC-20260101-TEST-A3" in console
    assert "\nFAKE LINE" not in console


class _PublicChannel:
    """Stands in for the status page: an action item must never reach it."""

    name = "statuspage"

    def __init__(self) -> None:
        self.keys: list[str] = []

    async def deliver(self, notification: Notification) -> NotifyResult:
        self.keys.append(notification.key)
        return NotifyResult()


async def test_messages_reach_the_incidents_slack_channel_and_never_the_public(
    ts_env: WorkflowEnvironment, outbox: Outbox, slack: FakeSlack
) -> None:
    from activities.slack import SlackApi, SlackChannel, new_slack_client
    from activities.templates import standard_templates
    from domain.comms import SlackSettings, incident_channel_name

    facts = IncidentFacts(
        id="INC-20261127-3A7X",
        title="Checkout returns 500s",
        severity=Severity.P1,
        phase=Phase.RESOLVE,
        declared_at=datetime(2026, 11, 27, tzinfo=UTC),
    )
    room = slack.add_channel(incident_channel_name(facts))
    settings = SlackSettings(bot_token=slack.token, api_url=slack.api_url)
    channel = SlackChannel(
        SlackApi(new_slack_client(settings)), standard_templates(), POLICY.comms.slack
    )
    public = _PublicChannel()
    channels = [outbox.channel, channel, public]
    async with new_worker(ts_env.client, policy=POLICY, channels=channels) as worker:
        now = await ts_env.get_current_time()
        handle = await _add(ts_env.client, worker, due_in=timedelta(days=2), now=now)
        await ts_env.sleep(timedelta(days=2, hours=1))
        await handle.execute_update(ActionItemWorkflow.done, ActionDone(responder="bob"))
        await handle.result()

    posted = [m["metadata"]["event_payload"]["kind"] for m in slack.posts(room.id)]
    assert posted == ["action_reminder", "action_overdue", "action_done"]
    assert "Alert on queue depth" in slack.posts(room.id)[0]["text"]
    assert public.keys == []
    assert [r["kind"] for r in outbox.records() if r["key"].startswith(handle.id)] == posted
