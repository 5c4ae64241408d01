"""The alert group's life: forgetting idle keys, completed incidents, continue-as-new.

The alert-group histories in ``tests/histories`` (replayed by
``tests/test_replay.py``) are recorded by ``python -m tests.record_histories``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
)
from temporalio.common import WorkflowIDConflictPolicy

from domain.models import (
    AcknowledgeInput,
    AlertEvent,
    Declaration,
    PhaseInput,
    Severity,
)
from domain.policy import Policy, policy_from_mapping
from domain.settings import Settings
from starters.http_app import create_app
from starters.webhooks import WebhookSettings
from tests.conftest import new_worker, webhook_fixture
from tests.replaying import replay_failures
from workflows.alert_group import (
    AlertDelivery,
    AlertGroupWorkflow,
    GroupInput,
    alert_group_id,
)
from workflows.alert_intake import alert_intake_id
from workflows.incident import IncidentWorkflow
from workflows.legacy.alert_group_v1 import LegacyAlertGroupWorkflow


class Hooks:
    """The app in-process with a worker (optionally replaying every task)."""

    def __init__(self, client: Client, task_queue: str, http: httpx.AsyncClient) -> None:
        self.client = client
        self.task_queue = task_queue
        self.http = http

    async def fire(self, fingerprint: str, status: str = "firing") -> dict[str, Any]:
        payload = webhook_fixture("alertmanager_firing")
        payload["status"] = status
        payload["alerts"][0].update(status=status, fingerprint=fingerprint)
        response = await self.http.post("/webhooks/alertmanager", json=payload)
        assert response.status_code == 200, response.text
        outcome: dict[str, Any] = response.json()["incidents"][0]
        return outcome

    def incident(self, incident_id: str) -> Any:
        return self.client.get_workflow_handle_for(IncidentWorkflow.run, incident_id)

    def group(self, fingerprint: str) -> Any:
        group_id = alert_group_id("alertmanager", fingerprint)
        return self.client.get_workflow_handle_for(AlertGroupWorkflow.run, group_id)

    async def resolve(self, incident_id: str) -> None:
        handle = self.incident(incident_id)
        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bo"))
        await handle.execute_update(
            IncidentWorkflow.set_phase, PhaseInput(responder="bo", phase="resolve")
        )

    async def wait_closed(self, fingerprint: str) -> None:
        for _ in range(200):
            if (await self.group(fingerprint).query(AlertGroupWorkflow.view)).open_incident is None:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the group was never told its incident closed")


@asynccontextmanager
async def _hooks(client: Client, policy: Policy, **worker: Any) -> AsyncIterator[Hooks]:
    async with new_worker(client, policy=policy, **worker) as running:
        app = create_app(
            settings=Settings(task_queue=running.task_queue, webhook_token=None),
            client=client,
            policy=policy,
            webhook_settings=WebhookSettings(),
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hooks.test") as http:
            yield Hooks(client, running.task_queue, http)


async def test_idle_group_is_forgotten_and_a_later_trigger_starts_afresh(dev_env):
    policy = policy_from_mapping({"routing": {"repeat_window": "1s"}})
    async with _hooks(dev_env.client, policy, max_cached_workflows=0) as hooks:
        fingerprint = uuid.uuid4().hex[:16]
        first = await hooks.fire(fingerprint)
        await hooks.resolve(first["incident_id"])
        await hooks.wait_closed(fingerprint)
        group = hooks.group(fingerprint)
        result = await asyncio.wait_for(group.result(), timeout=15)
        assert result.last_incident == first["incident_id"]
        assert (await group.describe()).status is WorkflowExecutionStatus.COMPLETED

        again = await hooks.fire(fingerprint)
        assert again["new"] is True and again["related_incident"] is None
        assert again["incident_id"] != first["incident_id"]


async def test_incident_that_completed_unannounced_is_replaced(dev_env):
    async with _hooks(dev_env.client, Policy()) as hooks:
        fingerprint = uuid.uuid4().hex[:16]
        first = await hooks.fire(fingerprint)
        await hooks.incident(first["incident_id"]).terminate("gone without telling its group")
        assert (await hooks.fire(fingerprint, "resolved"))["action"] == "ignored"
        again = await hooks.fire(fingerprint)
        assert again["new"] is True
        assert again["related_incident"] == first["incident_id"]
        view = await hooks.incident(again["incident_id"]).query(IncidentWorkflow.view)
        assert view.related_incident == first["incident_id"]


async def _deliver_with_start(
    client: Client, task_queue: str, group: GroupInput, summary: str
) -> Any:
    """One firing alert of ``group``'s key, by update-with-start as the webhook sends it."""
    start = WithStartWorkflowOperation(
        AlertGroupWorkflow.run,
        group,
        id=alert_group_id(group.source, group.key),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    delivery = AlertDelivery(
        status="firing",
        alert=AlertEvent(key=group.key, source=group.source, summary=summary),
        declaration=Declaration(title=summary, severity=Severity.P3),
    )
    return await client.execute_update_with_start_workflow(
        AlertGroupWorkflow.deliver, delivery, start_workflow_operation=start
    )


async def test_group_continues_as_new_and_keeps_its_incident(dev_env):
    client = dev_env.client
    async with new_worker(client) as worker:
        key = uuid.uuid4().hex
        group_id = alert_group_id("generic", key)

        group = GroupInput(source="generic", key=key, max_history_events=60)
        results = [
            await _deliver_with_start(client, worker.task_queue, group, "queue backlog")
            for _ in range(25)
        ]
        assert len({r.incident_id for r in results}) == 1
        assert [r.new for r in results] == [True] + [False] * 24
        handle = client.get_workflow_handle_for(AlertGroupWorkflow.run, group_id)
        runs = [e async for e in client.list_workflows(f"WorkflowId = '{group_id}'")]
        assert len(runs) > 1, "expected at least one continue-as-new"
        view = await handle.query(AlertGroupWorkflow.view)
        assert (view.open_incident, view.alerts_received) == (results[0].incident_id, 25)


async def test_a_running_legacy_group_takes_deliveries_started_as_the_new_type(dev_env):
    """Senders start groups as ``AlertGroup``; one already running as ``AlertGroupWorkflow``
    (started before that type) takes the update-with-start and keeps its incident."""
    client = dev_env.client
    async with new_worker(client) as worker:
        key = uuid.uuid4().hex
        group_id = alert_group_id("generic", key)
        await client.start_workflow(
            LegacyAlertGroupWorkflow.run,
            GroupInput(source="generic", key=key),
            id=group_id,
            task_queue=worker.task_queue,
        )

        group = GroupInput(source="generic", key=key)
        first = await _deliver_with_start(client, worker.task_queue, group, "disk full")
        second = await _deliver_with_start(client, worker.task_queue, group, "disk full")
        assert (first.new, second.new) == (True, False)
        assert second.incident_id == first.incident_id
        runs = [e async for e in client.list_workflows(f"WorkflowId = '{group_id}'")]
        assert [r.workflow_type for r in runs] == ["AlertGroupWorkflow"]
        history = await client.get_workflow_handle(group_id).fetch_history()
        markers = [e.marker_recorded_event_attributes.marker_name for e in history.events]
        assert markers.count("core_patch") == 3, "the legacy type still decides by patch"


async def test_the_opening_alert_reaches_its_new_incident_once_without_a_signal(dev_env):
    """The group hands the opening alert over in the incident's input; the webhook does not
    signal it again, so it is counted once, and a repeat is signalled as before."""
    async with _hooks(dev_env.client, Policy()) as hooks:
        fingerprint = uuid.uuid4().hex[:16]
        opened = await hooks.fire(fingerprint)
        assert opened["action"] == "opened"
        incident = hooks.incident(opened["incident_id"])
        view = await incident.query(IncidentWorkflow.view)
        assert view.alert_notifications == 1
        assert [a.firing for a in view.alerts] == [True]

        def signals(history: Any) -> list[str]:
            return [
                e.workflow_execution_signaled_event_attributes.signal_name
                for e in history.events
                if e.HasField("workflow_execution_signaled_event_attributes")
            ]

        assert signals(await incident.fetch_history()) == []
        joined = await hooks.fire(fingerprint)
        assert (joined["action"], joined["incident_id"]) == ("joined", opened["incident_id"])
        assert (await incident.query(IncidentWorkflow.view)).alert_notifications == 2
        assert len(signals(await incident.fetch_history())) == 1


async def test_every_history_the_alert_flow_leaves_replays_from_scratch(dev_env):
    """Groups, their intake and their incidents, with every task replayed on the worker: two
    alerts of a key at once, a resolve, a repeat trigger and a recovery, four keys."""
    policy = policy_from_mapping(
        # A repeat is linked within repeat_window of the resolve, however slow a worker
        # that replays every task is under load.
        {"routing": {"repeat_window": "10m"}, "alerts": {"max_new_incidents_per_minute": 1000}}
    )
    ids: set[str] = set()
    async with _hooks(dev_env.client, policy, max_cached_workflows=0) as hooks:
        for _ in range(4):
            fingerprint = uuid.uuid4().hex[:16]
            first, second = await asyncio.gather(hooks.fire(fingerprint), hooks.fire(fingerprint))
            assert first["incident_id"] == second["incident_id"], (first, second)
            await hooks.resolve(first["incident_id"])
            await hooks.wait_closed(fingerprint)
            # Within the route cache's 2 s the trigger may reach the resolved incident,
            # which hands it back to the group: either way the group opens the repeat.
            await hooks.fire(fingerprint)
            repeat = await _next_incident(hooks, fingerprint, after=first["incident_id"])
            await hooks.fire(fingerprint, "resolved")
            ids |= {first["incident_id"], repeat, hooks.group(fingerprint).id}
        ids.add(alert_intake_id("alertmanager", hooks.task_queue))
    assert len(ids) == 13, ids
    assert await replay_failures(dev_env.client, sorted(ids)) == []


async def _next_incident(hooks: Hooks, fingerprint: str, *, after: str) -> str:
    """The incident the group opened after ``after``, once it has."""
    for _ in range(600):  # 30 s: every task of the group replays on a loaded machine
        view = await hooks.group(fingerprint).query(AlertGroupWorkflow.view)
        if view.open_incident not in (None, after):
            opened = await hooks.incident(view.open_incident).query(IncidentWorkflow.view)
            assert opened.related_incident == after, "the next one is linked as a repeat"
            return str(view.open_incident)
        await asyncio.sleep(0.05)
    raise AssertionError(f"the group never opened the incident after {after}")
