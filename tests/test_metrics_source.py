"""What the metrics' listing reads from visibility, on the dev server: the exact cut on
the declaration, first-release incidents counted apart, and ended workflows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.testing import WorkflowEnvironment

from domain import search_attributes as sa
from domain.measures import MEASURES_MEMO, IncidentMeasures
from domain.metrics import MetricsInput
from domain.models import Phase, Severity
from starters.metrics_source import load
from tests.test_metrics_cli import eventually


async def start(
    client: Client, workflow_type: str, memo: dict[str, object], seen: datetime
) -> WorkflowHandle[object, object]:
    """A workflow nobody runs (its task queue has no worker): only its listing matters."""
    return await client.start_workflow(
        workflow_type,
        id=f"INC-{uuid.uuid4().hex[:12].upper()}",
        task_queue=f"nobody-{uuid.uuid4()}",
        memo=memo,
        search_attributes=TypedSearchAttributes([SearchAttributePair(sa.DETECTED_AT, seen)]),
    )


def measures(declared: datetime, phase: Phase) -> dict[str, object]:
    facts = IncidentMeasures(severity=Severity.P2, phase=phase, source="cli", declared_at=declared)
    return {"title": "listed", MEASURES_MEMO: facts.model_dump(mode="json")}


async def test_the_listing_cuts_on_the_declaration(dev_env: WorkflowEnvironment) -> None:
    client = dev_env.client
    now = datetime.now(UTC)
    # A run that continued as new starts long after its declaration.
    old_run = await start(client, "Incident", measures(now - timedelta(days=40), Phase.FIX), now)
    current = await start(client, "Incident", measures(now, Phase.FIX), now)
    abandoned = await start(client, "Incident", measures(now, Phase.INVESTIGATE), now)
    await abandoned.terminate(reason="test: an incident whose workflow ended while open")
    first_release = await start(client, "IncidentWorkflow", {"title": "legacy"}, now)

    async def listed() -> MetricsInput:
        rows = await load(client, now - timedelta(hours=1), now + timedelta(hours=1))
        ids = {row.id: row for row in rows.incidents}
        assert current.id in ids and abandoned.id in ids and ids[abandoned.id].running is False
        assert first_release.id in {u.id for u in rows.unmeasured}
        return rows

    rows = await eventually(listed)
    ids = {row.id: row for row in rows.incidents}
    assert old_run.id not in ids, "declared 40 days before the range"
    assert ids[current.id].running is True and ids[current.id].title == "listed"
    assert first_release.id not in ids
    for handle in (old_run, current, first_release):
        await handle.terminate(reason="test finished")
