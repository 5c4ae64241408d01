"""Every incident and action item, kept current from visibility at a bounded cost.

The first refresh lists every incident and action item; each later one lists only
the running ones and those closed since shortly before the previous refresh. A
closed workflow's memo never changes again, so what was read once stays right;
rows are keyed by workflow ID, so reading one twice never counts it twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.client import Client

from domain import launch
from domain.actions import ACTION_WORKFLOW_TYPE
from domain.metrics import ActionRow, IncidentRow
from starters.metrics_source import action_row, incident_row, listed

CLOSE_OVERLAP = timedelta(minutes=5)
"""How far before the previous refresh a later one looks for closed workflows, so a
close that reached visibility late is still read."""


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _changed_since(cutoff: datetime | None) -> str:
    if cutoff is None:
        return "ExecutionStatus != 'ContinuedAsNew'"
    return f"(ExecutionStatus = 'Running' OR CloseTime >= '{_when(cutoff)}')"


class VisibilityCache:
    """All incidents and action items of a namespace, by workflow ID."""

    def __init__(self) -> None:
        self._closed_incidents: dict[str, IncidentRow] = {}
        self._running_incidents: dict[str, IncidentRow] = {}
        self._closed_actions: dict[str, ActionRow] = {}
        self._running_actions: dict[str, ActionRow] = {}
        self._unmeasured: set[str] = set()
        self._refreshed: datetime | None = None

    @property
    def incidents(self) -> list[IncidentRow]:
        """Every incident with measures (a running run wins over a closed one of the same
        ID: the incident was reset)."""
        return list({**self._closed_incidents, **self._running_incidents}.values())

    @property
    def actions(self) -> list[ActionRow]:
        """Every action item."""
        return list({**self._closed_actions, **self._running_actions}.values())

    @property
    def unmeasured(self) -> int:
        """Incidents listed without measures (first-release ``IncidentWorkflow`` ones)."""
        return len(self._unmeasured)

    async def refresh(self, client: Client) -> None:
        """Read what changed since the previous refresh (everything the first time)."""
        started = datetime.now(UTC)
        cutoff = self._refreshed - CLOSE_OVERLAP if self._refreshed else None
        changed = _changed_since(cutoff)
        running_incidents: dict[str, IncidentRow] = {}
        query = f"{launch.INCIDENT_TYPES_QUERY} AND {changed}"
        async for execution in listed(client, query):
            row = await incident_row(execution)
            if row is None:
                self._unmeasured.add(execution.id)
            elif execution.close_time is None:
                running_incidents[row.id] = row
            else:
                self._closed_incidents[row.id] = row
        running_actions: dict[str, ActionRow] = {}
        query = f"WorkflowType = '{ACTION_WORKFLOW_TYPE}' AND {changed}"
        async for execution in listed(client, query):
            item = await action_row(execution)
            if item is None:
                continue
            if execution.close_time is None:
                running_actions[item.id] = item
            else:
                self._closed_actions[item.id] = item
        # Swapped in only once both listings succeeded: a failed refresh keeps the previous
        # running rows (closed rows read meanwhile are final, and keyed by the same IDs).
        self._running_incidents = running_incidents
        self._running_actions = running_actions
        self._refreshed = started
