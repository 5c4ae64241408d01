"""Action items as visibility lists them: the query, one row per item, and the rows the
incident documents show. Read from search attributes and memo only, never a query."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio.client import Client, WorkflowExecution

from domain import search_attributes as sa
from domain.actions import ACTION_WORKFLOW_TYPE, ActionStatus, ActionSummary, normalize_owner
from domain.documents import ActionItemRow

MAX_ROWS = 500
"""Action items one incident's documents list."""


def list_query(
    *, owner: str | None, incident: str | None, overdue: bool, include_closed: bool, now: datetime
) -> str:
    """The visibility query for ``incident actions`` (values validated, so safe to quote)."""
    clauses = [f"WorkflowType = '{ACTION_WORKFLOW_TYPE}'"]
    if include_closed:
        clauses.append("ExecutionStatus != 'ContinuedAsNew'")
    else:
        clauses.append(f"{sa.ACTION_STATUS.name} = '{ActionStatus.OPEN.value}'")
        clauses.append("ExecutionStatus = 'Running'")
    if owner is not None:
        clauses.append(f"{sa.ACTION_OWNER.name} = '{normalize_owner(owner)}'")
    if incident is not None:
        clauses.append(f"{sa.ACTION_INCIDENT.name} = '{incident}'")
    if overdue:
        clauses.append(f"{sa.ACTION_STATUS.name} = '{ActionStatus.OPEN.value}'")
        clauses.append(f"{sa.ACTION_DUE_AT.name} < {int(now.timestamp())}")
    return " AND ".join(clauses)


async def summarize(execution: WorkflowExecution, now: datetime) -> ActionSummary:
    """One row from a visibility record."""
    attributes = execution.typed_search_attributes
    memo = await execution.memo()
    due_at = attributes.get(sa.ACTION_DUE_AT)
    due = datetime.fromtimestamp(due_at, UTC) if due_at is not None else None
    status = attributes.get(sa.ACTION_STATUS) or ""
    completed = memo.get("completed_at")
    return ActionSummary(
        id=execution.id,
        incident_id=attributes.get(sa.ACTION_INCIDENT) or "",
        title=str(memo.get("title") or ""),
        owner=attributes.get(sa.ACTION_OWNER) or "",
        status=status,
        due=due,
        overdue=status == ActionStatus.OPEN.value and due is not None and due < now,
        commander=memo.get("commander") or None,
        completed_at=datetime.fromisoformat(completed) if completed else None,
        on_time=memo.get("on_time"),
        jira_key=memo.get("jira_key") or None,
        jira_url=memo.get("jira_url") or None,
    )


async def incident_action_items(client: Client, incident_id: str) -> list[ActionItemRow]:
    """Every action item of ``incident_id`` (from visibility), as document table rows."""
    now = datetime.now(UTC)
    query = list_query(
        owner=None, incident=incident_id, overdue=False, include_closed=True, now=now
    )
    rows = [await summarize(e, now) async for e in client.list_workflows(query, limit=MAX_ROWS)]
    rows.sort(key=lambda row: row.id)
    return [
        ActionItemRow(
            action=row.title,
            owner=row.owner,
            due=row.due.date() if row.due else None,
            status=_status(row),
        )
        for row in rows
    ]


def _status(row: ActionSummary) -> str:
    if row.status == ActionStatus.DONE.value:
        return "✅ done on time" if row.on_time else "✅ done late"
    if row.status == ActionStatus.OPEN.value:
        return "⚠️ overdue" if row.overdue else "⏳ open"
    return "✖ dropped"
