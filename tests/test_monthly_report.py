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

import asyncio
import json
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import (
    Client,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    WorkflowExecutionStatus,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from activities.charts import duration_label
from activities.report_markdown import md
from activities.reports import month_before, month_bounds, weekly_counts
from activities.slack import SlackApi, SlackChannel, new_slack_client
from activities.slack.report import ReportingSlackChannel
from activities.templates import standard_templates
from domain.comms import SlackSettings
from domain.measures import MEASURES_MEMO
from domain.metrics import IncidentRow, MetricsInput, Period
from domain.models import (
    AcknowledgeInput,
    DismissInput,
    NotificationKind,
    Phase,
    PhaseInput,
    RecordInput,
    Severity,
)
from domain.policy import Policy, policy_from_mapping
from domain.settings import Settings
from starters.cli import app
from tests.conftest import Outbox, new_worker
from tests.fakes.slack import FakeSlack
from tests.helpers import declare, eventually
from workers.main import run_worker
from workers.schedules import (
    CATCHUP_WINDOW,
    ensure_monthly_report_schedule,
    schedule_id,
)
from workflows.incident import IncidentWorkflow
from workflows.monthly_report import (
    REPORT_ID_REUSE,
    SCHEDULED_START_TIME,
    MonthlyReportInput,
    MonthlyReportResult,
    MonthlyReportWorkflow,
    ScheduledReportInput,
    ScheduledReportWorkflow,
    report_workflow_id,
)

PNG = b"\x89PNG\r\n\x1a\n"
DATETIME = IndexedValueType.INDEXED_VALUE_TYPE_DATETIME
T = TypeVar("T")


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


def test_weeks_run_monday_to_sunday_in_the_report_time_zone() -> None:
    start, end = month_bounds("2026-11", "Europe/Berlin")
    period = Period(start=start, end=end, label="2026-11")
    rows = [
        _row(1, Severity.P0, datetime(2026, 10, 31, 23, 30, tzinfo=UTC), 10),  # Nov 1, Berlin
        _row(2, Severity.P1, datetime(2026, 11, 1, 23, 30, tzinfo=UTC), 10),  # Mon Nov 2
        _row(3, Severity.P1, datetime(2026, 11, 30, 23, 30, tzinfo=UTC), 10),  # December
    ]
    weeks = weekly_counts(rows, period, timezone="Europe/Berlin")
    assert [f"{week.start:%m-%d}" for week in weeks] == [
        "11-01",
        "11-02",
        "11-09",
        "11-16",
        "11-23",
        "11-30",
    ]
    assert [week.counts[Severity.P0] for week in weeks] == [1, 0, 0, 0, 0, 0]
    assert [week.counts[Severity.P1] for week in weeks] == [0, 1, 0, 0, 0, 0]


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

        # The Schedule fires on the 1st at 09:00, twice (catch-up, a manual trigger); the
        # time it was due is what a Schedule sets on the workflows it starts.
        due = month_end + timedelta(hours=9)
        await client.operator_service.add_search_attributes(  # a real server has it built in
            AddSearchAttributesRequest(
                namespace=client.namespace,
                search_attributes={
                    SCHEDULED_START_TIME.name: IndexedValueType.INDEXED_VALUE_TYPE_DATETIME
                },
            )
        )
        for run in range(2):
            scheduled = await client.execute_workflow(
                ScheduledReportWorkflow.run,
                ScheduledReportInput(timezone="UTC"),
                id=f"monthly-report-scheduled-{worker.task_queue}-{run}",
                task_queue=worker.task_queue,
                search_attributes=TypedSearchAttributes(
                    [SearchAttributePair(SCHEDULED_START_TIME, due)]
                ),
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
        history = await handle.fetch_history()

    assert len(rows.reads) == 1, "figures computed once"
    # Only the digest enters history: never the Markdown, never a PNG.
    results = [
        payload.data
        for event in history.events
        if event.HasField("activity_task_completed_event_attributes")
        for payload in event.activity_task_completed_event_attributes.result.payloads
    ]
    assert len(results) == 2  # the report written; the summary delivered
    assert all(len(data) < 4096 and b"PNG" not in data and b"# " not in data for data in results)
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


def test_untrusted_text_is_inert_markdown() -> None:
    text = md("Checkout <!channel> *down* | [x](http://evil) ![i](y)\n# heading")
    assert "\n" not in text
    assert re.findall(r"(?<!\\)[<>*|\[\]()!#`_]", text) == [], "each one escaped"
    assert text.startswith("Checkout \\<\\!channel\\> \\*down\\* \\|")
    cut = md("a" * 500, 50)
    assert len(cut) == 50 and cut.endswith("…")


# ---------------------------------------------------------------- dev server


async def _listed(client: Client, query: str) -> list[Any]:
    return [execution async for execution in client.list_workflows(query)]


async def test_the_worker_writes_its_schedule_once_and_keeps_it_current(
    namespace: Client,
) -> None:
    client, queue = namespace, f"tq-{uuid.uuid4()}"
    created = await ensure_monthly_report_schedule(client, task_queue=queue, timezone="UTC")
    assert created == "created"
    handle = client.get_schedule_handle(schedule_id(queue))
    await handle.pause(note="paused by an operator")

    updated = await ensure_monthly_report_schedule(
        client, task_queue=queue, timezone="Pacific/Auckland"
    )
    assert updated == "updated"
    described = await handle.describe()
    schedule = described.schedule
    assert schedule.spec.time_zone_name == "Pacific/Auckland"
    (calendar,) = schedule.spec.calendars
    assert [(r.start, r.end) for r in calendar.day_of_month] == [(1, 1)]
    assert [(r.start, r.end) for r in calendar.hour] == [(9, 9)]
    assert [(r.start, r.end) for r in calendar.minute] == [(0, 0)]
    assert schedule.policy.overlap is ScheduleOverlapPolicy.SKIP
    assert schedule.policy.catchup_window == CATCHUP_WINDOW
    assert schedule.state.paused and schedule.state.note == "paused by an operator"
    assert schedule.action.task_queue == queue  # type: ignore[union-attr]
    (next_run, *_) = described.info.next_action_times
    local = next_run.astimezone(ZoneInfo("Pacific/Auckland"))
    assert (local.day, local.hour, local.minute) == (1, 9, 0)
    with pytest.raises(ScheduleAlreadyRunningError):
        await client.create_schedule(schedule_id(queue), schedule)


async def test_the_schedule_firing_twice_reports_the_month_before_once(
    namespace: Client, outbox: Outbox, tmp_path: Path
) -> None:
    client = namespace
    async with new_worker(
        client, channels=[outbox.channel], reports_dir=tmp_path / "reports"
    ) as worker:
        await ensure_monthly_report_schedule(client, task_queue=worker.task_queue, timezone="UTC")
        handle = client.get_schedule_handle(schedule_id(worker.task_queue))
        for fired in (1, 2):
            await handle.trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL)

            async def started(count: int = fired) -> None:
                assert len((await handle.describe()).info.recent_actions) == count

            await eventually(started)
            await asyncio.sleep(1.1)  # its workflow IDs end in the second it fired
        month = month_before(datetime.now(UTC), "UTC")

        async def all_done() -> list[Any]:
            runs = await _listed(client, "WorkflowType = 'MonthlyReportScheduled'")
            assert len(runs) == 2
            assert all(r.status is WorkflowExecutionStatus.COMPLETED for r in runs)
            reports = await _listed(client, "WorkflowType = 'MonthlyReport'")
            assert [(r.id, r.status) for r in reports] == [
                (report_workflow_id(month), WorkflowExecutionStatus.COMPLETED)
            ]
            return runs

        runs = await eventually(all_done)
        results = [
            await client.get_workflow_handle(
                run.id, run_id=run.run_id, result_type=MonthlyReportResult
            ).result()
            for run in runs
        ]
        await handle.delete()
    assert sorted(r.already_reported for r in results) == [False, True]
    assert {r.month for r in results} == {month}
    assert [r["key"] for r in outbox.records()] == [f"monthly-report-{month}/1"]
    assert (tmp_path / "reports" / f"{month}.md").exists()


def _slack(fake: FakeSlack, policy: Policy) -> ReportingSlackChannel:
    settings = SlackSettings(bot_token=fake.token, api_url=fake.api_url)
    api = SlackApi(new_slack_client(settings))
    templates = standard_templates()
    incidents = SlackChannel(api, templates, policy.comms.slack)
    return ReportingSlackChannel(incidents, api, templates, policy.comms.slack)


async def _seed(client: Client, worker: Any) -> dict[str, str]:
    """A P0 and a P1 with the same root cause, resolved; a P2 dismissed."""
    ids: dict[str, str] = {}
    for severity, title, impact in (
        (Severity.P0, "Checkout <!channel> *down* | 1", 70),
        (Severity.P1, "Checkout slow again", 20),
    ):
        handle = await declare(client, worker, severity=severity, title=title)
        ids[severity.value] = handle.id
        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bob"))
        declared = (await handle.describe()).start_time
        await handle.execute_update(
            IncidentWorkflow.set_record,
            RecordInput(
                responder="bob",
                root_cause_key="deploy/bad-config",
                impact_started=declared - timedelta(minutes=impact),
            ),
        )
        await handle.execute_update(
            IncidentWorkflow.set_phase, PhaseInput(responder="bob", phase="resolve")
        )
    noise = await declare(client, worker, severity=Severity.P2, title="Noise")
    ids["P2"] = noise.id
    await noise.execute_update(
        IncidentWorkflow.dismiss, DismissInput(responder="bob", reason="test alert")
    )

    async def published() -> None:
        phases = {}
        for execution in await _listed(client, "WorkflowType = 'Incident'"):
            measures = (await execution.memo()).get(MEASURES_MEMO) or {}
            phases[execution.id] = measures.get("phase")
        assert phases == {
            ids["P0"]: "Resolve",
            ids["P1"]: "Resolve",
            ids["P2"]: "Dismissed",
        }

    await eventually(published)
    return ids


async def test_real_incidents_make_the_report_and_one_slack_post_with_its_charts(
    namespace: Client, outbox: Outbox, slack: FakeSlack, tmp_path: Path
) -> None:
    client = namespace
    # No post-mortems: their drafts would be uploaded to Slack too, and the lost answer
    # staged below must be the report's.
    policy = policy_from_mapping(
        {
            "severities": {s: {"postmortem_required": False} for s in ("P0", "P1")},
            "comms": {"slack": {"channels": {"#incidents": "CINCIDENTS"}}},
        }
    )
    reports = tmp_path / "reports"
    async with new_worker(
        client,
        policy=policy,
        channels=[outbox.channel, _slack(slack, policy)],
        reports_dir=reports,
    ) as worker:
        ids = await _seed(client, worker)
        now = datetime.now(UTC)
        month = f"{now:%Y-%m}"
        # The first upload's answer is lost: the retry must neither post nor upload again.
        slack.fail("files.completeUploadExternal", after_effect=True)
        result = await client.execute_workflow(
            MonthlyReportWorkflow.run,
            MonthlyReportInput(month=month, until=now),
            id=report_workflow_id(month),
            task_queue=worker.task_queue,
            id_reuse_policy=REPORT_ID_REUSE,
        )
        with pytest.raises(WorkflowAlreadyStartedError):
            await client.start_workflow(
                MonthlyReportWorkflow.run,
                MonthlyReportInput(month=month, until=now),
                id=report_workflow_id(month),
                task_queue=worker.task_queue,
                id_reuse_policy=REPORT_ID_REUSE,
            )

    assert result.posted == ["outbox", "slack"] and result.failures == []
    assert result.declared == 3
    status = {check.name: check.status for check in result.targets}
    assert status["MTTR P0"] == "missed" and status["Repeat incidents"] == "missed"

    markdown = (reports / f"{month}.md").read_text()
    charts = [Path(chart) for chart in result.charts]
    assert [chart.parent for chart in charts] == [reports, reports]
    for chart in charts:
        assert chart.read_bytes().startswith(PNG)
        assert f"]({chart.name})" in markdown
    assert "| P0 | 1 | 1 | 0 | 0 |" in markdown and "| P2 | 1 | 0 | 1 | 0 |" in markdown
    assert "## Repeat incidents (1)" in markdown
    repeat = next(line for line in markdown.splitlines() if line.startswith("- INC"))
    assert md(ids["P1"]) in repeat and f"repeats {md(ids['P0'])}" in repeat
    assert "<!channel>" not in markdown

    def is_report(message: dict[str, Any]) -> bool:
        payload = (message.get("metadata") or {}).get("event_payload") or {}
        return payload.get("kind") == NotificationKind.MONTHLY_REPORT.value

    (post,) = [m for m in slack.posts("CINCIDENTS") if is_report(m)]
    assert "MONTHLY INCIDENT REPORT" in post["text"] and "3 incidents declared" in post["text"]
    (thread,) = [m for m in slack.posts("CINCIDENTS") if m.get("thread_ts") == post["ts"]]
    assert [f["name"] for f in thread["files"]] == [chart.name for chart in charts]
    uploaded = {upload.filename: upload for upload in slack.files.values()}
    assert len(uploaded) == len(slack.files) == 2, "no second upload on retry"
    for chart in charts:
        assert uploaded[chart.name].content == chart.read_bytes()
        assert uploaded[chart.name].shared_in == ["CINCIDENTS"]
    created = [c.args.get("name", "") for c in slack.calls if c.method == "conversations.create"]
    assert not any("report" in str(name) for name in created), "a report gets no channel"
    (record,) = [r for r in outbox.records() if r["kind"] == "monthly_report"]
    assert record["key"] == f"monthly-report-{month}/1"


async def test_the_worker_writes_the_schedule_at_start_up(
    namespace: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "TEMPORAL_ADDRESS": namespace.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": namespace.namespace,
        "TEMPORAL_CONFIG_FILE": str(tmp_path / "no-temporal.toml"),
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("TEMPORAL_PROFILE", "TEMPORAL_API_KEY", "TEMPORAL_TLS"):
        monkeypatch.delenv(name, raising=False)
    policy = tmp_path / "policy.toml"
    settings = Settings(task_queue=f"tq-{uuid.uuid4()}", data_dir=tmp_path, policy=policy)
    handle = namespace.get_schedule_handle(schedule_id(settings.task_queue))
    # The first start creates it, a start under a new policy updates it.
    for timezone in ("Europe/Berlin", "Pacific/Auckland"):
        policy.write_text(f'[metrics]\nreport_timezone = "{timezone}"\n')
        stop = asyncio.Event()
        worker = asyncio.create_task(run_worker(settings, stop))

        async def written(timezone: str = timezone) -> None:
            try:
                schedule = (await handle.describe()).schedule
            except RPCError as error:
                raise AssertionError(f"not written yet: {error}") from None
            assert schedule.spec.time_zone_name == timezone

        await eventually(written)
        stop.set()
        await worker
    await handle.delete()


async def test_incident_report_on_the_command_line(
    namespace: Client, outbox: Outbox, tmp_path: Path
) -> None:
    client = namespace
    reports = tmp_path / "reports"
    runner = CliRunner()
    async with new_worker(client, channels=[outbox.channel], reports_dir=reports) as worker:
        env = {
            "TEMPORAL_CONFIG_FILE": str(tmp_path / "no-temporal.toml"),
            "TEMPORAL_PROFILE": None,
            "TEMPORAL_API_KEY": None,
            "TEMPORAL_TLS": None,
            "TEMPORAL_ADDRESS": client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": client.namespace,
            "INCIDENT_TASK_QUEUE": worker.task_queue,
            "INCIDENT_POLICY": None,
            "COLUMNS": "200",
        }

        async def incident(*args: str) -> Any:
            return await asyncio.to_thread(runner.invoke, app, list(args), env=env)

        bad = await incident("report", "--month", "2026-13")
        assert bad.exit_code == 2 and "YYYY-MM" in bad.stderr

        now = datetime.now(UTC)
        this_month, last_month = f"{now:%Y-%m}", month_before(now, "UTC")
        so_far = await incident("report")
        assert so_far.exit_code == 0, so_far.output
        assert "so far" in so_far.stdout
        assert f"report: {reports / f'{this_month}.md'}" in so_far.stdout
        assert outbox.records() == [], "a month that is not over is not posted"

        first = await incident("report", "--month", last_month, "--json")
        assert first.exit_code == 0, first.output
        reported = json.loads(first.stdout)
        assert reported["month"] == last_month and reported["posted"] == ["outbox"]
        again = await incident("report", "--month", last_month)
        assert again.exit_code == 0, again.output
        assert "reported already" in again.stderr
        assert f"report: {reports / f'{last_month}.md'}" in again.stdout

    for month in (this_month, last_month):
        markdown = (reports / f"{month}.md").read_text()
        for chart in (f"{month}-incidents-per-week.png", f"{month}-ttr-by-severity.png"):
            assert (reports / chart).read_bytes().startswith(PNG)
            assert f"]({chart})" in markdown
    assert "not over" in (reports / f"{this_month}.md").read_text()
    assert [r["key"] for r in outbox.records()] == [f"monthly-report-{last_month}/1"]


def test_chart_labels_never_round_seconds_up_to_a_minute() -> None:
    assert [duration_label(s) for s in (7, 29, 31, 90, 3600, 4020)] == [
        "<1m",
        "<1m",
        "1m",
        "2m",
        "1h",
        "1h7m",
    ]
