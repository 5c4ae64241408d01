"""The monthly report: its Schedule, the month it picks, the files it writes, one post.

- Time-skipping server (it has no Schedules and no visibility listing): a month's
  report waits for the month to end and reports once across the boundary, however
  often the scheduled workflow runs after it. The rows come from a source handed to
  the worker (what the real reader would have listed); computing, rendering, writing
  and delivering are the real ones.
- Dev server, each test in a namespace of its own so its listing holds only its
  incidents: the Schedule created then updated at start-up, fired twice for one
  report; incidents declared and resolved for real, read back from visibility into the
  Markdown with both PNG charts and exactly one Slack post with the charts in its
  thread; ``incident report`` on the command line.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.testing import WorkflowEnvironment

from activities.reports import month_before, month_bounds
from domain.metrics import IncidentRow, MetricsInput
from domain.models import NotificationKind, Phase, Severity
from tests.conftest import Outbox, new_worker
from workflows.monthly_report import (
    REPORT_ID_REUSE,
    MonthlyReportInput,
    MonthlyReportWorkflow,
    ScheduledReportInput,
    ScheduledReportWorkflow,
    report_workflow_id,
)

PNG = b"\x89PNG\r\n\x1a\n"


class Rows:
    """A visibility listing handed to the worker; counts the reads."""

    def __init__(self, incidents: Sequence[IncidentRow]) -> None:
        self.incidents = list(incidents)
        self.reads: list[tuple[datetime, datetime]] = []

    async def __call__(self, client: Client, since: datetime, until: datetime) -> MetricsInput:
        self.reads.append((since, until))
        return MetricsInput(
            incidents=[r for r in self.incidents if since <= r.declared_at < until],
            as_of=datetime.now(UTC),
        )


def _row(number: int, severity: Severity, declared: datetime, minutes: int) -> IncidentRow:
    return IncidentRow(
        id=f"INC-20261103-T{number:03d}",
        title=f"Checkout <!channel> *down* | {number}",
        severity=severity,
        phase=Phase.RESOLVE,
        source="cli",
        declared_at=declared,
        acknowledged_at=declared + timedelta(minutes=2),
        mitigated_at=declared + timedelta(minutes=minutes // 2),
        resolved_at=declared + timedelta(minutes=minutes),
    )


def test_the_month_before_is_taken_in_the_report_time_zone() -> None:
    # 09:00 on 1 December in Auckland is still 30 November in UTC.
    due = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)
    assert month_before(due, "Pacific/Auckland") == "2026-11"
    assert month_before(due, "UTC") == "2026-10"
    assert month_before(datetime(2027, 1, 1, 8, 0, tzinfo=UTC), "Europe/Berlin") == "2026-12"
    start, end = month_bounds("2026-12", "Europe/Berlin")
    assert (start, end) == (
        datetime(2026, 11, 30, 23, 0, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 0, tzinfo=UTC),
    )
    with pytest.raises(ValueError, match="YYYY-MM"):
        report_workflow_id("2026-13")


async def test_a_month_is_reported_once_when_it_is_over(
    ts_env: WorkflowEnvironment, outbox: Outbox, tmp_path: Path
) -> None:
    client = ts_env.client
    now = await ts_env.get_current_time()
    month = f"{now:%Y-%m}"
    _, month_end = month_bounds(month, "UTC")
    rows = Rows(
        [
            _row(1, Severity.P0, now - timedelta(minutes=3), 50),
            _row(2, Severity.P0, now - timedelta(minutes=2), 90),
            _row(3, Severity.P2, now - timedelta(minutes=1), 30),
        ]
    )
    reports = tmp_path / "reports"
    async with new_worker(
        client, channels=[outbox.channel], reports_dir=reports, report_source=rows
    ) as worker:
        handle = await client.start_workflow(
            MonthlyReportWorkflow.run,
            MonthlyReportInput(month=month),
            id=report_workflow_id(month),
            task_queue=worker.task_queue,
        )
        result = await handle.result()
        assert await ts_env.get_current_time() >= month_end, "not before the month is over"
        assert rows.reads and rows.reads[-1][1] == month_end

        # The Schedule fires after the boundary, twice (catch-up, a manual trigger).
        # Nothing waits on a timer now: the clock stays at the boundary.
        with ts_env.auto_time_skipping_disabled():
            for run in range(2):
                scheduled = await client.execute_workflow(
                    ScheduledReportWorkflow.run,
                    ScheduledReportInput(timezone="UTC"),
                    id=f"monthly-report-scheduled-{worker.task_queue}-{run}",
                    task_queue=worker.task_queue,
                )
                assert scheduled.month == month and scheduled.already_reported
        with pytest.raises(WorkflowAlreadyStartedError):
            await client.start_workflow(
                MonthlyReportWorkflow.run,
                MonthlyReportInput(month=month),
                id=report_workflow_id(month),
                task_queue=worker.task_queue,
                id_reuse_policy=REPORT_ID_REUSE,
            )

    assert len(rows.reads) == 1, "figures computed once"
    posts = [r for r in outbox.records() if r["kind"] == NotificationKind.MONTHLY_REPORT.value]
    assert len(posts) == 1
    assert posts[0]["key"] == f"monthly-report-{month}/1"
    assert "3 incidents declared (P0 2 · P1 0 · P2 1 · P3 0)" in posts[0]["text"]
    assert result.posted == ["outbox"] and result.declared == 3
    mttr = next(check for check in result.targets if check.name == "MTTR P0")
    assert (mttr.actual, mttr.status) == (70 * 60, "missed")

    markdown = (reports / f"{month}.md").read_text()
    charts = sorted(reports.glob(f"{month}-*.png"))
    assert [Path(p) for p in result.charts] == [
        reports / f"{month}-incidents-per-week.png",
        reports / f"{month}-ttr-by-severity.png",
    ]
    assert len(charts) == 2 and all(chart.read_bytes().startswith(PNG) for chart in charts)
    assert all(f"]({chart.name})" in markdown for chart in charts)
    assert "| P0 | 2 | 2 | 0 | 0 |" in markdown
    assert "| MTTR P0 | < 1h | 1h10m | ✗ missed |" in markdown
