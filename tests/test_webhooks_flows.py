"""Alerts through the HTTP app into real incidents on the dev server."""

from __future__ import annotations

import asyncio
import copy
import uuid
from datetime import UTC, datetime
from typing import Any

from domain.models import AcknowledgeInput, EventKind, Phase, PhaseInput, Severity
from domain.policy import policy_from_mapping
from tests.conftest import webhook_fixture
from workflows.alert_group import AlertGroupWorkflow, alert_group_id
from workflows.incident import IncidentWorkflow

QUICK = policy_from_mapping(
    {"alerts": {"settle_window": "0.01s", "max_new_incidents_per_minute": 1000}}
)
"""Alerts settle at once: phase changes follow recoveries without the debounce window."""

FIXTURE_AGE = "520w"
"""The fixtures' start times are fixed dates: a clamp of ten years keeps them unclamped."""

ROUTED = policy_from_mapping(
    {
        "alerts": {"settle_window": "0.01s", "max_start_age": FIXTURE_AGE},
        "routing": {
            "rules": [
                {"name": "critical-pages", "match": {"severity": "critical"}, "severity": "P0"},
                {
                    "name": "blue-team",
                    "match_re": {"team": "blue|green"},
                    "severity": "P1",
                    "service": "memory-cache",
                    "targets": ["#team-blue"],
                },
            ]
        },
    }
)


