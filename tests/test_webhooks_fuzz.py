"""Property-based fuzzing of every webhook: whatever a sender posts, never a 5xx.

Bodies are arbitrary JSON, arbitrary bytes, and documented payloads with one
field replaced by arbitrary JSON. Valid ones really reach the dev server, so a
2xx here means Temporal accepted them.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import WebhookHarness, webhook_fixture

ENDPOINTS = {
    "alertmanager": "alertmanager_firing",
    "grafana": "grafana_firing",
    "pagerduty": "pagerduty_trigger",
    "generic": "generic_firing",
}
ACCEPTED = {200, 202, 400, 413, 422}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=60)
    | st.sampled_from(
        [
            "firing",
            "resolved",
            "trigger",
            "acknowledge",
            "resolve",
            "critical",
            "4",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59-23:59",
            "2026-11-26T10:00:00",
            "<script>alert(1)</script>",
        ]
    )
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _replace(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    changed = copy.deepcopy(document)
    target = changed
    for part in path[:-1]:
        target = target[part]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return changed


_DELETE = object()


@st.composite
def mutated_fixtures(draw: st.DrawFn) -> tuple[str, bytes]:
    """A documented payload with one field replaced or deleted, with fresh keys."""
    endpoint = draw(st.sampled_from(sorted(ENDPOINTS)))
    document = webhook_fixture(ENDPOINTS[endpoint])
    fresh = uuid.uuid4().hex[:16]
    if "alerts" in document:
        document["alerts"][0]["fingerprint"] = fresh
    else:
        document["dedup_key"] = fresh
    path = draw(st.sampled_from(_paths(document)))
    value = draw(json_values | st.just(_DELETE))
    return endpoint, json.dumps(_replace(document, path, value)).encode()


@pytest_asyncio.fixture(loop_scope="session")
async def hooks(webhook_harness: Any) -> AsyncIterator[WebhookHarness]:
    """One app and worker shared by every example of a test."""
    async with webhook_harness() as harness:
        yield harness


FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


async def _post(hooks: WebhookHarness, endpoint: str, body: bytes) -> None:
    response = await hooks.http.post(
        f"/webhooks/{endpoint}", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code in ACCEPTED, (endpoint, body[:300], response.text)
    assert isinstance(response.json(), dict)


@FUZZ
@given(endpoint=st.sampled_from(sorted(ENDPOINTS)), document=json_values)
async def test_arbitrary_json_never_5xx(hooks, endpoint, document):
    await _post(hooks, endpoint, json.dumps(document).encode())


@FUZZ
@given(endpoint=st.sampled_from(sorted(ENDPOINTS)), body=st.binary(max_size=200))
async def test_arbitrary_bytes_never_5xx(hooks, endpoint, body):
    await _post(hooks, endpoint, body)


@settings(FUZZ, max_examples=120)
@given(case=mutated_fixtures())
async def test_mutated_documented_payloads_never_5xx(hooks, case):
    endpoint, body = case
    await _post(hooks, endpoint, body)


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
async def test_unmutated_fixtures_are_accepted(hooks, endpoint):
    document = webhook_fixture(ENDPOINTS[endpoint])
    if "alerts" in document:
        document["alerts"][0]["fingerprint"] = uuid.uuid4().hex[:16]
    else:
        document["dedup_key"] = uuid.uuid4().hex
    response = await hooks.post(endpoint, document)
    assert response.status_code in (200, 202), response.text


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for level in range(depth):
        value = {f"k{level}": value, "list": [level, None, True]}
    return value


@settings(FUZZ, max_examples=12)
@given(
    labels=st.dictionaries(st.text(max_size=20), st.text(max_size=60), max_size=300),
    depth=st.integers(min_value=0, max_value=190),
    title=st.text(min_size=1, max_size=80),
)
async def test_hostile_structures_never_5xx(hooks, labels, depth, title):
    """Control characters, label maps around the cap, details nested up to the parser's limit."""
    alertmanager = webhook_fixture("alertmanager_firing")
    alertmanager["alerts"][0]["fingerprint"] = uuid.uuid4().hex[:16]
    alertmanager["alerts"][0]["labels"] = labels
    alertmanager["commonLabels"] = labels
    alertmanager["alerts"][0]["annotations"] = {"summary": title}
    await _post(hooks, "alertmanager", json.dumps(alertmanager).encode())
    pagerduty = webhook_fixture("pagerduty_trigger")
    pagerduty["dedup_key"] = uuid.uuid4().hex
    pagerduty["payload"]["custom_details"] = {"deep": _nested(depth), **labels}
    pagerduty["payload"]["summary"] = title
    await _post(hooks, "pagerduty", json.dumps(pagerduty).encode())
    generic = {"title": title, "service": title, "labels": labels, "dedup_key": uuid.uuid4().hex}
    await _post(hooks, "generic", json.dumps(generic).encode())
