"""The monthly incident report: one workflow per month, and the one the Schedule starts.

``MonthlyReport`` (workflow ID ``monthly-report-2026-11``) reports one month: it
waits for the month to end (in the policy's ``[metrics] report_timezone``), has
an activity read visibility, compute the figures and write
``reports/2026-11.md`` with its two charts, then posts the summary to the
incidents channel through the same per-channel ``deliver_via`` as every
notification, under the key ``<workflow ID>/1`` (``monthly-report-2026-11/1``).
Only the activity's small digest enters history: never the Markdown or the PNG
bytes. With ``until`` it reports the month so far at once (``incident report`` on
the current month, under another workflow ID and without posting).

``MonthlyReportScheduled`` is what the Schedule (:mod:`workers.schedules`) starts
on the 1st at 09:00: it takes the month before its scheduled time and starts that
month's ``MonthlyReport`` as a child. The child's ID is the month and a completed
one is never started again (``ALLOW_DUPLICATE_FAILED_ONLY``), so a month is reported
once however often the Schedule fires (catch-up, a manual trigger) and whether or
not ``incident report`` ran first; a failed report may be run again.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from pydantic import Field

    from activities.policy import PolicyActivities
    from activities.reports import (
        MonthlyReports,
        ReportOutcome,
        ReportRequest,
        chart_refs,
        month_before,
        month_bounds,
        parse_month,
    )
    from domain.metrics import TargetCheck
    from domain.models import (
        IncidentFacts,
        Notification,
        NotificationKind,
        Phase,
        Severity,
        _Model,
    )
    from workflows import delivery

REPORT_WORKFLOW_TYPE = "MonthlyReport"
"""Workflow type of one month's report."""
SCHEDULED_WORKFLOW_TYPE = "MonthlyReportScheduled"
"""Workflow type the Schedule starts."""

REPORT_CHANNELS = ("outbox", "slack")
"""Channels the report goes to: never the status page or the customer e-mail."""

SCHEDULED_START_TIME = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
"""Set by Temporal on every workflow a Schedule starts: the time it was due."""

REPORT_ID_REUSE = WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY
"""How a month's report is started, by the Schedule and by ``incident report``: a month
that has its report is never reported again; one whose report failed may be."""

WRITE_ATTEMPT = timedelta(minutes=5)
"""One attempt at reading, computing and writing (a month of 10,000 incidents takes seconds)."""
WRITE_GIVE_UP = timedelta(hours=6)
"""Visibility or the disk failing this long fails the report (``incident report`` may run
it again): a report retrying for weeks would make the Schedule skip the next month's."""
WRITE_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=2))


def report_workflow_id(month: str) -> str:
    """``monthly-report-2026-11``: the one workflow that reports ``month``."""
    return f"monthly-report-{parse_month(month)}"


class MonthlyReportInput(_Model):
    """Input of ``MonthlyReport``."""

    month: str
    """The month to report, ``YYYY-MM`` (in the policy's report time zone)."""
    until: datetime | None = None
    """Report the month up to this time, at once (the month so far); None: the whole
    month, once it is over."""
    post: bool = True
    """Post the summary to the incidents channel (``incident report`` does not post a
    month that is not over)."""


class ScheduledReportInput(_Model):
    """Input of ``MonthlyReportScheduled``, as the Schedule's action carries it."""

    timezone: str = "UTC"
    """The policy's report time zone when the worker last wrote the Schedule."""


class MonthlyReportResult(_Model):
    """What a month's report produced."""

    month: str
    """The month reported."""
    markdown: str = ""
    """Path of the Markdown report."""
    charts: list[str] = Field(default_factory=list)
    """Paths of its charts."""
    declared: int = 0
    """Incidents declared in the month."""
    targets: list[TargetCheck] = Field(default_factory=list)
    """Each target, met or missed."""
    posted: list[str] = Field(default_factory=list)
    """Channels that delivered the summary."""
    failures: list[str] = Field(default_factory=list)
    """Permanent delivery failures (the report itself is on disk)."""
    already_reported: bool = False
    """Set by ``MonthlyReportScheduled`` when the month had its report (or one running)."""


