"""The Grafana dashboard (deploy/grafana/dashboards/incidents.json) parses, and every
metric it queries is one ``/metrics`` exports."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client

from domain.metrics import ActionRow, IncidentRow
from domain.models import Phase, Severity
from domain.policy import MetricsPolicy
from starters.prometheus import IncidentCollector, Snapshot

DASHBOARD = Path(__file__).parent.parent / "deploy" / "grafana" / "dashboards" / "incidents.json"
PROVISIONED_DATASOURCE = "prometheus"
"""The uid deploy/grafana/provisioning/datasources/prometheus.yml gives Prometheus."""


def exported_names() -> set[str]:
    """Every sample name ``/metrics`` serves once it has read visibility."""
    at = datetime(2026, 11, 2, 10, tzinfo=UTC)
    row = IncidentRow(
        id="A",
        severity=Severity.P0,
        phase=Phase.RESOLVE,
        source="cli",
        declared_at=at,
        resolved_at=at + timedelta(minutes=30),
    )
    item = ActionRow(id="A-A1", incident_id="A", status="open", due=at)
    rules = MetricsPolicy()

    async def no_client() -> Client:
        raise AssertionError("not needed")

    collector = IncidentCollector(no_client, rules=rules, max_age=30)
    collector.show(Snapshot([row], [item], unmeasured=0, rules=rules, now=at))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        sample.name for family in text_string_to_metric_families(text) for sample in family.samples
    }


def queries(dashboard: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_dashboard_parses_and_is_ready_for_provisioning() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] == "incidents" and dashboard["title"]
    assert "id" not in dashboard, "provisioned dashboards get their id from Grafana"
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["window"]
    titles = [panel["title"] for panel in dashboard["panels"]]
    assert len(titles) == len(set(titles))
    for panel in dashboard["panels"]:
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == PROVISIONED_DATASOURCE
    for needed in ("MTTR", "MTTD", "Open incidents by phase", "SLA breaches", "overdue"):
        assert any(needed in title for title in titles), needed


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    used = {name for expr in queries(dashboard) for name in re.findall(r"\bincidents_\w+", expr)}
    exported = exported_names()
    assert used, "the dashboard queries something"
    assert used - exported == set()
    assert {
        "incidents_time_to_resolve_seconds_sum",
        "incidents_open",
        "incidents_sla_breaches_total",
        "incidents_action_items_overdue",
        "incidents_target_seconds",
    } <= used
