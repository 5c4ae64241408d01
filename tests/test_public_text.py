"""What reaches the public: neutral titles for alert-opened incidents, public resolution
text, and start times a sender cannot push into the past (issue 8 §4)."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from domain.models import AcknowledgeInput, EventKind, PhaseInput, StatusUpdateInput
from domain.policy import policy_from_mapping
from tests.conftest import webhook_fixture
from workflows.incident import IncidentWorkflow

POLICY = policy_from_mapping(
    {"notifications": {"public_titles": {"checkout": "Checkout is slower than usual"}}}
)


def _alert(**annotations: str) -> dict[str, Any]:
    payload = copy.deepcopy(webhook_fixture("alertmanager_firing"))
    payload["alerts"][0]["fingerprint"] = uuid.uuid4().hex[:16]
    payload["alerts"][0]["annotations"].update(annotations)
    return payload


async def test_an_alert_opened_incident_shows_a_neutral_title_until_acknowledged(
    webhook_harness: Any,
) -> None:
    raw = "db-7 OOMKilled: customer ACME's invoices table corrupted"
    async with webhook_harness(policy=POLICY) as hooks:
        outcome = (await hooks.post("alertmanager", _alert(summary=raw))).json()["incidents"][0]
        incident = outcome["incident_id"]
        before = await hooks.wait_for(incident, lambda v: v.alerts)
        page = (await hooks.http.get("/status.json")).json()
        handle = hooks.client.get_workflow_handle_for(IncidentWorkflow.run, incident)
        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bo"))
        acknowledged = await hooks.view(incident)
        await handle.execute_update(
            IncidentWorkflow.post_update,
            StatusUpdateInput(responder="bo", text="rolling back", public_title="Invoices delayed"),
        )
        renamed = await hooks.view(incident)
        await handle.execute_update(
            IncidentWorkflow.set_phase,
            PhaseInput(
                responder="bo",
                phase="resolve",
                note="bo's migration 311 dropped the index",
                public_note="We restored the invoice service.",
            ),
        )
        resolved = await hooks.view(incident)

    assert before.title == raw
    assert before.public_name == "Checkout is slower than usual"
    names = [i["name"] for i in page["current"] if i["id"] == incident]
    assert names and raw not in names[0] and "ACME" not in str(page)
    assert acknowledged.public_name == raw, "acknowledging vets the alert's title"
    assert renamed.public_name == "Invoices delayed"
    assert resolved.public_resolution == "We restored the invoice service."
    assert "311" not in resolved.public_resolution


async def test_a_start_time_from_1975_is_clamped_and_recorded(webhook_harness: Any) -> None:
    generic = {
        "title": "Nightly export failed",
        "service": "exports",
        "severity": "P2",
        "started_at": "1975-01-01T00:00:00Z",
    }
    async with webhook_harness() as hooks:
        response = await hooks.post("generic", generic)
        assert response.status_code == 200, response.text
        incident = response.json()["incidents"][0]["incident_id"]
        view = await hooks.wait_for(incident, lambda v: v.alerts)

    assert view.detected_at is not None
    assert view.declared_at - view.detected_at <= POLICY.alerts.max_start_age
    notes = [e.text for e in view.timeline if e.kind is EventKind.NOTE]
    assert any("1975-01-01" in text and "time-to-detect" in text for text in notes), notes