@workflow.defn(name=REPORT_WORKFLOW_TYPE)
class MonthlyReportWorkflow:
    """Reports one month once it is over: files on disk, the summary in the channel."""

    @workflow.run
    async def run(self, input: MonthlyReportInput) -> MonthlyReportResult:
        """Wait for the month's end (unless ``until`` is given), write the report, post the
        summary."""
        try:
            month = parse_month(input.month)
        except ValueError as error:
            raise ApplicationError(str(error), type="InvalidMonth", non_retryable=True) from None
        setup = await workflow.execute_local_activity_method(
            PolicyActivities.worker_setup,
            start_to_close_timeout=timedelta(seconds=10),
            summary="Load the policy and channels",
        )
        metrics = setup.policy.metrics
        start, end = month_bounds(month, metrics.report_timezone)
        if input.until is None and workflow.now() < end:
            await workflow.sleep(end - workflow.now(), summary=f"until {month} is over")
        outcome = await workflow.execute_activity_method(
            MonthlyReports.write,
            ReportRequest(month=month, metrics=metrics, until=input.until),
            start_to_close_timeout=WRITE_ATTEMPT,
            schedule_to_close_timeout=WRITE_GIVE_UP,
            retry_policy=WRITE_RETRY,
            summary=f"write reports/{month}.md",
        )
        notification = _notification(
            outcome,
            key=f"{workflow.info().workflow_id}/1",
            start=start,
            end=end,
            target=setup.policy.notifications.incidents_channel,
            status_page_url=setup.policy.notifications.status_page_url,
        )
        channels = [name for name in setup.channels if name in REPORT_CHANNELS and input.post]
        refs = chart_refs(outcome.charts)
        results = await asyncio.gather(
            *(delivery.deliver_via(name, notification, refs) for name in channels)
        )
        delivered = list(zip(channels, results, strict=True))
        failures = [f"{name}: {fail}" for name, result in delivered for fail in result.failures]
        for failure in failures:
            workflow.logger.error("monthly report %s: %s", month, failure)
        return MonthlyReportResult(
            month=month,
            markdown=outcome.markdown,
            charts=outcome.charts,
            declared=outcome.declared,
            targets=outcome.targets,
            posted=[name for name, result in delivered if not result.failures],
            failures=failures,
        )


def _notification(
    outcome: ReportOutcome,
    *,
    key: str,
    start: datetime,
    end: datetime,
    target: str,
    status_page_url: str,
) -> Notification:
    # A notification travels with incident facts; the report's describe the month.
    facts = IncidentFacts(
        id=key.split("/")[0],
        title=outcome.title,
        severity=Severity.P3,
        phase=Phase.RESOLVE,
        declared_at=start,
        resolved_at=end,
        status_page_url=status_page_url,
    )
    return Notification(
        key=key,
        kind=NotificationKind.MONTHLY_REPORT,
        incident=facts,
        at=workflow.now(),
        targets=[target],
        text=outcome.summary,
        actor="system",
        priority=True,
    )


@workflow.defn(name=SCHEDULED_WORKFLOW_TYPE)
class ScheduledReportWorkflow:
    """Started by the Schedule: reports the month before the one it was due in."""

    @workflow.run
    async def run(self, input: ScheduledReportInput) -> MonthlyReportResult:
        """Start the month's ``MonthlyReport`` unless it ran already, and wait for it."""
        info = workflow.info()
        due = info.typed_search_attributes.get(SCHEDULED_START_TIME) or info.workflow_start_time
        month = month_before(due, input.timezone)
        try:
            child = await workflow.start_child_workflow(
                MonthlyReportWorkflow.run,
                MonthlyReportInput(month=month),
                id=report_workflow_id(month),
                id_reuse_policy=REPORT_ID_REUSE,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                static_summary=f"Incident report for {month}",
            )
        except WorkflowAlreadyStartedError:
            workflow.logger.info("%s already has its report", month)
            return MonthlyReportResult(month=month, already_reported=True)
        return await child
