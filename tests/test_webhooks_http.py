"""The HTTP edge: authentication, malformed requests, size limits, OpenAPI and health."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from typing import Any

import pytest

from starters.webhooks.auth import sign
from tests.conftest import webhook_fixture

TOKEN = "s3cret-token-value"


def _alertmanager() -> dict[str, Any]:
    payload = webhook_fixture("alertmanager_firing")
    payload["alerts"][0]["fingerprint"] = uuid.uuid4().hex[:16]
    return payload


async def _workflows_on(hooks: Any) -> int:
    """Alert groups and incidents on the harness's queue (per-source helpers not counted)."""
    result = await hooks.client.count_workflows(
        f"TaskQueue = '{hooks.worker.task_queue}' "
        "AND WorkflowType IN "
        "('Incident', 'IncidentWorkflow', 'AlertGroup', 'AlertGroupWorkflow')"
    )
    return result.count


async def _assert_only_control_started(hooks: Any) -> None:
    """Nothing was started before: post one valid alert and see exactly its two workflows."""
    response = await hooks.post("alertmanager", _alertmanager(), headers=_bearer(TOKEN))
    assert response.status_code == 200, response.text
    for _ in range(100):
        if await _workflows_on(hooks) >= 2:
            break
        await asyncio.sleep(0.05)
    assert await _workflows_on(hooks) == 2  # the control's alert group and incident


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ------------------------------------------------------------------- auth


async def test_missing_or_wrong_credentials_are_401_and_start_nothing(webhook_harness, caplog):
    caplog.set_level(logging.DEBUG)
    async with webhook_harness(token=TOKEN) as hooks:
        body = json.dumps(_alertmanager()).encode()
        attempts = [
            {},
            _bearer("wrong"),
            _bearer(TOKEN + "x"),
            {"Authorization": TOKEN},
            {"Authorization": f"Basic {TOKEN}"},
            {"X-Signature-256": "sha256=" + sign("wrong", body)},
            {"X-Signature-256": "sha256=" + sign(TOKEN, body + b" ")},
            {"X-Grafana-Alerting-Signature": "not-hex"},
        ]
        for headers in attempts:
            response = await hooks.http.post(
                "/webhooks/alertmanager",
                content=body,
                headers={"Content-Type": "application/json", **headers},
            )
            assert response.status_code == 401, headers
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            assert "credentials" in response.json()["error"]
        await _assert_only_control_started(hooks)
    assert TOKEN not in caplog.text
    assert "rejected alertmanager webhook" in caplog.text


async def test_valid_bearer_and_hmac_signatures_pass(webhook_harness):
    async with webhook_harness(token=TOKEN) as hooks:
        stamp = str(int(time.time()))
        variants = [
            lambda body: _bearer(TOKEN),
            lambda body: {"X-Signature-256": "sha256=" + sign(TOKEN, body)},
            lambda body: {"X-Signature-256": sign(TOKEN, body).upper()},
            lambda body: {"X-Grafana-Alerting-Signature": sign(TOKEN, body)},
            lambda body: {
                "X-Grafana-Alerting-Signature": sign(TOKEN, stamp.encode() + b":" + body),
                "X-Grafana-Alerting-Timestamp": stamp,
            },
        ]
        for make_headers in variants:
            body = json.dumps(_alertmanager()).encode()
            response = await hooks.http.post(
                "/webhooks/grafana",
                content=body,
                headers={"Content-Type": "application/json", **make_headers(body)},
            )
            assert response.status_code == 200, response.text
            assert response.json()["incidents"][0]["new"] is True


async def test_stale_grafana_timestamp_is_refused(webhook_harness):
    async with webhook_harness(token=TOKEN) as hooks:
        body = json.dumps(_alertmanager()).encode()
        stamp = str(int(time.time()) - 3600)
        response = await hooks.http.post(
            "/webhooks/grafana",
            content=body,
            headers={
                "X-Grafana-Alerting-Signature": sign(TOKEN, stamp.encode() + b":" + body),
                "X-Grafana-Alerting-Timestamp": stamp,
            },
        )
        assert response.status_code == 401


