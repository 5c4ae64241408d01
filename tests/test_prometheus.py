"""``GET /metrics``: scraped from the real HTTP app on the dev server and parsed with
``prometheus_client``'s own parser; counters that never go backwards."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from domain.metrics import IncidentRow
from domain.models import AcknowledgeInput, DismissInput, Phase, PhaseInput, RecordInput, Severity
from domain.policy import MetricsPolicy, policy_from_mapping
from domain.settings import Settings
from starters.http_app import create_app
from starters.metrics_cache import VisibilityCache
from starters.prometheus import IncidentCollector, Snapshot
from tests.conftest import new_worker
from tests.helpers import declare, view
from tests.test_metrics_cli import Cli, eventually
from workflows.incident import IncidentWorkflow

POLICY = policy_from_mapping(
    {
        "severities": {"P2": {"ack_sla": "1s"}, "P3": {"ack_sla": "1h"}},
        "actions": {"remind_before": "1s", "escalate_after": "1h"},
    }
)
"""P2 misses its acknowledge SLA after a second; P3 never does in a test."""

Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Series:
    """Every sample of an exposition, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(client: Client, task_queue: str) -> Series:
    """``GET /metrics`` of a freshly started HTTP app (a new replica, or one restarted)."""
    app = create_app(settings=Settings(task_queue=task_queue), client=client, policy=POLICY)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://metrics.test") as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.text)


