"""Safe at the edges, through the HTTP app into real incidents on the dev server.

Replayed and stale signatures, PagerDuty acknowledgements the policy does not
allow, generic alerts without a key, and the per-request deadline.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from domain.models import Phase
from domain.policy import Policy, policy_from_mapping
from domain.settings import Settings
from starters.http_app import create_app
from starters.webhooks import WebhookSettings
from starters.webhooks.auth import sign, sign_with_timestamp
from tests.conftest import webhook_fixture

TOKEN = "edge-secret-token"
STRICT = policy_from_mapping({"routing": {"webhooks": {"require_signed_timestamp": True}}})


def _alertmanager(*fingerprints: str, status: str = "firing") -> dict[str, Any]:
    payload = webhook_fixture("alertmanager_firing")
    template = payload["alerts"][0]
    payload["alerts"] = []
    for fingerprint in fingerprints:
        alert = copy.deepcopy(template)
        alert["fingerprint"] = fingerprint
        alert["status"] = status
        payload["alerts"].append(alert)
    payload["status"] = status
    return payload


def _signed(body: bytes, *, at: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if at is None else at)
    return {
        "Content-Type": "application/json",
        "X-Signature-Timestamp": stamp,
        "X-Signature-256": "sha256=" + sign_with_timestamp(TOKEN, stamp, body),
    }


# ---------------------------------------------------------------- replays


async def test_a_replayed_signed_resolve_changes_nothing(webhook_harness):
    """The issue's attack: a captured "resolved" request replayed inside the window."""
    async with webhook_harness(token=TOKEN, policy=STRICT) as hooks:
        fingerprint = uuid.uuid4().hex[:16]
        body = json.dumps(_alertmanager(fingerprint)).encode()
        opened = await hooks.http.post(
            "/webhooks/alertmanager", content=body, headers=_signed(body)
        )
        assert opened.status_code == 200, opened.text
        incident = opened.json()["incidents"][0]["incident_id"]

        resolve = json.dumps(_alertmanager(fingerprint, status="resolved")).encode()
        headers = _signed(resolve)
        first = await hooks.http.post("/webhooks/alertmanager", content=resolve, headers=headers)
        assert first.json()["incidents"][0]["action"] == "recovered"
        # A body other than the opening one: the same body signed in the same second
        # would be the same signature, rightly refused as a replay.
        refire = json.dumps({**_alertmanager(fingerprint), "groupKey": "refire"}).encode()
        again = await hooks.http.post(
            "/webhooks/alertmanager", content=refire, headers=_signed(refire)
        )
        assert again.status_code == 200, again.text
        assert again.json()["incidents"][0]["action"] == "joined"

        replay = await hooks.http.post("/webhooks/alertmanager", content=resolve, headers=headers)
        assert replay.status_code == 409
        assert "replayed request" in replay.json()["error"]
        view = await hooks.wait_for(incident, lambda v: v.alerts[0].count >= 2)
        assert view.alerts[0].firing, "the replayed resolve must not recover the alert"