async def test_per_source_token_replaces_the_shared_one(webhook_harness):
    async with webhook_harness(token=TOKEN, token_pagerduty="pd-only") as hooks:
        trigger = {**webhook_fixture("pagerduty_trigger"), "dedup_key": str(uuid.uuid4())}
        assert (await hooks.post("pagerduty", trigger, headers=_bearer(TOKEN))).status_code == 401
        response = await hooks.post("pagerduty", trigger, headers=_bearer("pd-only"))
        assert response.status_code == 202, response.text
        generic = {**webhook_fixture("generic_firing"), "dedup_key": str(uuid.uuid4())}
        assert (await hooks.post("generic", generic, headers=_bearer("pd-only"))).status_code == 401
        assert (await hooks.post("generic", generic, headers=_bearer(TOKEN))).status_code == 200


# -------------------------------------------------------------- bad input


def _am(**changes: Any) -> dict[str, Any]:
    payload = _alertmanager()
    for path, value in changes.items():
        target: Any = payload
        *parents, last = path.split("__")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is _DROP:
            del target[last]
        else:
            target[last] = value
    return payload


_DROP = object()
PD_TRIGGER = webhook_fixture("pagerduty_trigger")

MALFORMED: list[tuple[str, str, bytes | dict[str, Any] | list[Any], int, str | None]] = [
    ("not JSON", "alertmanager", b"{not json", 400, None),
    ("empty body", "alertmanager", b"", 400, None),
    ("truncated JSON", "pagerduty", b'{"routing_key": "k", ', 400, None),
    ("JSON array", "alertmanager", [], 422, "body"),
    ("JSON string", "generic", b'"hello"', 422, "body"),
    ("empty object", "alertmanager", {}, 422, "status"),
    ("no alerts", "alertmanager", _am(alerts=[]), 422, "alerts"),
    ("alerts not a list", "grafana", _am(alerts={"a": 1}), 422, "alerts"),
    ("bad alert status", "alertmanager", _am(alerts__0__status="broken"), 422, "alerts[0].status"),
    (
        "label not a string",
        "alertmanager",
        _am(alerts__0__labels={"a": 1}),
        422,
        "alerts[0].labels.a",
    ),
    ("labels missing", "alertmanager", _am(alerts__0__labels=_DROP), 422, "alerts[0].labels"),
    (
        "bad startsAt",
        "alertmanager",
        _am(alerts__0__startsAt="yesterday"),
        422,
        "alerts[0].startsAt",
    ),
    ("unknown version", "alertmanager", _am(version="3"), 422, "version"),
    ("version a number", "alertmanager", _am(version=4), 422, "version"),
    ("negative truncatedAlerts", "alertmanager", _am(truncatedAlerts=-1), 422, "truncatedAlerts"),
    (
        "grafana values text",
        "grafana",
        _am(alerts__0__values={"B": "high"}),
        422,
        "alerts[0].values.B",
    ),
    (
        "unknown event_action",
        "pagerduty",
        {**PD_TRIGGER, "event_action": "escalate"},
        422,
        "event_action",
    ),
    (
        "no routing_key",
        "pagerduty",
        {k: v for k, v in PD_TRIGGER.items() if k != "routing_key"},
        422,
        "routing_key",
    ),
    (
        "trigger without payload",
        "pagerduty",
        {"routing_key": "k", "event_action": "trigger"},
        422,
        "payload",
    ),
    (
        "ack without dedup_key",
        "pagerduty",
        {"routing_key": "k", "event_action": "acknowledge"},
        422,
        "dedup_key",
    ),
    (
        "resolve without dedup_key",
        "pagerduty",
        {"routing_key": "k", "event_action": "resolve"},
        422,
        "dedup_key",
    ),
    (
        "unknown PD severity",
        "pagerduty",
        {**PD_TRIGGER, "payload": {**PD_TRIGGER["payload"], "severity": "fatal"}},
        422,
        "payload.severity",
    ),
    (
        "empty PD summary",
        "pagerduty",
        {**PD_TRIGGER, "payload": {**PD_TRIGGER["payload"], "summary": ""}},
        422,
        "payload.summary",
    ),
    ("dedup_key too long", "pagerduty", {**PD_TRIGGER, "dedup_key": "k" * 300}, 422, "dedup_key"),
    ("generic without title", "generic", {"status": "firing"}, 422, "title"),
    ("generic bad status", "generic", {"title": "t", "status": "open"}, 422, "status"),
    ("generic links not a list", "generic", {"title": "t", "links": "http://x"}, 422, "links"),
    (
        "70,000 common labels",
        "alertmanager",
        _am(commonLabels={f"l{i}": "" for i in range(70_000)}),
        422,
        "commonLabels",
    ),
    (
        "too many annotations",
        "grafana",
        _am(alerts__0__annotations={f"a{i}": "x" for i in range(300)}),
        422,
        "alerts[0].annotations",
    ),
    (
        "too many generic labels",
        "generic",
        {"title": "t", "labels": {f"l{i}": "x" for i in range(300)}},
        422,
        "labels",
    ),
    (
        "PagerDuty event over PagerDuty's 512 KB",
        "pagerduty",
        {**PD_TRIGGER, "payload": {**PD_TRIGGER["payload"], "custom_details": "x" * 530_000}},
        413,
        None,
    ),
]


