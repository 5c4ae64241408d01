"""The hand-off to Temporal: each alert goes to its group, then to its incident.

When the group (:class:`~workflows.alert_group.AlertGroupWorkflow`) publishes an
open incident in its memo, the alert is signalled to it directly (the common
case of an alert storm). Otherwise, or when that incident turns out completed,
the group is asked with an update (update-with-start when it does not run yet);
it names the incident, opening one if needed, and the alert is signalled to
it. An answer is only given once the signal is durable in Temporal, so a 2xx
means the alert is recorded. Any failure to reach Temporal becomes :class:`Unavailable`, answered
with 503 so the sender retries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, Literal, TypeVar

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import TemporalError
from temporalio.service import RPCError, RPCStatusCode

from domain.connection import connect
from domain.incident import IncidentView
from domain.models import AcknowledgeInput, AlertBatch, AlertEvent, cap_text
from domain.text import escape_markdown
from starters.webhooks.batching import SignalBatcher, Status
from starters.webhooks.recent_routes import RecentRoutes
from workflows.alert_group import (
    OPEN_INCIDENT_MEMO,
    AlertDelivery,
    AlertGroupWorkflow,
    DeliveryResult,
    GroupInput,
    GroupState,
    alert_group_id,
)
from workflows.incident import IncidentWorkflow

log = logging.getLogger("incidents.webhooks")
T = TypeVar("T")

STALE_RETRIES = 3
"""How often an alert is re-asked to its group after naming a completed incident."""
BATCHING_KNOWN = 10_000
"""Incidents whose workflow type this process remembers (forgotten all at once beyond)."""
INCIDENT_TYPE = "Incident"
"""Workflow type of incidents that take alerts in batches."""
PER_GROUP_IN_FLIGHT = 8
"""Concurrent updates this process sends one group (the server admits 10 by default)."""


class Unavailable(Exception):
    """Temporal did not accept the alert; the sender should retry."""


class _KeyedLimiter:
    """A semaphore per key, dropped when nobody holds or waits for it."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._slots: dict[str, tuple[asyncio.Semaphore, list[int]]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        semaphore, users = self._slots.setdefault(key, (asyncio.Semaphore(self._limit), [0]))
        users[0] += 1
        try:
            async with semaphore:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._slots[key]


class AckOutcome:
    """Result of a PagerDuty ``acknowledge``."""

    def __init__(self, incident_id: str | None, acknowledged: bool, message: str) -> None:
        self.incident_id = incident_id
        self.acknowledged = acknowledged
        self.message = message