def value(series: Series, name: str, **labels: str) -> float:
    return series.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_the_incidents_created(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    client = dev_env.client
    async with new_worker(client, policy=POLICY) as worker:
        before = await scrape(client, worker.task_queue)
        # Acknowledged after its 1 s SLA; impact 4 minutes before the declaration.
        late = await declare(client, worker, severity=Severity.P2)
        await asyncio.sleep(1.5)
        await late.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bob"))
        declared = (await view(late)).declared_at
        impact = RecordInput(responder="bob", impact_started=declared - timedelta(minutes=4))
        await late.execute_update(IncidentWorkflow.set_record, impact)
        for phase in ("monitor", "resolve"):
            await late.execute_update(
                IncidentWorkflow.set_phase, PhaseInput(responder="bob", phase=phase)
            )
        false_alarm = await declare(client, worker, severity=Severity.P2)
        await false_alarm.execute_update(
            IncidentWorkflow.dismiss, DismissInput(responder="bob", reason="test alert")
        )
        still_open = await declare(client, worker, severity=Severity.P3)
        cli = Cli(
            {
                "TEMPORAL_CONFIG_FILE": str(tmp_path / "none.toml"),
                "TEMPORAL_PROFILE": None,
                "TEMPORAL_ADDRESS": client.service_client.config.target_host,
                "TEMPORAL_NAMESPACE": client.namespace,
                "INCIDENT_TASK_QUEUE": worker.task_queue,
                "INCIDENT_USER": "alice",
            }
        )
        await cli("action", "add", still_open.id, "Add an alert", "--owner", "bob", "--due", "1s")
        await asyncio.sleep(1.2)
        final = await view(late)
        assert final.acknowledged_at is not None and final.resolved_at is not None
        tta = (final.acknowledged_at - final.declared_at).total_seconds()
        ttr = (final.resolved_at - (declared - timedelta(minutes=4))).total_seconds()

        async def grown() -> tuple[Series, Callable[..., float]]:
            after = await scrape(client, worker.task_queue)

            def delta(name: str, **labels: str) -> float:
                return value(after, name, **labels) - value(before, name, **labels)

            assert delta("incidents_resolved_total", severity="P2", source="cli") == 1
            assert delta("incidents_action_items_overdue") == 1
            return after, delta

        after, delta = await eventually(grown)

    p2, p3 = {"severity": "P2"}, {"severity": "P3"}
    assert delta("incidents_declared_total", source="cli", **p2) == 2
    assert delta("incidents_declared_total", source="cli", **p3) == 1
    assert delta("incidents_dismissed_total", source="cli", **p2) == 1
    assert delta("incidents_sla_breaches_total", kind="acknowledge", **p2) == 1
    assert delta("incidents_sla_breaches_total", kind="resolve", **p2) == 0
    assert delta("incidents_open", phase="Detect", **p3) == 1
    assert delta("incidents_action_items_open") == 1
    assert delta("incidents_time_to_acknowledge_seconds_count", **p2) == 1
    assert abs(delta("incidents_time_to_acknowledge_seconds_sum", **p2) - tta) < 1e-6
    assert abs(delta("incidents_time_to_resolve_seconds_sum", **p2) - ttr) < 1e-6
    assert delta("incidents_time_to_detect_seconds_bucket", le="300.0", **p2) == 1  # 240 s
    assert delta("incidents_time_to_detect_seconds_bucket", le="120.0", **p2) == 0
    assert value(after, "incidents_target_seconds", figure="mttr", severity="P0") == 3600
    assert value(after, "incidents_metrics_refresh_failures_total") == 0

    again = await scrape(client, "another-replica")
    counters = {k: v for k, v in after.items() if k[0].endswith(("_total", "_bucket", "_sum"))}
    assert {k: again[k] for k in counters} == counters, "replicas and restarts agree"


def _row(id_: str, severity: Severity) -> IncidentRow:
    at = datetime(2026, 11, 2, 10, tzinfo=UTC)
    return IncidentRow(
        id=id_,
        severity=severity,
        phase=Phase.RESOLVE,
        source="webhook-x",
        declared_at=at,
        acknowledged_at=at + timedelta(minutes=2),
        resolved_at=at + timedelta(minutes=30),
    )


def _exposition(collector: IncidentCollector) -> Series:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return parse(generate_latest(registry).decode())


def _never_called() -> Awaitable[Client]:
    raise AssertionError("no client needed")


def test_counters_never_go_backwards_within_a_process() -> None:
    rules = MetricsPolicy()
    now = datetime(2026, 11, 30, tzinfo=UTC)
    collector = IncidentCollector(_never_called, rules=rules, max_age=30)
    rows = [_row("A", Severity.P1), _row("B", Severity.P1)]
    collector.show(Snapshot(rows, [], unmeasured=0, rules=rules, now=now))
    first = _exposition(collector)
    one: dict[str, Any] = {"severity": "P1", "source": "other"}  # unknown sources: "other"
    assert value(first, "incidents_declared_total", **one) == 2
    assert value(first, "incidents_time_to_resolve_seconds_count", severity="P1") == 2

    # B was raised to P0: P0 counts it, P1 keeps its highest value.
    rows[1] = _row("B", Severity.P0)
    collector.show(Snapshot(rows, [], unmeasured=0, rules=rules, now=now))
    second = _exposition(collector)
    assert value(second, "incidents_declared_total", **one) == 2
    assert value(second, "incidents_declared_total", severity="P0", source="other") == 1
    assert value(second, "incidents_time_to_resolve_seconds_count", severity="P1") == 2
    assert value(second, "incidents_time_to_resolve_seconds_sum", severity="P1") == 2 * 1800
    assert value(second, "incidents_open", phase="Detect", severity="P1") == 0


def test_exposition_follows_prometheus_naming() -> None:
    rules = MetricsPolicy()
    collector = IncidentCollector(_never_called, rules=rules, max_age=30)
    at = datetime(2026, 11, 30, tzinfo=UTC)
    collector.show(Snapshot([_row("A", Severity.P0)], [], unmeasured=0, rules=rules, now=at))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    families = list(text_string_to_metric_families(generate_latest(registry).decode()))
    kinds = {family.name: family.type for family in families}
    assert kinds["incidents_declared"] == "counter"
    assert kinds["incidents_time_to_resolve_seconds"] == "histogram"
    assert kinds["incidents_open"] == "gauge"
    assert not [name for name, kind in kinds.items() if kind == "summary"]
    for family in families:
        for sample in family.samples:
            assert set(sample.labels) <= {
                "severity",
                "source",
                "phase",
                "kind",
                "figure",
                "le",
                "on_time",
            }
            if family.type == "counter":
                assert sample.name.endswith("_total")
            if family.type == "histogram":
                assert family.name.endswith("_seconds")


async def test_the_cache_follows_an_incident_from_open_to_closed(namespace: Client) -> None:
    # A namespace of its own: the incremental cache is compared with a full read, and
    # other tests' incidents would change between the two.
    client = namespace
    async with new_worker(client, policy=POLICY) as worker:
        cache = VisibilityCache()
        handle = await declare(client, worker, severity=Severity.P3)

        async def listed_in(phase: Phase) -> None:
            await cache.refresh(client)
            rows = {row.id: row for row in cache.incidents}
            assert handle.id in rows and rows[handle.id].phase is phase

        await eventually(lambda: listed_in(Phase.DETECT))  # the first, full read
        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bob"))
        await handle.execute_update(
            IncidentWorkflow.set_phase, PhaseInput(responder="bob", phase="resolve")
        )
        await handle.result()  # closed: only a read of recently closed workflows finds it
        await eventually(lambda: listed_in(Phase.RESOLVE))

    fresh = VisibilityCache()
    await fresh.refresh(client)
    assert sorted(r.model_dump_json() for r in cache.incidents) == sorted(
        r.model_dump_json() for r in fresh.incidents
    )
