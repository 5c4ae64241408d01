"""Jira export of action items, against a Jira Cloud REST API served on loopback.

The activity creates one issue per item even when a response is lost; the
workflow records its key and URL once, across continue-as-new, while Jira
outages never delay a reminder; ``POST /webhooks/jira`` marks the item done
when its issue reaches a done status, and refuses what it must.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities.jira import JiraIssueInput, JiraIssues, new_jira_client
from domain.actions import (
    ActionDone,
    ActionItemInput,
    ActionState,
    ActionStatus,
    action_of_jira_labels,
    jira_label,
)
from domain.policy import Policy, policy_from_mapping
from domain.settings import JiraSettings, Settings
from starters.http_app import create_app
from starters.webhooks import WebhookSettings
from starters.webhooks.jira import signature_of
from tests.conftest import Outbox, new_worker
from tests.fakes.jira import FakeJira
from tests.test_cli import Cli, base_env, eventually
from workflows.action_item import ActionItemWorkflow

POLICY = policy_from_mapping({"actions": {"jira": {"project": "OPS"}}})
INCIDENT = "INC-20261127-3A7X"
SECRET = "jira-webhook-secret"
Handle = WorkflowHandle[ActionItemWorkflow, ActionState]


@pytest_asyncio.fixture(loop_scope="session")
async def jira() -> AsyncIterator[FakeJira]:
    """A Jira Cloud site with project ``OPS`` on a free loopback port."""
    fake = FakeJira()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def settings_for(fake: FakeJira, *, token: str | None = None) -> JiraSettings:
    """``JIRA_*`` pointing at ``fake``."""
    return JiraSettings(
        url=fake.url,
        email=fake.email,
        api_token=SecretStr(token or fake.token),
        webhook_secret=SecretStr(SECRET),
        timeout=5.0,
    )


def issues_of(fake: FakeJira, token: str | None = None) -> JiraIssues:
    """The activity class with a client pointed at ``fake``."""
    settings = settings_for(fake, token=token)
    return JiraIssues(new_jira_client(settings), site_url=settings.url)


def _issue(aid: str, **fields: Any) -> JiraIssueInput:
    return JiraIssueInput.model_validate(
        {
            "action_id": aid,
            "incident_id": INCIDENT,
            "incident_title": "Checkout returns 500s",
            "title": "Alert on checkout queue depth",
            "owner": "@bob",
            "due": datetime(2026, 12, 3, tzinfo=UTC),
            "project": "OPS",
            **fields,
        }
    )


# ------------------------------------------------------------------ activity


async def test_creates_one_labelled_issue_and_finds_it_again(jira: FakeJira) -> None:
    activity = ActivityEnvironment()
    issues = issues_of(jira)

    first = await activity.run(issues.export, _issue(f"{INCIDENT}-A1"))
    again = await activity.run(issues.export, _issue(f"{INCIDENT}-A1"))

    assert first.key == again.key == "OPS-1"
    assert first.url == f"{jira.url}/browse/OPS-1"
    [created] = jira.created()
    assert created.labels == ["incident-action-inc-20261127-3a7x-a1"]
    assert created.fields["issuetype"] == {"name": "Task"}
    assert created.fields["summary"] == f"Alert on checkout queue depth ({INCIDENT}-A1)"
    texts = [p["content"][0]["text"] for p in created.fields["description"]["content"]]
    assert texts[1] == f"Action item {INCIDENT}-A1 of incident {INCIDENT} “Checkout returns 500s”"
    assert len(jira.calls("/rest/api/3/issue")) == 1, "the second call found the issue"
    assert len(jira.calls("/rest/api/3/search/jql")) == 2


@pytest.mark.parametrize("status", [500, 502])
async def test_a_lost_create_response_never_makes_a_second_issue(
    jira: FakeJira, status: int
) -> None:
    activity = ActivityEnvironment()
    issues = issues_of(jira)
    jira.fail("/rest/api/3/issue", status, after_effect=True)

    with pytest.raises(ApplicationError) as lost:
        await activity.run(issues.export, _issue(f"{INCIDENT}-A2"))
    assert not lost.value.non_retryable, "a 5xx is retried"
    retried = await activity.run(issues.export, _issue(f"{INCIDENT}-A2"))

    assert [issue.key for issue in jira.created()] == [retried.key]
    assert [r.status for r in jira.calls("/rest/api/3/issue")] == [status]


async def test_permanent_errors_are_not_retried_and_say_what_to_fix(jira: FakeJira) -> None:
    activity = ActivityEnvironment()

    with pytest.raises(ApplicationError) as unauthorized:
        await activity.run(issues_of(jira, token="wrong").export, _issue(f"{INCIDENT}-A3"))
    with pytest.raises(ApplicationError) as unknown_project:
        await activity.run(issues_of(jira).export, _issue(f"{INCIDENT}-A3", project="NOPE"))

    assert unauthorized.value.non_retryable and unauthorized.value.type == "JiraPermanentError"
    assert "JIRA_EMAIL and JIRA_API_TOKEN" in str(unauthorized.value)
    assert unknown_project.value.non_retryable
    assert "HTTP 400" in str(unknown_project.value)
    assert "project: valid project is required" in str(unknown_project.value)
    assert jira.created() == []


async def test_rate_limits_retry_after_the_delay_jira_asks_for(jira: FakeJira) -> None:
    jira.fail("/rest/api/3/search/jql", 429, retry_after=7)

    with pytest.raises(ApplicationError) as limited:
        await ActivityEnvironment().run(issues_of(jira).export, _issue(f"{INCIDENT}-A4"))

    assert not limited.value.non_retryable
    assert limited.value.next_retry_delay == timedelta(seconds=7)
    assert jira.created() == []


async def test_an_unreachable_jira_is_retried(jira: FakeJira) -> None:
    await jira.stop()  # nothing listens on its port any more

    with pytest.raises(ApplicationError) as unreachable:
        await ActivityEnvironment().run(issues_of(jira).export, _issue(f"{INCIDENT}-A6"))

    assert not unreachable.value.non_retryable and unreachable.value.type == "JiraError"
    assert "ConnectError" in str(unreachable.value)


async def test_hostile_titles_are_capped_and_cleaned(jira: FakeJira) -> None:
    title = "Fix\x00 the\r\nqueue\x1b[31m " + "x" * 10_000

    ref = await ActivityEnvironment().run(
        issues_of(jira).export, _issue(f"{INCIDENT}-A5", title=title)
    )

    summary = jira.issues[ref.key].fields["summary"]
    assert len(summary) == 255 and "\n" not in summary and "\x00" not in summary
    assert summary.startswith("Fix the queue[31m x")
    description = json.dumps(jira.issues[ref.key].fields["description"])
    assert "\\u0000" not in description and len(description) < 3_000


def test_labels_map_back_to_action_ids() -> None:
    label = jira_label(f"{INCIDENT}-A12")
    assert label == "incident-action-inc-20261127-3a7x-a12"
    assert action_of_jira_labels(["ops", label]) == f"{INCIDENT}-A12"
    assert action_of_jira_labels(["incident-action-not-an-id", "ops"]) is None


# ------------------------------------------------------------------ workflow


def _item(now: datetime, **fields: Any) -> ActionItemInput:
    return ActionItemInput.model_validate(
        {
            "incident_id": INCIDENT,
            "title": "Alert on queue depth",
            "owner": "bob",
            "due": now + timedelta(days=3),
            "added_by": "alice",
            "commander": "@carol",
            "incident_title": "Checkout returns 500s",
            **fields,
        }
    )


async def _add(client: Client, worker: Worker, item: ActionItemInput) -> Handle:
    return await client.start_workflow(
        ActionItemWorkflow.run,
        item,
        id=f"{INCIDENT}-A{uuid.uuid4().int % 100_000}",
        task_queue=worker.task_queue,
    )


async def _recorded(handle: Handle) -> ActionState:
    async def check() -> ActionState:
        state = await handle.query(ActionItemWorkflow.view)
        assert state.jira_key is not None or state.jira_error
        return state

    return await eventually(check, timeout=30.0)


@pytest.mark.parametrize("cached", [1000, 0], ids=["cached", "every_task_replays"])
async def test_the_item_records_its_issue_once_across_continue_as_new(
    ts_env: WorkflowEnvironment, jira: FakeJira, outbox: Outbox, cached: int
) -> None:
    jira.fail("/rest/api/3/issue", 500, after_effect=True)  # the first answer is lost
    async with new_worker(
        ts_env.client,
        policy=POLICY,
        channels=[outbox.channel],
        jira=issues_of(jira),
        max_cached_workflows=cached,
    ) as worker:
        now = await ts_env.get_current_time()
        handle = await _add(ts_env.client, worker, _item(now, max_history_events=12))
        await ts_env.sleep(timedelta(minutes=1))  # the retry after the lost answer
        first = await _recorded(handle)
        await ts_env.sleep(timedelta(days=4))  # reminder, overdue notice: continues as new
        state = await handle.query(ActionItemWorkflow.view)
        described = await handle.describe()
        memo = await described.memo()

    assert [issue.key for issue in jira.created()] == [first.jira_key]
    assert first.jira_url == f"{jira.url}/browse/{first.jira_key}"
    assert described.run_id != described.raw_description.workflow_execution_info.first_run_id
    assert (state.jira_key, state.jira_url) == (first.jira_key, first.jira_url)
    assert memo["jira_key"] == first.jira_key and memo["jira_url"] == first.jira_url
    assert [r.status for r in jira.calls("/rest/api/3/issue")] == [500], "created once"
    kinds = [r["kind"] for r in outbox.records() if r["key"].startswith(f"{handle.id}/")]
    assert kinds == ["action_reminder", "action_overdue"]


async def test_jira_down_delays_only_the_issue_never_a_reminder(
    ts_env: WorkflowEnvironment, jira: FakeJira, outbox: Outbox
) -> None:
    for _ in range(4):
        jira.fail("/rest/api/3/search/jql", 503)
    async with new_worker(
        ts_env.client, policy=POLICY, channels=[outbox.channel], jira=issues_of(jira)
    ) as worker:
        added = await ts_env.get_current_time()
        handle = await _add(ts_env.client, worker, _item(added, due=added + timedelta(days=1)))
        await ts_env.sleep(timedelta(hours=1))  # remind_before is 1 day: reminded at once
        reminded = [r for r in outbox.records() if r["key"].startswith(f"{handle.id}/")]
        state = await _recorded(handle)

    assert [r["kind"] for r in reminded] == ["action_reminder"]
    assert datetime.fromisoformat(reminded[0]["at"]) - added < timedelta(seconds=5)
    assert [r.status for r in jira.calls("/rest/api/3/search/jql")][:4] == [503] * 4
    assert state.jira_key == "OPS-1" and len(jira.created()) == 1


async def test_a_permanent_jira_error_is_recorded_and_the_item_goes_on(
    ts_env: WorkflowEnvironment, jira: FakeJira, outbox: Outbox
) -> None:
    policy = policy_from_mapping({"actions": {"jira": {"project": "NOPE"}}})
    async with new_worker(
        ts_env.client, policy=policy, channels=[outbox.channel], jira=issues_of(jira)
    ) as worker:
        now = await ts_env.get_current_time()
        handle = await _add(ts_env.client, worker, _item(now))
        await ts_env.sleep(timedelta(minutes=1))
        state = await _recorded(handle)
        await handle.execute_update(ActionItemWorkflow.done, ActionDone(responder="bob"))
        final = await handle.result()

    assert state.jira_key is None and "valid project is required" in state.jira_error
    assert final.status is ActionStatus.DONE and jira.created() == []


async def test_without_jira_credentials_nothing_is_exported(
    ts_env: WorkflowEnvironment, outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("JIRA_URL", "JIRA_EMAIL", "JIRA_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)  # the worker reads them when not handed one
    async with new_worker(ts_env.client, policy=POLICY, channels=[outbox.channel]) as worker:
        now = await ts_env.get_current_time()
        handle = await _add(ts_env.client, worker, _item(now))
        await ts_env.sleep(timedelta(hours=1))
        await handle.execute_update(ActionItemWorkflow.done, ActionDone(responder="bob"))
        final = await handle.result()

    assert final.policy is not None and final.policy.jira.project == ""
    assert final.jira_key is None and final.jira_error == ""


# ------------------------------------------------------------------- webhook


@pytest_asyncio.fixture(loop_scope="session")
async def jira_service(
    dev_env: WorkflowEnvironment, jira: FakeJira
) -> AsyncIterator[tuple[httpx.AsyncClient, Worker]]:
    """The HTTP app (in-process) with ``JIRA_WEBHOOK_SECRET`` set, and a worker exporting to
    the fake Jira, on the dev server."""
    async with new_worker(dev_env.client, policy=POLICY, jira=issues_of(jira)) as worker:
        app = create_app(
            settings=Settings(task_queue=worker.task_queue),
            client=dev_env.client,
            policy=POLICY,
            webhook_settings=WebhookSettings(),
            jira_settings=settings_for(jira),
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hooks.test") as http:
            yield http, worker


async def _post(http: httpx.AsyncClient, body: dict[str, Any], secret: str = SECRET) -> Any:
    raw = json.dumps(body).encode()
    headers = {"X-Hub-Signature": signature_of(secret, raw), "Content-Type": "application/json"}
    return await http.post("/webhooks/jira", content=raw, headers=headers)


async def test_the_webhook_marks_the_item_done_when_its_issue_is_done(
    dev_env: WorkflowEnvironment,
    jira: FakeJira,
    jira_service: tuple[httpx.AsyncClient, Worker],
    terminate_later: list[Any],
    tmp_path: Path,
) -> None:
    http, worker = jira_service
    now = datetime.now(UTC)
    handle = await _add(dev_env.client, worker, _item(now))
    terminate_later.append(handle)
    key = (await _recorded(handle)).jira_key
    assert key is not None

    cli = Cli(
        base_env(tmp_path)
        | {
            "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": dev_env.client.namespace,
            "INCIDENT_TASK_QUEUE": worker.task_queue,
        }
    )

    async def listed() -> None:
        rows = await cli.json("actions", "--incident", INCIDENT)
        row = next(row for row in rows if row["id"] == handle.id)
        assert (row["jira_key"], row["jira_url"]) == (key, f"{jira.url}/browse/{key}")

    await eventually(listed)
    table = (await cli.ok("actions", "--incident", INCIDENT)).stdout
    assert "JIRA" in table and any(handle.id in line and key in line for line in table.splitlines())

    in_progress = await _post(http, jira.move_to(key, "indeterminate"))
    done_body = jira.move_to(key, "done")
    forged = await _post(http, done_body, secret="not-the-secret")
    unsigned = await http.post("/webhooks/jira", json=done_body)
    assert (await handle.query(ActionItemWorkflow.view)).status is ActionStatus.OPEN

    done = await _post(http, done_body)
    state = await handle.result()
    again = await _post(http, done_body)

    assert in_progress.status_code == 200 and in_progress.json()["result"] == "ignored"
    assert forged.status_code == 401 and forged.json()["error"] == "invalid X-Hub-Signature"
    assert unsigned.status_code == 401
    assert done.status_code == 200, done.text
    assert done.json()["result"] == "done" and done.json()["action_id"] == handle.id
    assert state.status is ActionStatus.DONE and state.note == f"done in Jira {key}"
    assert again.status_code == 200 and again.json()["result"] == "ignored"
    assert again.json()["message"] == f"no open action item {handle.id}"


async def test_only_the_items_own_issue_closes_it(
    dev_env: WorkflowEnvironment,
    jira: FakeJira,
    jira_service: tuple[httpx.AsyncClient, Worker],
    terminate_later: list[Any],
) -> None:
    http, worker = jira_service
    handle = await _add(dev_env.client, worker, _item(datetime.now(UTC)))
    terminate_later.append(handle)
    key = (await _recorded(handle)).jira_key
    copied = jira.move_to(str(key), "done")
    copied["issue"]["key"] = "OPS-999"  # someone put the item's label on another issue

    impostor = await _post(http, copied)
    unlabelled = jira.move_to(str(key), "done")
    unlabelled["issue"]["fields"]["labels"] = ["ops"]
    stranger = await _post(http, unlabelled)
    tampered = await http.post(
        "/webhooks/jira",
        content=json.dumps(unlabelled).encode() + b" ",
        headers={"X-Hub-Signature": signature_of(SECRET, json.dumps(unlabelled).encode())},
    )
    state = await handle.query(ActionItemWorkflow.view)

    assert impostor.status_code == 200 and impostor.json()["result"] == "ignored"
    assert impostor.json()["message"] == f"{handle.id} is tracked by Jira issue {key}, not OPS-999"
    assert stranger.json() == {
        "result": "ignored",
        "action_id": None,
        "issue": key,
        "message": "the issue is not an action item's",
    }
    assert tampered.status_code == 401
    assert state.status is ActionStatus.OPEN


async def test_the_webhook_refuses_oversized_and_malformed_bodies(
    jira_service: tuple[httpx.AsyncClient, Worker],
) -> None:
    http, _ = jira_service
    huge = b"{" + b" " * (WebhookSettings().max_body_bytes + 1) + b"}"
    too_large = await http.post(
        "/webhooks/jira", content=huge, headers={"X-Hub-Signature": signature_of(SECRET, huge)}
    )
    garbage = b"not json"
    malformed = await http.post(
        "/webhooks/jira",
        content=garbage,
        headers={"X-Hub-Signature": signature_of(SECRET, garbage)},
    )

    assert too_large.status_code == 413
    assert malformed.status_code == 400


async def test_the_endpoint_is_absent_without_a_secret(
    dev_env: WorkflowEnvironment, jira: FakeJira
) -> None:
    app = create_app(
        settings=Settings(task_queue="unused"),
        client=dev_env.client,
        policy=Policy(),
        webhook_settings=WebhookSettings(),
        jira_settings=JiraSettings(url=jira.url, webhook_secret=None),
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://hooks.test"
    ) as http:
        answer = await _post(http, {"webhookEvent": "jira:issue_updated"})

    assert answer.status_code == 404
