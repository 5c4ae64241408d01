"""The Temporal Schedule of the monthly report, written by every worker at start-up.

One Schedule per task queue (``incident-monthly-report-<task queue>``): the 1st of
each month at 09:00 in the policy's ``[metrics] report_timezone``, starting
``MonthlyReportScheduled`` (:mod:`workflows.monthly_report`), which reports the
month before. Overlap policy SKIP; a firing missed while the Temporal server was
down still runs when it is back within :data:`CATCHUP_WINDOW`. (A worker that is
down misses nothing: the Schedule lives in the server, and the workflow it starts
waits for a worker.)

Writing it is idempotent: the first worker creates it, every later start updates
it to the current policy (time zone, task queue) and keeps whatever an operator
set in its state (paused, note).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Literal

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError

from workflows.monthly_report import ScheduledReportInput, ScheduledReportWorkflow

log = logging.getLogger("incidents.worker")

CATCHUP_WINDOW = timedelta(days=27)
"""How late a missed firing may still run: just under a month, so it never runs
after the next month's report was due."""

REPORT_DAY, REPORT_HOUR = 1, 9
"""The 1st of each month at 09:00 (in the report time zone)."""


def schedule_id(task_queue: str) -> str:
    """``incident-monthly-report-<task queue>``: stable, one per task queue."""
    return f"incident-monthly-report-{task_queue}"


def monthly_report_schedule(*, task_queue: str, timezone: str) -> Schedule:
    """The Schedule as the policy wants it (state: running, no note)."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ScheduledReportWorkflow.run,
            ScheduledReportInput(timezone=timezone),
            id=f"monthly-report-scheduled-{task_queue}",
            task_queue=task_queue,
            static_summary="Monthly incident report",
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    day_of_month=[ScheduleRange(REPORT_DAY)],
                    hour=[ScheduleRange(REPORT_HOUR)],
                    minute=[ScheduleRange(0)],
                    second=[ScheduleRange(0)],
                    comment="the 1st of each month at 09:00",
                )
            ],
            time_zone_name=timezone,
        ),
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.SKIP,
            catchup_window=CATCHUP_WINDOW,
        ),
        state=ScheduleState(note="written by the incident worker at start-up"),
    )


async def ensure_monthly_report_schedule(
    client: Client, *, task_queue: str, timezone: str
) -> Literal["created", "updated"]:
    """Create the Schedule, or update an existing one to ``timezone`` and ``task_queue``.

    Raises:
        temporalio.service.RPCError: the server refused (e.g. no permission).
    """
    wanted = monthly_report_schedule(task_queue=task_queue, timezone=timezone)
    try:
        await client.create_schedule(schedule_id(task_queue), wanted)
        return "created"
    except ScheduleAlreadyRunningError:
        pass

    def keep_state(current: ScheduleUpdateInput) -> ScheduleUpdate:
        wanted.state = current.description.schedule.state
        return ScheduleUpdate(schedule=wanted)

    await client.get_schedule_handle(schedule_id(task_queue)).update(keep_state)
    return "updated"


async def start_monthly_report_schedule(client: Client, *, task_queue: str, timezone: str) -> None:
    """:func:`ensure_monthly_report_schedule` at worker start-up: a refusal is logged,
    and the worker runs on (incidents matter more than their monthly report)."""
    try:
        outcome = await ensure_monthly_report_schedule(
            client, task_queue=task_queue, timezone=timezone
        )
    except RPCError as error:
        log.error(
            "monthly report schedule %s not written: %s", schedule_id(task_queue), error.message
        )
        return
    log.info(
        "monthly report schedule %s %s (1st of the month, 09:00 %s)",
        schedule_id(task_queue),
        outcome,
        timezone,
    )