class TemporalGateway:
    """Owns the Temporal client of the HTTP service (injected, or connected lazily).

    Without an injected client the first request connects; after a failed
    attempt the next one is made at most every ``retry_after`` seconds, so the
    service starts before Temporal does and answers 503 meanwhile.
    """

    def __init__(
        self,
        *,
        client: Client | None,
        task_queue: str,
        timeout: float = 10.0,
        connector: Callable[[], Awaitable[Client]] = connect,
        retry_after: float = 1.0,
        route_ttl: float = 2.0,
    ) -> None:
        self._client = client
        self._task_queue = task_queue
        self._timeout = timeout
        self._connector = connector
        self._retry_after = retry_after
        self._connect_lock = asyncio.Lock()
        self._failed_at: float | None = None
        self._last_error = ""
        self._limiter = _KeyedLimiter(PER_GROUP_IN_FLIGHT)
        self._rpc_timeout = timedelta(seconds=timeout)
        self._background: set[asyncio.Future[Any]] = set()
        self._batcher = SignalBatcher(self._signal_batch)
        self._batching: dict[str, bool] = {}
        self._routes = RecentRoutes(route_ttl)

    async def client(self) -> Client:
        """The connected client.

        Raises:
            Unavailable: Temporal cannot be reached now.
        """
        if self._client is not None:
            return self._client
        async with self._connect_lock:
            if self._client is not None:
                return self._client
            if (
                self._failed_at is not None
                and time.monotonic() - self._failed_at < self._retry_after
            ):
                raise Unavailable(self._last_error)
            try:
                self._client = await self._bounded(self._connector(), "the connection")
            except Unavailable as error:
                self._failed_at = time.monotonic()
                self._last_error = str(error)
                raise
            self._failed_at = None
            return self._client

    async def reachable(self) -> tuple[bool, str]:
        """Whether Temporal answers a health check now, with a reason when not."""
        try:
            client = await self.client()
            healthy = await self._bounded(
                client.service_client.check_health(timeout=timedelta(seconds=2)), "health check"
            )
        except Unavailable as error:
            return False, str(error)
        return (True, "ok") if healthy else (False, "health check failed")

    async def _bounded(self, work: Awaitable[T], what: str, *, deadline: float | None = None) -> T:
        """``work``'s result within the timeout; every way Temporal fails is :class:`Unavailable`.

        ``deadline`` (event-loop time) cuts the timeout short for a request that
        must be answered by then.

        The SDK call itself is never cancelled (a cancelled RPC leaves futures behind):
        after a timeout it ends in the background, bounded by its own ``rpc_timeout``.
        """
        timeout = self._timeout
        if deadline is not None:
            timeout = max(0.0, min(timeout, deadline - asyncio.get_running_loop().time()))
        task = asyncio.ensure_future(work)
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            log.warning("Temporal did not accept %s within %gs", what, timeout)
            raise Unavailable(f"Temporal did not accept {what} within {timeout:.3g}s") from None
        except (TemporalError, RuntimeError, OSError) as error:
            log.warning("Temporal did not accept %s: %s", what, error)
            raise Unavailable(f"Temporal did not accept {what}: {_reason(error)}") from None
        finally:
            if not task.done():
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    async def deliver(
        self,
        delivery: AlertDelivery,
        *,
        dedup_key: str,
        repeat_window: timedelta,
        deadline: float | None = None,
    ) -> DeliveryResult:
        """Hand one alert to its group, then signal it to the group's incident.

        Returns only once both are durable in Temporal. Resolved alerts never
        start a group.

        Raises:
            Unavailable: Temporal did not (provably) accept it, within the
                timeout or by ``deadline`` (event-loop time).
        """
        group = GroupInput(
            source=delivery.alert.source,
            key=cap_text(dedup_key, 300),
            repeat_window=repeat_window,
        )
        group_id = alert_group_id(group.source, dedup_key)
        delivery.alert.group = group_id
        client = await self.client()
        return await self._bounded(
            self._deliver(client, group_id, group, delivery, repeat_window),
            f"alert {delivery.alert.key[:80]!r}",
            deadline=deadline,
        )

    async def _deliver(
        self,
        client: Client,
        group_id: str,
        group: GroupInput,
        delivery: AlertDelivery,
        repeat_window: timedelta,
    ) -> DeliveryResult:
        current = self._routes.get(group_id, max_age=repeat_window.total_seconds())
        running = current is not None
        if current is None:
            running, current = await self._published(client, group_id)
        if current is not None:
            action: Literal["joined", "recovered"] = (
                "joined" if delivery.status == "firing" else "recovered"
            )
            if await self._signal(client, current, delivery):
                self._routes.remember(group_id, current)
                return DeliveryResult(incident_id=current, action=action)
            self._routes.forget(group_id)
            delivery = delivery.model_copy(update={"stale_incident": current})
        for _ in range(STALE_RETRIES):
            async with self._limiter.hold(group_id):
                result = await self._ask_group(client, group_id, group, delivery, running=running)
            running = True
            if result.action == "ignored" or result.incident_id is None:
                return result
            if result.alert_included:
                self._learn_batching(result.incident_id, True)  # only ``Incident`` takes it
            if result.alert_included or await self._signal(client, result.incident_id, delivery):
                if delivery.status == "firing":
                    self._routes.remember(group_id, result.incident_id)
                return result
            if delivery.status == "resolved":
                return DeliveryResult(incident_id=result.incident_id, action="ignored")
            delivery = delivery.model_copy(update={"stale_incident": result.incident_id})
        raise RuntimeError(f"alert group {group_id} kept naming completed incidents")

    async def _published(self, client: Client, group_id: str) -> tuple[bool, str | None]:
        """Whether the group runs, and the open incident it publishes in its memo."""
        try:
            description = await client.get_workflow_handle(group_id).describe(
                rpc_timeout=self._rpc_timeout
            )
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
            return False, None
        if description.status is not WorkflowExecutionStatus.RUNNING:
            return False, None
        incident: str | None = await description.memo_value(OPEN_INCIDENT_MEMO, None, type_hint=str)
        return True, incident

    async def _signal(self, client: Client, incident_id: str, delivery: AlertDelivery) -> bool:
        """Signal the alert to its incident; False when that incident has completed.

        Incidents of today's type take alerts in batches (see :mod:`.batching`);
        first-release incidents only know one alert per signal.
        """
        if await self._takes_batches(client, incident_id):
            return await self._batcher.signal(incident_id, delivery.status, delivery.alert)
        incident: WorkflowHandle[IncidentWorkflow, IncidentView] = client.get_workflow_handle_for(
            IncidentWorkflow.run, incident_id
        )
        signal = (
            IncidentWorkflow.alert_fired
            if delivery.status == "firing"
            else IncidentWorkflow.alert_resolved
        )
        try:
            await incident.signal(signal, delivery.alert, rpc_timeout=self._rpc_timeout)
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
            return False
        return True

    async def _takes_batches(self, client: Client, incident_id: str) -> bool:
        """Whether the incident's workflow type has ``alert_batch`` (asked once per incident)."""
        known = self._batching.get(incident_id)
        if known is not None:
            return known
        try:
            description = await client.get_workflow_handle(incident_id).describe(
                rpc_timeout=self._rpc_timeout
            )
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
            return False  # the single signal reports it gone
        known = description.workflow_type == INCIDENT_TYPE
        self._learn_batching(incident_id, known)
        return known

    def _learn_batching(self, incident_id: str, batches: bool) -> None:
        if len(self._batching) >= BATCHING_KNOWN:
            self._batching.clear()
        self._batching[incident_id] = batches

    async def _signal_batch(self, incident_id: str, items: list[tuple[Status, AlertEvent]]) -> bool:
        client = await self.client()
        incident: WorkflowHandle[IncidentWorkflow, IncidentView] = client.get_workflow_handle_for(
            IncidentWorkflow.run, incident_id
        )
        batch = AlertBatch(
            fired=[status == "firing" for status, _ in items], alerts=[a for _, a in items]
        )
        try:
            await incident.signal(
                IncidentWorkflow.alert_batch, batch, rpc_timeout=self._rpc_timeout
            )
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
            return False
        return True

    async def _ask_group(
        self,
        client: Client,
        group_id: str,
        group: GroupInput,
        delivery: AlertDelivery,
        *,
        running: bool,
    ) -> DeliveryResult:
        """A plain update on the running group; update-with-start when there is none."""
        if running:
            handle: WorkflowHandle[AlertGroupWorkflow, GroupState] = client.get_workflow_handle_for(
                AlertGroupWorkflow.run, group_id
            )
            try:
                return await handle.execute_update(
                    AlertGroupWorkflow.deliver, delivery, rpc_timeout=self._rpc_timeout
                )
            except RPCError as error:
                if error.status is not RPCStatusCode.NOT_FOUND:
                    raise
        if delivery.status == "resolved":
            return DeliveryResult(incident_id=None, action="ignored")
        start = WithStartWorkflowOperation(
            AlertGroupWorkflow.run,
            group,
            id=group_id,
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=cap_text(
                f"alert group · {group.source} · {escape_markdown(delivery.alert.summary)}", 200
            ),
            memo={"source": group.source, "key": group.key},
        )
        return await client.execute_update_with_start_workflow(
            AlertGroupWorkflow.deliver,
            delivery,
            start_workflow_operation=start,
            rpc_timeout=self._rpc_timeout,
        )

    async def acknowledge(
        self, *, source: str, dedup_key: str, responder: str, deadline: float | None = None
    ) -> AckOutcome:
        """Acknowledge the open incident of a key; a closed or acknowledged one is no error.

        Raises:
            Unavailable: Temporal could not be asked (by ``deadline``, event-loop time).
        """
        group_id = alert_group_id(source, dedup_key)
        client = await self.client()
        return await self._bounded(
            self._acknowledge(client, group_id, responder), "the acknowledgement", deadline=deadline
        )

    async def _acknowledge(self, client: Client, group_id: str, responder: str) -> AckOutcome:
        group: WorkflowHandle[AlertGroupWorkflow, GroupState] = client.get_workflow_handle_for(
            AlertGroupWorkflow.run, group_id
        )
        try:
            view = await group.query(AlertGroupWorkflow.view, rpc_timeout=self._rpc_timeout)
        except RPCError as error:
            if error.status is not RPCStatusCode.NOT_FOUND:
                raise
            return AckOutcome(None, False, "no incident for this dedup_key")
        if view.open_incident is None:
            return AckOutcome(view.last_incident, False, "the incident is already closed")
        incident: WorkflowHandle[IncidentWorkflow, IncidentView] = client.get_workflow_handle_for(
            IncidentWorkflow.run, view.open_incident
        )
        try:
            result = await incident.execute_update(
                IncidentWorkflow.acknowledge,
                AcknowledgeInput(responder=responder),
                rpc_timeout=self._rpc_timeout,
            )
        except WorkflowUpdateFailedError as error:
            return AckOutcome(view.open_incident, False, _reason(error))
        return AckOutcome(result.incident_id, True, result.message)


def _reason(error: BaseException) -> str:
    causes: Iterator[BaseException] = _chain(error)
    messages = [str(cause) for cause in causes if str(cause)]
    return messages[-1] if messages else type(error).__name__


def _chain(error: BaseException) -> Iterator[BaseException]:
    current: BaseException | None = error
    while current is not None:
        yield current
        current = current.__cause__