@pytest.mark.parametrize(
    ("case", "source", "body", "status", "field"), MALFORMED, ids=[row[0] for row in MALFORMED]
)
async def test_malformed_request_is_a_4xx_naming_the_field(
    webhook_harness, case, source, body, status, field
):
    async with webhook_harness() as hooks:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = await hooks.http.post(
            f"/webhooks/{source}", content=content, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == status, response.text
        error = response.json()
        assert error["error"]
        if field is not None:
            assert field in [f["field"] for f in error["fields"]], error
        assert await _workflows_on(hooks) == 0


async def test_no_malformed_request_started_anything(webhook_harness):
    """The whole table against one queue, then a visible control proves nothing else started."""
    async with webhook_harness(token=TOKEN) as hooks:
        for _, source, body, status, _ in MALFORMED:
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            response = await hooks.http.post(
                f"/webhooks/{source}", content=content, headers=_bearer(TOKEN)
            )
            assert response.status_code == status
        await _assert_only_control_started(hooks)


async def test_body_over_the_limit_is_413(webhook_harness):
    async with webhook_harness(max_body_bytes=4096) as hooks:
        payload = _alertmanager()
        payload["alerts"][0]["annotations"]["description"] = "x" * 5000
        response = await hooks.post("alertmanager", payload)
        assert response.status_code == 413
        assert "larger than 4096 bytes" in response.json()["error"]

        async def chunks() -> Any:
            for _ in range(10):
                yield b"x" * 1000

        streamed = await hooks.http.post("/webhooks/generic", content=chunks())
        assert streamed.status_code == 413
        assert await _workflows_on(hooks) == 0


async def test_default_limit_is_one_mebibyte(webhook_harness):
    async with webhook_harness() as hooks:
        response = await hooks.http.post("/webhooks/generic", content=b" " * (1024 * 1024 + 1))
        assert response.status_code == 413


# ------------------------------------------------------ docs and health


async def test_openapi_documents_every_endpoint_and_body(webhook_harness):
    async with webhook_harness() as hooks:
        schema = (await hooks.http.get("/openapi.json")).json()
        assert {"/webhooks/alertmanager", "/webhooks/grafana", "/webhooks/pagerduty"} <= set(
            schema["paths"]
        )
        assert {"/webhooks/generic", "/healthz"} <= set(schema["paths"])
        components = schema["components"]["schemas"]
        for path, model in [
            ("/webhooks/alertmanager", "AlertmanagerPayload"),
            ("/webhooks/pagerduty", "PagerDutyEvent"),
            ("/webhooks/generic", "GenericAlert"),
        ]:
            body = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]
            assert body["schema"]["$ref"] == f"#/components/schemas/{model}"
            assert model in components
        assert "AlertmanagerAlert" in components and "PagerDutyDetails" in components
        refs = _refs(schema)
        assert refs and all(ref.removeprefix("#/components/schemas/") in components for ref in refs)
        docs = await hooks.http.get("/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


async def test_healthz_reports_temporal_reachable(webhook_harness):
    async with webhook_harness() as hooks:
        response = await hooks.http.get("/healthz")
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "temporal": "reachable", "detail": ""}
