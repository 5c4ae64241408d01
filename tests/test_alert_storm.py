"""An alert storm of distinct keys opens at most the policy's cap plus one storm incident.

Reproduces issue 7 §8: one Alertmanager request with many distinct
fingerprints used to open one incident (and one Slack channel, and one page)
per fingerprint. Now the source's alert intake admits the cap and sends the
rest to one alert-storm incident, and one CLI command closes all the noise.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from domain.models import EventKind, Phase, Severity
from domain.policy import policy_from_mapping
from starters.cli import app
from tests.conftest import webhook_fixture
from tests.test_cli import base_env
from workflows.alert_intake import AlertIntakeWorkflow, alert_intake_id

CAP = 3
POLICY = policy_from_mapping(
    {"alerts": {"max_new_incidents_per_minute": CAP, "settle_window": "0.01s"}}
)


def _storm(alerts: int) -> dict[str, Any]:
    """One notification carrying ``alerts`` distinct fingerprints."""
    payload = webhook_fixture("alertmanager_firing")
    template = payload["alerts"][0]
    payload["alerts"] = []
    for n in range(alerts):
        alert = copy.deepcopy(template)
        alert["fingerprint"] = uuid.uuid4().hex[:16]
        alert["labels"]["instance"] = f"checkout-{n}:8080"
        alert["annotations"]["summary"] = f"Checkout error rate above 5% on node {n}"
        payload["alerts"].append(alert)
    return payload


async def test_a_storm_opens_the_cap_then_one_storm_incident_and_loses_nothing(
    webhook_harness: Any, tmp_path: Path
) -> None:
    async with webhook_harness(policy=POLICY) as hooks:
        response = await hooks.post("alertmanager", _storm(12))
        assert response.status_code == 200, response.text
        outcomes = response.json()["incidents"]
        opened = [o["incident_id"] for o in outcomes if o["action"] == "opened"]
        joined = {o["incident_id"] for o in outcomes if o["action"] == "joined"}
        assert len(outcomes) == 12
        assert len(opened) == CAP, outcomes
        assert len(joined) == 1, "every alert beyond the cap joined one storm incident"
        storm_id = joined.pop()
        storm = await hooks.wait_for(storm_id, lambda v: len(v.alerts) == 12 - CAP)
        assert storm.title.startswith("Alert storm")
        assert storm.severity is Severity.P1
        assert len(storm.alerts) == 12 - CAP, "the storm incident lists every alert it took"

        intake = await hooks.client.get_workflow_handle_for(
            AlertIntakeWorkflow.run, alert_intake_id("alertmanager", hooks.worker.task_queue)
        ).query(AlertIntakeWorkflow.view)
        assert intake.storms_opened == 1 and intake.storm_incident == storm_id
        assert len(intake.storm_groups) == CAP

        again = await hooks.post("alertmanager", _storm(40))
        assert {o["incident_id"] for o in again.json()["incidents"]} == {storm_id}
        storm = await hooks.wait_for(storm_id, lambda v: v.alert_notifications == 12 - CAP + 40)
        assert storm.alert_notifications == 12 - CAP + 40, "every alert reached the storm"
        history = await hooks.client.get_workflow_handle(storm_id).fetch_history()
        signals = [
            e for e in history.events if e.HasField("workflow_execution_signaled_event_attributes")
        ]
        assert len(signals) < 12 - CAP + 40, "alerts for one incident share signals"

        env = base_env(tmp_path) | {
            "TEMPORAL_ADDRESS": hooks.client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": hooks.client.namespace,
        }
        result = await asyncio.to_thread(
            CliRunner().invoke,
            app,
            ["dismiss", storm_id, "--reason", "storm of noise", "--all-from-storm"],
            env=env,
        )
        assert result.exit_code == 0, result.output
        for incident_id in [*opened, storm_id]:
            assert incident_id in result.stdout
            view = await hooks.wait_for(incident_id, lambda v: v.phase is Phase.DISMISSED)
            assert view.phase is Phase.DISMISSED, incident_id
            assert any(e.kind is EventKind.DISMISSED for e in view.timeline)


async def test_dismissing_a_storm_refuses_an_ordinary_incident(
    webhook_harness: Any, tmp_path: Path
) -> None:
    async with webhook_harness(policy=POLICY) as hooks:
        response = await hooks.post("alertmanager", _storm(1))
        incident_id = response.json()["incidents"][0]["incident_id"]
        env = base_env(tmp_path) | {
            "TEMPORAL_ADDRESS": hooks.client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": hooks.client.namespace,
        }
        result = await asyncio.to_thread(
            CliRunner().invoke,
            app,
            ["dismiss", incident_id, "--reason", "x", "--all-from-storm"],
            env=env,
        )
        view = await hooks.view(incident_id)

    assert result.exit_code == 1
    assert "not an alert-storm incident" in result.stderr
    assert view.phase is Phase.DETECT, "nothing was dismissed"
