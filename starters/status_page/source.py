"""Reads incidents for the status page: visibility, then each incident's bounded ``summary``.

The page is public and polled during outages, so what one read costs is
bounded whatever happens: at most ``max_listed`` incidents per section, each
read with the small ``summary`` query (never the full ``view``), a few at a
time, all within ``read_budget`` seconds. An incident that does not answer in
time is shown from its visibility record instead. Snapshots are cached for
``ttl`` seconds and concurrent requests share one read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus

from activities.status_provider import BADGES, status_key
from activities.templates import Templates
from domain import launch
from domain import search_attributes as sa
from domain.comms import StatusPagePolicy
from domain.incident import IncidentSummary, IncidentView
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
_T = TypeVar("_T")

MAX_LISTED = 50
"""At most this many incidents per section; a public page needs no more."""
READ_BUDGET = 3.0
"""Seconds one read of Temporal may take; late incidents fall back to visibility."""
CONCURRENT_READS = 8
"""Incidents queried at once (each query is a workflow task on a worker)."""
_OPEN = ", ".join(f"'{phase.value}'" for phase in Phase if phase.is_open)
_CLOSED = ", ".join(f"'{phase.value}'" for phase in Phase if not phase.is_open)


def _forget(late: set[asyncio.Future[Any]]) -> Callable[[asyncio.Future[Any]], None]:
    def done(task: asyncio.Future[Any]) -> None:
        late.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a late failure is expected, not news

    return done


class StatusSource:
    """Builds :class:`StatusSnapshot` from Temporal, caching it for ``ttl`` seconds.

    A public page can be hit hard during an outage; the cache keeps Temporal's
    load independent of the page's traffic.

    Args:
        client: returns the Temporal client (raises when Temporal is unreachable).
        policy: the ``[comms.status_page]`` policy.
        templates: templates with the ``statuspage`` medium (the public wording).
        ttl: seconds a snapshot is served before Temporal is read again.
        max_listed: incidents per section (current, recent).
        read_budget: seconds one read may take.
    """

    def __init__(
        self,
        client: Callable[[], Awaitable[Client]],
        *,
        policy: StatusPagePolicy,
        templates: Templates,
        ttl: float = 5.0,
        max_listed: int = MAX_LISTED,
        read_budget: float = READ_BUDGET,
    ) -> None:
        self._client = client
        self._policy = policy
        self._templates = templates
        self._ttl = ttl
        self._max_listed = max_listed
        self._read_budget = read_budget
        self._cached: tuple[float, StatusSnapshot] | None = None
        self._lock = asyncio.Lock()
        self._late: set[asyncio.Future[Any]] = set()

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
        deadline = time.monotonic() + self._read_budget
        try:
            client = await asyncio.wait_for(self._client(), self._read_budget)
            left = timedelta(seconds=max(0.1, deadline - time.monotonic()))
            listed = await asyncio.gather(
                self._list(client, self._current_query(), left),
                self._list(client, self._recent_query(now), left),
            )
        except Exception as error:  # any failure to reach Temporal: say so on the page
            log.warning("status page cannot read Temporal: %s", error or type(error).__name__)
            return StatusSnapshot(title=self._policy.title, generated_at=now, available=False)
        reads = asyncio.Semaphore(CONCURRENT_READS)
        current, recent = listed
        found = await asyncio.gather(
            *(self._one(client, execution, deadline, reads) for execution in current + recent)
        )
        shown = [incident for incident in found[: len(current)] if incident is not None]
        closed = [incident for incident in found[len(current) :] if incident is not None]
        shown.sort(key=lambda incident: incident.started_at, reverse=True)
        closed.sort(key=lambda incident: incident.resolved_at or incident.started_at, reverse=True)
        worst, label = overall(shown)
        return StatusSnapshot(
            title=self._policy.title,
            generated_at=now,
            current=shown,
            recent=closed,
            components=components(self._policy, shown),
            overall=worst,
            overall_label=label,
        )

    def _severities(self) -> str:
        return ", ".join(f"'{severity.value}'" for severity in self._policy.severities)

    def _current_query(self) -> str:
        return (
            f"{launch.INCIDENT_TYPES_QUERY} AND ExecutionStatus = 'Running' "
            f"AND {sa.PHASE.name} IN ({_OPEN}) AND {sa.SEVERITY.name} IN ({self._severities()})"
        )

    def _recent_query(self, now: datetime) -> str:
        since = (now - timedelta(days=self._policy.recent_days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return (
            f"{launch.INCIDENT_TYPES_QUERY} "
            f"AND ExecutionStatus IN ('Running', 'Completed') "
            f"AND {sa.PHASE.name} IN ({_CLOSED}) AND {sa.SEVERITY.name} IN ({self._severities()}) "
            f"AND {sa.RESOLVED_AT.name} >= '{since}'"
        )

    async def _list(
        self, client: Client, query: str, timeout: timedelta
    ) -> list[WorkflowExecution]:
        executions: dict[str, WorkflowExecution] = {}
        async for execution in client.list_workflows(
            query, limit=self._max_listed, page_size=self._max_listed, rpc_timeout=timeout
        ):
            executions.setdefault(execution.id, execution)
        return list(executions.values())

    async def _one(
        self,
        client: Client,
        execution: WorkflowExecution,
        deadline: float,
        reads: asyncio.Semaphore,
    ) -> PublicIncident | None:
        handle = client.get_workflow_handle(
            execution.id, run_id=execution.run_id, result_type=IncidentView
        )
        incident: IncidentSummary | IncidentView
        async with reads:
            left = deadline - time.monotonic()
            try:
                if left < 0.1:
                    raise TimeoutError("the read budget is spent")
                timeout = timedelta(seconds=left)
                if execution.status == WorkflowExecutionStatus.RUNNING:
                    read = handle.query(IncidentWorkflow.summary, rpc_timeout=timeout)
                else:
                    read = handle.result(rpc_timeout=timeout)
                incident = await self._within(read, left)
            except Exception as error:  # no worker, late, or a run gone: use visibility
                log.info(
                    "status page uses visibility only for %s: %s",
                    execution.id,
                    error or type(error).__name__,
                )
                return await self._from_visibility(execution)
        return public_incident(incident, templates=self._templates, policy=self._policy)

    async def _within(self, read: Awaitable[_T], seconds: float) -> _T:
        """``read``'s result within ``seconds``.

        The RPC is never cancelled (a cancelled SDK call leaves futures behind):
        one that is late, e.g. retried by the client after a server-side
        timeout, finishes in the background, bounded by its own ``rpc_timeout``.
        """
        task = asyncio.ensure_future(read)
        done, _ = await asyncio.wait({task}, timeout=seconds)
        if not done:
            self._late.add(task)
            task.add_done_callback(_forget(self._late))
            raise TimeoutError(f"no answer within {seconds:.1f}s")
        return task.result()

    async def _from_visibility(self, execution: WorkflowExecution) -> PublicIncident | None:
        attributes = execution.typed_search_attributes
        try:
            phase = Phase(attributes.get(sa.PHASE) or "Detect")
            memo = await execution.memo()
            facts = IncidentFacts(
                id=execution.id,
                # Only the public title: an incident that never published one (opened by an
                # alert, still starting) shows the neutral default, never its alert text.
                title="Service disruption",
                public_title=str(memo.get("public_title", "")),
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
            service_status=service_status(facts),
        )
