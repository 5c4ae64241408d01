"""Reads incidents for the status page from Temporal visibility and the ``view`` query."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus

from activities.status_provider import BADGES, status_key
from activities.templates import Templates
from domain import search_attributes as sa
from domain.comms import StatusPagePolicy
from domain.incident import IncidentView
from domain.models import IncidentFacts, Phase
from starters.status_page.public import (
    PublicIncident,
    StatusSnapshot,
    components,
    overall,
    public_incident,
    service_status,
)
from workflows.incident import IncidentWorkflow

log = logging.getLogger("incidents.status_page")

MAX_LISTED = 50
"""At most this many incidents per section; a public page needs no more."""
_QUERY_TIMEOUT = timedelta(seconds=2)
"""A query waits for a worker; without one the page falls back to visibility quickly."""
_OPEN = ", ".join(f"'{phase.value}'" for phase in Phase if phase.is_open)
_CLOSED = ", ".join(f"'{phase.value}'" for phase in Phase if not phase.is_open)


class StatusSource:
    """Builds :class:`StatusSnapshot` from Temporal, caching it for ``ttl`` seconds.

    A public page can be hit hard during an outage; the cache keeps Temporal's
    load independent of the page's traffic.

    Args:
        client: returns the Temporal client (raises when Temporal is unreachable).
        policy: the ``[comms.status_page]`` policy.
        templates: templates with the ``statuspage`` medium (the public wording).
        ttl: seconds a snapshot is served before Temporal is read again.
    """

    def __init__(
        self,
        client: Callable[[], Awaitable[Client]],
        *,
        policy: StatusPagePolicy,
        templates: Templates,
        ttl: float = 5.0,
    ) -> None:
        self._client = client
        self._policy = policy
        self._templates = templates
        self._ttl = ttl
        self._cached: tuple[float, StatusSnapshot] | None = None
        self._lock = asyncio.Lock()

    async def snapshot(self) -> StatusSnapshot:
        """The current snapshot (from cache when fresh)."""
        async with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < self._ttl:
                return self._cached[1]
            snapshot = await self._read()
            self._cached = (time.monotonic(), snapshot)
            return snapshot

    async def _read(self) -> StatusSnapshot:
        now = datetime.now(UTC)
        try:
            client = await self._client()
            current = await self._incidents(client, self._current_query())
            recent = await self._incidents(client, self._recent_query(now))
        except Exception as error:  # any failure to reach Temporal: say so on the page
            log.warning("status page cannot read Temporal: %s", error)
            return StatusSnapshot(title=self._policy.title, generated_at=now, available=False)
        current.sort(key=lambda incident: incident.started_at, reverse=True)
        recent.sort(key=lambda incident: incident.resolved_at or incident.started_at, reverse=True)
        worst, label = overall(current)
        return StatusSnapshot(
            title=self._policy.title,
            generated_at=now,
            current=current,
            recent=recent,
            components=components(self._policy, current),
            overall=worst,
            overall_label=label,
        )

    def _severities(self) -> str:
        return ", ".join(f"'{severity.value}'" for severity in self._policy.severities)

    def _current_query(self) -> str:
        return (
            f"WorkflowType = '{IncidentWorkflow.__name__}' AND ExecutionStatus = 'Running' "
            f"AND {sa.PHASE.name} IN ({_OPEN}) AND {sa.SEVERITY.name} IN ({self._severities()})"
        )

    def _recent_query(self, now: datetime) -> str:
        since = (now - timedelta(days=self._policy.recent_days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return (
            f"WorkflowType = '{IncidentWorkflow.__name__}' "
            f"AND ExecutionStatus IN ('Running', 'Completed') "
            f"AND {sa.PHASE.name} IN ({_CLOSED}) AND {sa.SEVERITY.name} IN ({self._severities()}) "
            f"AND {sa.RESOLVED_AT.name} >= '{since}'"
        )

    async def _incidents(self, client: Client, query: str) -> list[PublicIncident]:
        executions: dict[str, WorkflowExecution] = {}
        async for execution in client.list_workflows(query, limit=MAX_LISTED):
            executions.setdefault(execution.id, execution)
        found = await asyncio.gather(*(self._one(client, e) for e in executions.values()))
        return [incident for incident in found if incident is not None]

    async def _one(self, client: Client, execution: WorkflowExecution) -> PublicIncident | None:
        handle = client.get_workflow_handle(
            execution.id, run_id=execution.run_id, result_type=IncidentView
        )
        try:
            if execution.status == WorkflowExecutionStatus.RUNNING:
                view = await handle.query(IncidentWorkflow.view, rpc_timeout=timedelta(seconds=5))
            else:
                view = await handle.result(rpc_timeout=_QUERY_TIMEOUT)
        except Exception as error:  # no worker, or a run gone: fall back to visibility
            log.info("status page uses visibility only for %s: %s", execution.id, error)
            return await self._from_visibility(execution)
        return public_incident(view, templates=self._templates, policy=self._policy)

    async def _from_visibility(self, execution: WorkflowExecution) -> PublicIncident | None:
        attributes = execution.typed_search_attributes
        try:
            phase = Phase(attributes.get(sa.PHASE) or "Detect")
            memo = await execution.memo()
            facts = IncidentFacts(
                id=execution.id,
                title=str(memo.get("title", "")) or "Service disruption",
                severity=attributes.get(sa.SEVERITY) or "P2",
                phase=phase,
                service=attributes.get(sa.SERVICE) or "",
                declared_at=execution.start_time,
                resolved_at=attributes.get(sa.RESOLVED_AT),
            )
        except ValueError as error:
            log.warning("status page skips %s: %s", execution.id, error)
            return None
        status = status_key(phase)
        return PublicIncident(
            id=facts.id,
            name=self._templates.render_named("statuspage", "name", i=facts),
            status=status,
            badge=BADGES[status],
            service=facts.service,
            started_at=facts.declared_at,
            resolved_at=facts.resolved_at,
            service_status=service_status(IncidentView(**facts.model_dump())),
        )