def _unique(payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The Alertmanager/Grafana payload with a fresh fingerprint (tests share one server)."""
    fresh = copy.deepcopy(payload)
    fingerprint = uuid.uuid4().hex[:16]
    for alert in fresh["alerts"]:
        alert["fingerprint"] = fingerprint
    return fresh, fingerprint


def _resolved(payload: dict[str, Any]) -> dict[str, Any]:
    done = copy.deepcopy(payload)
    done["status"] = "resolved"
    for alert in done["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = datetime.now(UTC).isoformat()
    return done


async def test_alertmanager_alert_opens_a_routed_incident(webhook_harness):
    async with webhook_harness(policy=ROUTED) as hooks:
        payload, fingerprint = _unique(webhook_fixture("alertmanager_firing"))
        response = await hooks.post("alertmanager", payload)
        assert response.status_code == 200, response.text
        [outcome] = response.json()["incidents"]
        assert outcome["new"] is True and outcome["action"] == "opened"
        assert outcome["alert"] == fingerprint
        incident = outcome["incident_id"]
        assert incident.startswith("INC-")

        view = await hooks.wait_for(incident, lambda v: v.alerts)
        assert view.title == "Checkout error rate above 5%"
        assert view.severity is Severity.P0
        assert view.service == "checkout"
        assert view.source == "alertmanager"
        assert view.routing_rule == "critical-pages"
        assert view.detected_at == datetime(2026, 11, 26, 9, 41, 30, 123000, tzinfo=UTC)
        declared = next(e for e in view.timeline if e.kind is EventKind.DECLARED)
        assert "routing rule 'critical-pages'" in declared.text
        assert "http://prometheus.example.com:9090/graph" in view.links[0]
        [alert] = view.alerts
        assert (alert.key, alert.count, alert.firing) == (fingerprint, 1, True)


async def test_repeated_notifications_join_the_open_incident(webhook_harness):
    async with webhook_harness() as hooks:
        payload, _ = _unique(webhook_fixture("alertmanager_firing"))
        first = (await hooks.post("alertmanager", payload)).json()["incidents"][0]
        again = (await hooks.post("alertmanager", payload)).json()["incidents"][0]
        assert again == {**first, "new": False, "action": "joined"}
        view = await hooks.wait_for(
            first["incident_id"], lambda v: v.alerts and v.alerts[0].count == 2
        )
        assert view.alerts[0].count == 2
        assert view.severity is Severity.P2  # default route: no rules
        assert view.routing_rule == "default"
        group = hooks.client.get_workflow_handle_for(
            AlertGroupWorkflow.run, alert_group_id("alertmanager", first["alert"])
        )
        described = await group.describe()
        assert await described.memo_value("open_incident") == first["incident_id"]
        # The repeat went straight to the incident named in the group's memo.
        assert (await group.query(AlertGroupWorkflow.view)).alerts_received == 1


async def test_concurrent_deliveries_open_exactly_one_incident(webhook_harness):
    """An HA Alertmanager pair and retries: many posts of one alert at the same moment."""
    async with webhook_harness() as hooks:
        payload, fingerprint = _unique(webhook_fixture("alertmanager_firing"))
        posts = 40
        responses = await asyncio.gather(
            *(hooks.post("alertmanager", payload) for _ in range(posts))
        )
        assert [r.status_code for r in responses] == [200] * posts
        outcomes = [r.json()["incidents"][0] for r in responses]
        assert len({o["incident_id"] for o in outcomes}) == 1
        assert sum(o["new"] for o in outcomes) == 1
        incident = outcomes[0]["incident_id"]
        view = await hooks.wait_for(incident, lambda v: v.alerts and v.alerts[0].count == posts)
        assert view.alerts[0].count == posts
        group = hooks.client.get_workflow_handle_for(
            AlertGroupWorkflow.run, alert_group_id("alertmanager", fingerprint)
        )
        assert (await group.query(AlertGroupWorkflow.view)).incidents == [incident]


async def test_recovery_moves_an_acknowledged_incident_to_monitor(webhook_harness):
    async with webhook_harness(policy=QUICK) as hooks:
        payload, _ = _unique(webhook_fixture("alertmanager_firing"))
        incident = (await hooks.post("alertmanager", payload)).json()["incidents"][0]["incident_id"]
        handle = hooks.client.get_workflow_handle_for(IncidentWorkflow.run, incident)
        await hooks.wait_for(incident, lambda v: v.alerts)

        response = await hooks.post("alertmanager", _resolved(payload))
        assert response.json()["incidents"][0]["action"] == "recovered"
        view = await hooks.wait_for(incident, lambda v: not v.alerts[0].firing)
        assert view.phase is Phase.DETECT, "nobody acknowledged: recovery must not close it"
        assert any("waiting for a human" in e.text for e in view.timeline)

        await hooks.post("alertmanager", payload)
        await hooks.wait_for(incident, lambda v: v.alerts[0].firing)
        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bob"))
        await hooks.post("alertmanager", _resolved(payload))
        view = await hooks.wait_for(incident, lambda v: v.phase is Phase.MONITOR)
        assert view.phase is Phase.MONITOR
        kinds = [e.kind for e in view.timeline]
        assert kinds.count(EventKind.ALERT_RESOLVED) == 2


async def test_firing_again_during_monitor_is_a_recurrence(webhook_harness):
    async with webhook_harness(policy=QUICK) as hooks:
        payload, _ = _unique(webhook_fixture("alertmanager_firing"))
        incident = (await hooks.post("alertmanager", payload)).json()["incidents"][0]["incident_id"]
        handle = hooks.client.get_workflow_handle_for(IncidentWorkflow.run, incident)
        await hooks.wait_for(incident, lambda v: v.alerts)
        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bob"))
        await hooks.post("alertmanager", _resolved(payload))
        await hooks.wait_for(incident, lambda v: v.phase is Phase.MONITOR)

        outcome = (await hooks.post("alertmanager", payload)).json()["incidents"][0]
        assert (outcome["incident_id"], outcome["action"]) == (incident, "joined")
        view = await hooks.wait_for(incident, lambda v: v.phase is Phase.FIX)
        assert view.phase is Phase.FIX
        assert any(e.kind is EventKind.RECURRENCE for e in view.timeline)


async def test_trigger_right_after_resolve_always_opens_a_linked_repeat(webhook_harness):
    """Resolve, then re-fire at once, 20 times: every trigger opens the next incident.

    The re-fire races the resolved incident's message to its group; the closed
    incident hands the trigger back instead of absorbing it.
    """
    async with webhook_harness(policy=QUICK) as hooks:
        payload, fingerprint = _unique(webhook_fixture("alertmanager_firing"))
        current = (await hooks.post("alertmanager", payload)).json()["incidents"][0]["incident_id"]
        group = hooks.client.get_workflow_handle_for(
            AlertGroupWorkflow.run, alert_group_id("alertmanager", fingerprint)
        )
        chain = [current]
        for round_ in range(20):
            handle = hooks.client.get_workflow_handle_for(IncidentWorkflow.run, current)
            await handle.execute_update(
                IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bob")
            )
            await handle.execute_update(
                IncidentWorkflow.set_phase, PhaseInput(responder="bob", phase="resolve")
            )
            response = await hooks.post("alertmanager", payload)
            assert response.status_code == 200, response.text
            for _ in range(200):
                view = await group.query(AlertGroupWorkflow.view)
                if view.incidents_opened == round_ + 2 and view.open_incident:
                    break
                await asyncio.sleep(0.05)
            assert view.incidents_opened == round_ + 2, f"round {round_}: trigger swallowed"
            current = view.open_incident
            assert current is not None and current not in chain
            repeat = await hooks.wait_for(current, lambda v: v.alerts)
            assert repeat.related_incident == chain[-1]
            assert repeat.alerts and repeat.alerts[0].firing
            declared = next(e for e in repeat.timeline if e.kind is EventKind.DECLARED)
            assert f"repeats {chain[-1]}" in declared.text
            chain.append(current)
        closed = await hooks.view(chain[0])
        assert closed.phase is Phase.RESOLVE
        assert not any(e.kind is EventKind.ALERT_FIRED for e in closed.timeline[3:])


async def test_resolved_alert_without_an_incident_starts_nothing(webhook_harness):
    async with webhook_harness() as hooks:
        payload, fingerprint = _unique(webhook_fixture("alertmanager_resolved"))
        response = await hooks.post("alertmanager", payload)
        assert response.status_code == 200
        assert response.json()["incidents"] == [
            {
                "alert": fingerprint,
                "incident_id": None,
                "new": False,
                "action": "ignored",
                "related_incident": None,
                "message": "",
            }
        ]
        count = await hooks.client.count_workflows(f"TaskQueue = '{hooks.worker.task_queue}'")
        assert count.count == 0


async def test_grafana_alert_is_routed_by_its_labels(webhook_harness):
    async with webhook_harness(policy=ROUTED) as hooks:
        payload, fingerprint = _unique(webhook_fixture("grafana_firing"))
        response = await hooks.post("grafana", payload)
        assert response.status_code == 200, response.text
        incident = response.json()["incidents"][0]["incident_id"]
        view = await hooks.wait_for(incident, lambda v: v.alerts)
        assert (view.severity, view.service, view.routing_rule) == (
            Severity.P1,
            "memory-cache",
            "blue-team",
        )
        assert view.source == "grafana"
        assert view.title == "This alert was triggered for zone us-1"
        assert "Values: [ metric=''" in view.description
        assert view.detected_at == datetime(2026, 11, 26, 7, 51, 3, 157076, tzinfo=UTC)

        resolved, _ = _unique(webhook_fixture("grafana_resolved"))
        resolved["alerts"][0]["fingerprint"] = fingerprint
        response = await hooks.post("grafana", resolved)
        assert response.json()["incidents"][0]["action"] == "recovered"
        await hooks.wait_for(incident, lambda v: not v.alerts[0].firing)


async def test_group_key_dedup_puts_a_whole_group_in_one_incident(webhook_harness):
    policy = policy_from_mapping({"routing": {"dedup": {"alertmanager": "groupKey"}}})
    async with webhook_harness(policy=policy) as hooks:
        payload = webhook_fixture("alertmanager_firing")
        payload["groupKey"] = f'{{}}:{{alertname="{uuid.uuid4()}"}}'
        second = copy.deepcopy(payload["alerts"][0])
        second["labels"]["instance"] = "checkout-2:8080"
        payload["alerts"] = [payload["alerts"][0], second]
        payload["alerts"][0]["fingerprint"] = uuid.uuid4().hex[:16]
        second["fingerprint"] = uuid.uuid4().hex[:16]
        outcomes = (await hooks.post("alertmanager", payload)).json()["incidents"]
        assert len({o["incident_id"] for o in outcomes}) == 1
        assert sorted(o["new"] for o in outcomes) == [False, True]
        view = await hooks.wait_for(outcomes[0]["incident_id"], lambda v: len(v.alerts) == 2)
        assert {a.key for a in view.alerts} == {
            second["fingerprint"],
            payload["alerts"][0]["fingerprint"],
        }


ACKNOWLEDGING = policy_from_mapping(
    {
        "alerts": {"settle_window": "0.01s", "max_start_age": FIXTURE_AGE},
        "routing": {
            **ROUTED.routing.model_dump(include={"rules"}),
            "webhooks": {"pagerduty_acknowledge": True},
        },
    }
)


async def test_pagerduty_trigger_acknowledge_resolve(webhook_harness):
    async with webhook_harness(policy=ACKNOWLEDGING) as hooks:
        trigger = webhook_fixture("pagerduty_trigger")
        trigger["dedup_key"] = f"srv01/mysql/{uuid.uuid4()}"
        response = await hooks.post("pagerduty", trigger)
        assert response.status_code == 202, response.text
        body = response.json()
        assert (body["status"], body["dedup_key"]) == ("success", trigger["dedup_key"])
        incident = body["incidents"][0]["incident_id"]
        view = await hooks.wait_for(incident, lambda v: v.alerts)
        assert (view.severity, view.routing_rule, view.service) == (
            Severity.P0,
            "critical-pages",
            "mysql",
        )
        assert view.detected_at == datetime(2026, 11, 26, 8, 42, 58, 315000, tzinfo=UTC)

        ack = {**webhook_fixture("pagerduty_acknowledge"), "dedup_key": trigger["dedup_key"]}
        response = await hooks.post("pagerduty", ack)
        assert response.status_code == 202
        assert response.json()["incidents"][0]["action"] == "acknowledged"
        view = await hooks.view(incident)
        assert (view.phase, view.commander) == (Phase.INVESTIGATE, "pagerduty")

        again = (await hooks.post("pagerduty", ack)).json()["incidents"][0]
        assert again["action"] == "ignored" and "already acknowledged" in again["message"]

        resolve = {**webhook_fixture("pagerduty_resolve"), "dedup_key": trigger["dedup_key"]}
        response = await hooks.post("pagerduty", resolve)
        assert response.json()["incidents"][0]["action"] == "recovered"
        view = await hooks.wait_for(incident, lambda v: v.phase is Phase.MONITOR)
        assert view.phase is Phase.MONITOR


async def test_pagerduty_trigger_without_dedup_key_gets_one(webhook_harness):
    async with webhook_harness() as hooks:
        trigger = webhook_fixture("pagerduty_trigger")
        del trigger["dedup_key"]
        first = (await hooks.post("pagerduty", trigger)).json()
        second = (await hooks.post("pagerduty", trigger)).json()
        assert len(first["dedup_key"]) == 32 and first["dedup_key"] != second["dedup_key"]
        assert first["incidents"][0]["incident_id"] != second["incidents"][0]["incident_id"]
        assert first["incidents"][0]["alert"] == first["dedup_key"]


async def test_pagerduty_acknowledge_of_unknown_key_is_not_an_error(webhook_harness):
    async with webhook_harness(policy=ACKNOWLEDGING) as hooks:
        ack = {**webhook_fixture("pagerduty_acknowledge"), "dedup_key": str(uuid.uuid4())}
        response = await hooks.post("pagerduty", ack)
        assert response.status_code == 202
        assert response.json()["incidents"][0]["action"] == "ignored"


async def test_generic_alert_uses_its_severity_and_recovers(webhook_harness):
    async with webhook_harness() as hooks:
        firing = {**webhook_fixture("generic_firing"), "dedup_key": str(uuid.uuid4())}
        response = await hooks.post("generic", firing)
        assert response.status_code == 200, response.text
        incident = response.json()["incidents"][0]["incident_id"]
        view = await hooks.wait_for(incident, lambda v: v.alerts)
        assert (view.severity, view.service, view.title) == (
            Severity.P1,
            "exports",
            "Nightly export did not finish",
        )
        assert view.links == ["https://jobs.example.com/exports/nightly"]
        resolved = {**webhook_fixture("generic_resolved"), "dedup_key": firing["dedup_key"]}
        outcome = (await hooks.post("generic", resolved)).json()["incidents"][0]
        assert (outcome["incident_id"], outcome["action"]) == (incident, "recovered")


async def test_huge_annotations_are_capped(webhook_harness):
    async with webhook_harness() as hooks:
        payload, _ = _unique(webhook_fixture("alertmanager_firing"))
        payload["alerts"][0]["annotations"]["summary"] = "<b>boom</b>" * 30_000
        payload["alerts"][0]["annotations"]["description"] = "x" * 300_000
        payload["alerts"][0]["labels"].update({f"l{i}": "v" * 1000 for i in range(200)})
        response = await hooks.post("alertmanager", payload)
        assert response.status_code == 200, response.text
        view = await hooks.wait_for(
            response.json()["incidents"][0]["incident_id"], lambda v: v.alerts
        )
        assert len(view.title) <= 300 and view.title.startswith("<b>boom</b>")
        assert len(view.description) <= 4000