async def test_stale_or_unstamped_signatures_are_refused_when_required(webhook_harness):
    async with webhook_harness(token=TOKEN, policy=STRICT) as hooks:
        body = json.dumps(_alertmanager(uuid.uuid4().hex[:16])).encode()
        stale = await hooks.http.post(
            "/webhooks/alertmanager", content=body, headers=_signed(body, at=int(time.time()) - 301)
        )
        assert stale.status_code == 401
        assert "x-signature-timestamp is more than 300s" in stale.json()["error"]
        unstamped = await hooks.http.post(
            "/webhooks/alertmanager",
            content=body,
            headers={"X-Signature-256": "sha256=" + sign(TOKEN, body)},
        )
        assert unstamped.status_code == 401
        assert "must sign a fresh x-signature-timestamp" in unstamped.json()["error"]
        grafana = await hooks.http.post(
            "/webhooks/grafana",
            content=body,
            headers={"X-Grafana-Alerting-Signature": sign(TOKEN, body)},
        )
        assert grafana.status_code == 401
        assert "x-grafana-alerting-timestamp" in grafana.json()["error"]
        bearer = await hooks.http.post(
            "/webhooks/alertmanager", content=body, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert bearer.status_code == 200, bearer.text
        count = await hooks.client.count_workflows(
            f"TaskQueue = '{hooks.worker.task_queue}' "
            "AND WorkflowType IN "
            "('Incident', 'IncidentWorkflow', 'AlertGroup', 'AlertGroupWorkflow')"
        )
        assert count.count <= 2  # only the bearer request's group and incident


# -------------------------------------------------------------- PagerDuty


async def test_pagerduty_acknowledge_is_refused_unless_the_policy_allows_it(webhook_harness):
    async with webhook_harness() as hooks:
        trigger = {**webhook_fixture("pagerduty_trigger"), "dedup_key": str(uuid.uuid4())}
        incident = (await hooks.post("pagerduty", trigger)).json()["incidents"][0]["incident_id"]
        ack = {**webhook_fixture("pagerduty_acknowledge"), "dedup_key": trigger["dedup_key"]}
        response = await hooks.post("pagerduty", ack)
        assert response.status_code == 403
        assert "pagerduty_acknowledge = true" in response.json()["error"]
        view = await hooks.wait_for(incident, lambda v: v.alerts)
        assert (view.phase, view.commander) == (Phase.DETECT, None)


# ---------------------------------------------------------------- generic


async def test_generic_alert_without_key_cannot_be_recovered_by_outsiders(webhook_harness):
    async with webhook_harness() as hooks:
        firing = {"title": f"Queue backlog {uuid.uuid4()}", "service": "mail", "severity": "P3"}
        response = await hooks.post("generic", firing)
        assert response.status_code == 200, response.text
        [outcome] = response.json()["incidents"]
        incident, key = outcome["incident_id"], outcome["alert"]
        assert key.startswith("generic-")
        repeat = (await hooks.post("generic", firing)).json()["incidents"][0]
        assert (repeat["incident_id"], repeat["action"]) == (incident, "joined")

        keyless = await hooks.post("generic", {**firing, "status": "resolved"})
        assert keyless.status_code == 200
        [ignored] = keyless.json()["incidents"]
        assert ignored["action"] == "ignored" and ignored["incident_id"] is None
        assert "without dedup_key recovers nothing" in ignored["message"]
        view = await hooks.wait_for(incident, lambda v: v.alerts and v.alerts[0].count == 2)
        assert view.alerts[0].firing

        resolved = await hooks.post("generic", {**firing, "status": "resolved", "dedup_key": key})
        assert resolved.json()["incidents"][0]["action"] == "recovered"


# --------------------------------------------------------------- deadline


@asynccontextmanager
async def _app_without_worker(
    env: WorkflowEnvironment, *, policy: Policy | None = None, **hooks: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP app on a task queue nobody polls: new alert groups never answer."""
    app = create_app(
        settings=Settings(task_queue=f"nobody-{uuid.uuid4()}", webhook_token=SecretStr(TOKEN)),
        client=env.client,
        policy=policy or Policy(),
        webhook_settings=WebhookSettings(**hooks),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://late.test") as http:
        yield http


async def test_deadline_answers_a_partial_delivery_in_time(webhook_harness, dev_env):
    """One alert joins its open incident (durable at once); the other needs a group that
    cannot answer. The sender hears within the deadline which one to send again."""
    async with webhook_harness() as hooks:
        known = uuid.uuid4().hex[:16]
        opened = await hooks.post("alertmanager", _alertmanager(known))
        incident = opened.json()["incidents"][0]["incident_id"]
        await hooks.wait_for(incident, lambda v: v.alerts)

        async with _app_without_worker(dev_env, policy=STRICT, deadline_seconds=1.5) as late:
            stuck = uuid.uuid4().hex[:16]
            body = json.dumps(_alertmanager(known, stuck)).encode()
            headers = _signed(body)
            started = time.monotonic()
            response = await late.post("/webhooks/alertmanager", content=body, headers=headers)
            took = time.monotonic() - started
            assert response.status_code == 503, response.text
            assert 1.4 < took < 3.0, took
            assert response.headers["Retry-After"]
            report = response.json()
            assert report["error"].startswith("1 of 2 alerts not accepted")
            assert [(o["alert"], o["incident_id"], o["action"]) for o in report["incidents"]] == [
                (known, incident, "joined")
            ]
            assert report["retry"] == [stuck]
            # The failed request did not use up its signature: the sender's retry is heard.
            retried = await late.post("/webhooks/alertmanager", content=body, headers=headers)
            assert retried.status_code == 503 and retried.json()["retry"] == [stuck]

        view = await hooks.wait_for(incident, lambda v: v.alerts[0].count >= 3)
        assert view.alerts[0].count >= 3


async def test_nothing_handed_over_is_a_plain_503(dev_env):
    async with _app_without_worker(dev_env, deadline_seconds=1.0) as late:
        payload = {"title": "nobody listens", "dedup_key": str(uuid.uuid4())}
        started = time.monotonic()
        response = await late.post(
            "/webhooks/generic", json=payload, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert response.status_code == 503
        assert time.monotonic() - started < 2.5
        report = response.json()
        assert report["error"].startswith("alert not accepted, retry later")
        assert (report["incidents"], report["retry"]) == ([], [payload["dedup_key"]])


# ---------------------------------------------------------------- controls


async def test_nul_and_control_characters_never_reach_the_service_search_attribute(
    webhook_harness,
):
    from domain import search_attributes as sa

    async with webhook_harness() as hooks:
        alert = {
            "title": "Mail\x00 queue \x1b[2J stuck",
            "service": "mail\x00box\x07",
            "labels": {"team\x00": "ops\x1b"},
            "dedup_key": str(uuid.uuid4()),
        }
        response = await hooks.post("generic", alert)
        assert response.status_code == 200, response.text
        incident = response.json()["incidents"][0]["incident_id"]
        view = await hooks.wait_for(incident, lambda v: v.alerts)
        assert (view.service, view.title) == ("mailbox", "Mail queue [2J stuck")
        handle = hooks.client.get_workflow_handle(incident)
        attributes = (await handle.describe()).typed_search_attributes
        assert attributes.get(sa.SERVICE) == "mailbox"
