"""What the webhook remembers of a key's open incident, and what a repeat alert costs.

The RPC count is read at the client's own interceptor: each call the gateway makes
to Temporal passes through it.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    DescribeWorkflowInput,
    Interceptor,
    OutboundInterceptor,
    SignalWorkflowInput,
    StartWorkflowUpdateInput,
    StartWorkflowUpdateWithStartInput,
)

from domain.models import AcknowledgeInput, AlertEvent, Declaration, PhaseInput, Severity
from domain.policy import Policy
from starters.webhooks.gateway import TemporalGateway
from starters.webhooks.recent_routes import RecentRoutes
from tests.conftest import new_worker
from tests.helpers import eventually
from workflows.alert_group import AlertDelivery, AlertGroupWorkflow
from workflows.incident import IncidentWorkflow


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_route_is_used_for_its_ttl_and_never_past_the_repeat_window() -> None:
    clock = Clock()
    routes = RecentRoutes(2.0, clock=clock)
    routes.remember("g", "INC-1")
    clock.now = 1.9
    assert routes.get("g", max_age=60) == "INC-1"
    assert routes.get("g", max_age=1.0) is None, "older than the group's repeat window"
    routes.remember("g", "INC-1")
    clock.now = 3.95
    assert routes.get("g", max_age=60) is None
    assert len(routes) == 0, "an expired entry is dropped when met"


def test_routes_are_bounded_forgotten_on_refusal_and_off_at_zero() -> None:
    clock = Clock()
    routes = RecentRoutes(5.0, size=3, clock=clock)
    for n in range(5):
        routes.remember(f"g{n}", f"INC-{n}")
    assert len(routes) == 3
    assert [routes.get(f"g{n}", max_age=60) for n in range(5)] == [
        None,
        None,
        "INC-2",
        "INC-3",
        "INC-4",
    ]
    routes.forget("g3")
    assert routes.get("g3", max_age=60) is None
    off = RecentRoutes(0.0, clock=clock)
    off.remember("g", "INC-1")
    assert off.get("g", max_age=60) is None and len(off) == 0


class _Calls(Interceptor):
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        calls = self.calls

        class Counting(OutboundInterceptor):
            async def describe_workflow(self, input: DescribeWorkflowInput) -> Any:
                calls["describe"] += 1
                return await super().describe_workflow(input)

            async def signal_workflow(self, input: SignalWorkflowInput) -> None:
                calls["signal"] += 1
                await super().signal_workflow(input)

            async def start_workflow_update(self, input: StartWorkflowUpdateInput) -> Any:
                calls["update"] += 1
                return await super().start_workflow_update(input)

            async def start_update_with_start_workflow(
                self, input: StartWorkflowUpdateWithStartInput
            ) -> Any:
                calls["update-with-start"] += 1
                return await super().start_update_with_start_workflow(input)

        return Counting(next)


async def test_a_new_key_costs_two_rpcs_and_each_repeat_one_signal(dev_env):
    calls = _Calls()
    config = dev_env.client.config()
    config["interceptors"] = [*config["interceptors"], calls]
    client = Client(**config)
    async with new_worker(dev_env.client, policy=Policy()) as worker:
        gateway = TemporalGateway(client=client, task_queue=worker.task_queue)
        key = uuid.uuid4().hex

        def delivery() -> AlertDelivery:
            return AlertDelivery(
                status="firing",
                alert=AlertEvent(key=key, source="generic", summary="queue backlog"),
                declaration=Declaration(title="queue backlog", severity=Severity.P3),
            )

        window = timedelta(days=7)
        opened = await gateway.deliver(delivery(), dedup_key=key, repeat_window=window)
        assert opened.action == "opened" and opened.alert_included
        assert calls.calls == Counter({"describe": 1, "update-with-start": 1})

        calls.calls.clear()
        for _ in range(3):
            joined = await gateway.deliver(delivery(), dedup_key=key, repeat_window=window)
            assert (joined.action, joined.incident_id) == ("joined", opened.incident_id)
        assert calls.calls == Counter({"signal": 3})

        assert opened.incident_id is not None
        incident = client.get_workflow_handle_for(IncidentWorkflow.run, opened.incident_id)
        assert (await incident.query(IncidentWorkflow.view)).alert_notifications == 4


async def test_a_trigger_just_after_close_opens_the_next_incident_through_the_closed_one(
    dev_env,
):
    """Within the route's seconds, a trigger for a resolved (still running) incident is
    signalled to it; it hands the trigger to its group, which opens the next incident."""
    client = dev_env.client
    async with new_worker(client, policy=Policy()) as worker:
        gateway = TemporalGateway(client=client, task_queue=worker.task_queue, route_ttl=60)
        key = uuid.uuid4().hex
        alert = AlertEvent(key=key, source="generic", summary="disk full")
        delivery = AlertDelivery(
            status="firing",
            alert=alert,
            declaration=Declaration(title="disk full", severity=Severity.P1),
        )
        window = timedelta(days=7)
        first = await gateway.deliver(delivery, dedup_key=key, repeat_window=window)
        assert first.incident_id is not None
        incident = client.get_workflow_handle_for(IncidentWorkflow.run, first.incident_id)
        await incident.execute_update(
            IncidentWorkflow.acknowledge, AcknowledgeInput(responder="fay")
        )
        await incident.execute_update(
            IncidentWorkflow.set_phase, PhaseInput(responder="fay", phase="resolve")
        )
        again = await gateway.deliver(delivery, dedup_key=key, repeat_window=window)
        assert (again.action, again.incident_id) == ("joined", first.incident_id)

        group = client.get_workflow_handle_for(AlertGroupWorkflow.run, alert.group or "")

        async def next_opened() -> str:
            view = await group.query(AlertGroupWorkflow.view)
            assert view.incidents_opened == 2 and view.open_incident not in (
                None,
                first.incident_id,
            )
            assert view.open_incident is not None
            return view.open_incident

        following = await eventually(next_opened)
        handle = client.get_workflow_handle_for(IncidentWorkflow.run, following)
        view = await handle.query(IncidentWorkflow.view)
        assert view.related_incident == first.incident_id
        assert [a.key for a in view.alerts] == [key] and view.alert_notifications == 1
