"""``incident report [--month 2026-11]``: the monthly report, on demand.

The worker writes it, through the same ``MonthlyReport`` workflow the Schedule
starts, so the files land in the worker's data directory exactly as on the 1st:

- a month that is over is reported by its own workflow (``monthly-report-2026-11``):
  the first run writes the files and posts the summary to the incidents channel; a
  month that has its report is not posted again, and the command prints where it is;
- the current month is reported so far (``monthly-report-2026-11-so-far-<time>``): the
  files are written, nothing is posted, and the 1st of next month replaces them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from pydantic import ValidationError
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.report_markdown import actual
from activities.reports import month_bounds, month_title, parse_month
from domain.policy import PolicyError, load_policy
from domain.settings import Settings
from starters.cli import render
from starters.cli.session import CliError, open_client, rejection_reason
from workflows.monthly_report import (
    REPORT_ID_REUSE,
    MonthlyReportInput,
    MonthlyReportResult,
    MonthlyReportWorkflow,
    report_workflow_id,
)

MIN_WAIT = 120.0
"""Seconds the command waits for the report at least (a month of 10,000 incidents takes
a few seconds; a busy worker more), whatever ``--timeout`` says."""

_timeout: Callable[[], float] = lambda: MIN_WAIT  # noqa: E731 - replaced by register()


def register(app: typer.Typer, *, timeout: Callable[[], float]) -> None:
    """Add ``incident report`` to the root CLI."""
    global _timeout
    _timeout = timeout
    app.command("report")(report)


def _month(raw: str | None) -> str | None:
    if raw is None:
        return None
    try:
        return parse_month(raw)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--month") from None


def report(
    month: Annotated[
        str | None,
        typer.Option(
            metavar="YYYY-MM",
            help="The month (in the policy's \\[metrics] report_timezone). Default: this month.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Write the monthly report (Markdown and two charts) now; a finished month's summary
    is posted to the incidents channel once."""
    wanted = _month(month)
    try:
        asyncio.run(_report(wanted, as_json=as_json))
    except CliError as error:
        render.print_error(error.message)
        raise typer.Exit(error.exit_code) from None


async def _report(month: str | None, *, as_json: bool) -> None:
    try:
        settings = Settings()
        policy = load_policy(settings.policy)
    except (ValidationError, PolicyError) as error:
        raise CliError(str(error)) from None
    timezone = policy.metrics.report_timezone
    now = datetime.now(UTC)
    month = month or f"{now.astimezone(ZoneInfo(timezone)):%Y-%m}"
    start, end = month_bounds(month, timezone)
    if now < start:
        raise CliError(f"{month} has not started yet")
    client = await open_client()
    handle = await _start(client, settings.task_queue, month, over=now >= end, now=now)
    try:
        result = await asyncio.wait_for(handle.result(), timeout=max(_timeout(), MIN_WAIT))
    except TimeoutError:
        raise CliError(
            f"the report is still being written (workflow {handle.id}); is a worker running "
            f"on task queue {settings.task_queue!r}?"
        ) from None
    except WorkflowFailureError as error:
        raise CliError(f"the report failed: {rejection_reason(error)}") from None
    if as_json:
        render.print_json(result)
    else:
        _print(result, partial=now < end, now=now)


async def _start(
    client: Client, task_queue: str, month: str, *, over: bool, now: datetime
) -> WorkflowHandle[MonthlyReportWorkflow, MonthlyReportResult]:
    if not over:
        return await client.start_workflow(
            MonthlyReportWorkflow.run,
            MonthlyReportInput(month=month, until=now, post=False),
            id=f"{report_workflow_id(month)}-so-far-{int(now.timestamp())}",
            task_queue=task_queue,
            static_summary=f"Incident report for {month} so far",
        )
    try:
        return await client.start_workflow(
            MonthlyReportWorkflow.run,
            MonthlyReportInput(month=month),
            id=report_workflow_id(month),
            task_queue=task_queue,
            id_reuse_policy=REPORT_ID_REUSE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"Incident report for {month}",
        )
    except WorkflowAlreadyStartedError:
        render.print_warning(f"{month} was reported already; its summary is not posted again")
        return client.get_workflow_handle_for(MonthlyReportWorkflow.run, report_workflow_id(month))


def _print(result: MonthlyReportResult, *, partial: bool, now: datetime) -> None:
    title = month_title(result.month)
    if partial:
        title += f", so far (until {now:%Y-%m-%d %H:%M} UTC)"
    print(f"{title}: {result.declared} incidents declared")
    for check in result.targets:
        if check.status == "no data":
            print(f"— {check.name}: no data (target {check.target})")
            continue
        render.print_line(
            f"{check.name} {actual(check)} (target {check.target})", ok=check.status == "met"
        )
    print(f"report: {result.markdown}")
    for chart in result.charts:
        print(f"chart:  {chart}")
    if result.posted:
        print(f"posted: {', '.join(result.posted)}")
    for failure in result.failures:
        render.print_warning(failure)
