"""Records the monthly-report histories replayed by ``tests/test_replay.py``.

Run on purpose, when a deliberate change to ``workflows/monthly_report.py`` ships:

    .venv/bin/python -m tests.record_report_history

On the time-skipping server it writes ``histories/monthly_report.json`` (a month's
report: the wait for the month's end, the report written, the summary delivered)
and ``histories/monthly_report_scheduled.json`` (the Schedule's workflow starting
the next month's report as a child, due on the 1st at 09:00). Keep the old files
under another name first when running reports still have those histories.
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.reports import month_bounds
from domain.metrics import IncidentRow, MetricsInput
from domain.models import Phase, Severity
from tests.conftest import Outbox, new_worker, register_search_attributes
from workers.binaries import find_binary
from workflows.monthly_report import (
    SCHEDULED_START_TIME,
    MonthlyReportInput,
    MonthlyReportWorkflow,
    ScheduledReportInput,
    ScheduledReportWorkflow,
    report_workflow_id,
)

HISTORIES = Path(__file__).parent / "histories"


async def _save(client: Client, workflow_id: str, name: str) -> None:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json())


async def _one_incident(client: Client, since: datetime, until: datetime) -> MetricsInput:
    declared = since + timedelta(days=2)
    row = IncidentRow(
        id="INC-20261103-7QK3",
        title="Checkout returns 500s",
        severity=Severity.P1,
        phase=Phase.RESOLVE,
        source="cli",
        declared_at=declared,
        acknowledged_at=declared + timedelta(minutes=4),
        resolved_at=declared + timedelta(minutes=50),
    )
    return MetricsInput(
        incidents=[row] if since <= declared < until else [], as_of=datetime.now(UTC)
    )


async def record(env: WorkflowEnvironment, outbox: Outbox, reports: Path) -> None:
    """Record both histories on the time-skipping server."""
    client = env.client
    async with new_worker(
        client, channels=[outbox.channel], reports_dir=reports, report_source=_one_incident
    ) as worker:
        now = await env.get_current_time()
        month = f"{now:%Y-%m}"
        handle = await client.start_workflow(
            MonthlyReportWorkflow.run,
            MonthlyReportInput(month=month),
            id=report_workflow_id(month),
            task_queue=worker.task_queue,
        )
        await handle.result()
        await _save(client, handle.id, "monthly_report")

        _, end = month_bounds(month, "UTC")
        next_end = month_bounds(f"{end:%Y-%m}", "UTC")[1]
        scheduled = await client.start_workflow(
            ScheduledReportWorkflow.run,
            ScheduledReportInput(timezone="UTC"),
            id=f"monthly-report-scheduled-{worker.task_queue}-{next_end:%Y-%m-%dT09:00:00Z}",
            task_queue=worker.task_queue,
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(SCHEDULED_START_TIME, next_end + timedelta(hours=9))]
            ),
        )
        await scheduled.result()
        await _save(client, scheduled.id, "monthly_report_scheduled")


async def main() -> None:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    await register_search_attributes(env.client)
    await env.client.operator_service.add_search_attributes(  # built into real servers
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                SCHEDULED_START_TIME.name: IndexedValueType.INDEXED_VALUE_TYPE_DATETIME
            },
        )
    )
    try:
        with tempfile.TemporaryDirectory() as scratch:
            folder = Path(scratch)
            await record(env, Outbox(folder / "outbox.jsonl"), folder / "reports")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
