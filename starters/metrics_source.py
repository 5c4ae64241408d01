"""Reading the metrics' rows from Temporal visibility: paginated list queries only.

Each incident's figures come from the ``measures`` memo its listing carries, each
action item's from its ``Action*`` search attributes and memo; no workflow is
queried, described or replayed, so one read costs a page per 1,000 workflows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError
from temporalio.client import Client, WorkflowExecution

from domain import launch
from domain import search_attributes as sa
from domain.actions import ACTION_WORKFLOW_TYPE
from domain.measures import MEASURES_MEMO
from domain.metrics import ActionRow, IncidentRow, MetricsInput, Period, Unmeasured

PAGE_SIZE = 1000
"""Workflows per visibility page."""

START_SLACK = timedelta(hours=1)
"""A run starts a moment before its first task records ``declared_at``: the query's
lower bound reaches this far back, and the exact cut is made on ``declared_at``."""


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def incident_query(since: datetime, until: datetime) -> str:
    """Incidents possibly declared in ``[since, until)``: the latest run of each.

    A continued-as-new run starts after the declaration, so the upper bound is the
    run's start *or* the detection time (``IncidentDetectedAt``, the declaration or an
    earlier alert start); :func:`load` keeps exactly those declared in the range.
    """
    return (
        f"{launch.INCIDENT_TYPES_QUERY} AND ExecutionStatus != 'ContinuedAsNew'"
        f" AND StartTime >= '{_when(since - START_SLACK)}'"
        f" AND (StartTime < '{_when(until)}' OR {sa.DETECTED_AT.name} < '{_when(until)}')"
    )


def action_query(since: datetime) -> str:
    """Action items due (or done early) from ``since`` on, and every open one."""
    return (
        f"WorkflowType = '{ACTION_WORKFLOW_TYPE}' AND ExecutionStatus != 'ContinuedAsNew'"
        f" AND ({sa.ACTION_DUE_AT.name} >= {int(since.timestamp())}"
        f" OR {sa.ACTION_STATUS.name} = 'open')"
    )


async def listed(client: Client, query: str) -> AsyncIterator[WorkflowExecution]:
    """Every workflow ``query`` matches, a page at a time.

    The server takes about as long to produce a page as this process takes to read one
    (a visibility page is at most 1,000 workflows), so the next page is requested
    before the current one is read.
    """
    pages = client.list_workflows(query, page_size=PAGE_SIZE)
    await pages.fetch_next_page()
    while True:
        page, token = pages.current_page or [], pages.next_page_token
        following: asyncio.Task[None] | None = None
        if token:
            pages = client.list_workflows(query, page_size=PAGE_SIZE, next_page_token=token)
            following = asyncio.create_task(pages.fetch_next_page())
        try:
            for execution in page:
                yield execution
        except BaseException:  # the reader stopped early: drop the page it will not read
            if following is not None:
                following.cancel()
            raise
        if following is None:
            return
        await following


async def incident_row(execution: WorkflowExecution) -> IncidentRow | None:
    """The row of a listed incident; None without (valid) measures in its memo."""
    memo = await execution.memo()
    measures = memo.get(MEASURES_MEMO)
    if not isinstance(measures, dict):
        return None
    try:
        return IncidentRow.model_validate(
            {
                **measures,
                "id": execution.id,
                "title": memo.get("title") or "",
                "running": execution.close_time is None,
            }
        )
    except ValidationError:
        return None


async def action_row(execution: WorkflowExecution) -> ActionRow | None:
    """The row of a listed action item; None if its attributes are incomplete."""
    attributes = execution.typed_search_attributes
    due = attributes.get(sa.ACTION_DUE_AT)
    status = attributes.get(sa.ACTION_STATUS)
    if due is None or status not in ("open", "done", "dropped"):
        return None
    memo = await execution.memo()
    completed = memo.get("completed_at")
    return ActionRow(
        id=execution.id,
        incident_id=attributes.get(sa.ACTION_INCIDENT) or "",
        title=str(memo.get("title") or ""),
        owner=attributes.get(sa.ACTION_OWNER) or "",
        status=status,
        due=datetime.fromtimestamp(due, UTC),
        completed_at=datetime.fromisoformat(completed) if completed else None,
    )


async def load(client: Client, since: datetime, until: datetime) -> MetricsInput:
    """Incidents declared in ``[since, until)``, action items due or done from ``since``
    on and every open item, read from visibility now.

    To compute a period with repeats and a comparison, read from the previous period's
    start minus the policy's ``repeat_window`` (see :func:`read_range`).
    """
    as_of = datetime.now(UTC)
    incidents: list[IncidentRow] = []
    unmeasured: list[Unmeasured] = []
    async for execution in listed(client, incident_query(since, until)):
        row = await incident_row(execution)
        if row is not None:
            if since <= row.declared_at < until:
                incidents.append(row)
            continue
        seen = execution.typed_search_attributes.get(sa.DETECTED_AT) or execution.start_time
        if since <= seen < until:
            unmeasured.append(Unmeasured(id=execution.id, seen_at=seen))
    actions: list[ActionRow] = []
    async for execution in listed(client, action_query(since)):
        item = await action_row(execution)
        if item is not None:
            actions.append(item)
    return MetricsInput(incidents=incidents, actions=actions, unmeasured=unmeasured, as_of=as_of)


def read_range(period: Period, *, repeat_window: timedelta) -> tuple[datetime, datetime]:
    """The ``(since, until)`` to :func:`load` for computing ``period`` with its previous
    period and the repeats of both."""
    return period.previous().start - repeat_window, period.end
