"""Talking to Temporal for the CLI, with every failure turned into a clear :class:`CliError`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC
from typing import TypeVar

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeTaskQueueRequest,
    GetWorkflowExecutionHistoryReverseRequest,
)
from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import FailureError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from domain import search_attributes as sa
from domain.connection import TemporalUnavailable, connect
from domain.incident import IncidentView
from domain.launch import INCIDENT_WORKFLOW_TYPES
from domain.models import CommandResult, Declaration, Phase, ResponderCommand, Severity
from starters.cli.listing import IncidentSummary, list_incidents
from starters.incidents import start_incident
from workflows.incident import IncidentWorkflow

CONNECT_TIMEOUT = 5.0
"""Seconds to wait for the server before calling it unreachable (the SDK itself waits 30 s)."""

EXIT_REJECTED = 1
"""The incident said no (rejected command, unknown or closed incident, bad input)."""
EXIT_UNAVAILABLE = 2
"""Temporal or the incident worker could not be reached."""

WORKER_GRACE = 2.0
"""Seconds ``declare`` waits for a worker to show up before warning that none polls."""

ENDED_ABNORMALLY = {
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.TIMED_OUT: "timed out",
    WorkflowExecutionStatus.CANCELED: "cancelled",
}
"""How an incident workflow can end without closing: its clocks and escalations stopped."""

_T = TypeVar("_T")
CommandT = TypeVar("CommandT", bound=ResponderCommand)
Update = UpdateMethodMultiParam[[IncidentWorkflow, CommandT], CommandResult]
"""A typed reference to one of the incident workflow's update handlers."""


class CliError(Exception):
    """A failure to report in one line, with the process exit code."""

    def __init__(self, message: str, *, exit_code: int = EXIT_REJECTED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


async def open_client() -> Client:
    """Connect using Temporal's environment conventions, failing within seconds.

    Raises:
        CliError: naming the address when the server is unreachable or the
            connection settings (profile, TLS files) are unusable.
    """
    try:
        return await connect(timeout=CONNECT_TIMEOUT)
    except TemporalUnavailable as error:
        raise CliError(str(error), exit_code=EXIT_UNAVAILABLE) from None


def rejection_reason(error: BaseException) -> str:
    """The workflow's own message, found at the bottom of a failure's cause chain."""
    reason = str(error)
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, FailureError) and current.message:
            reason = current.message
        current = current.__cause__ or getattr(current, "cause", None)
    return reason


class Incidents:
    """The incident operations the CLI needs, on one client.

    Every method raises :class:`CliError` with a message meant for a person.
    """

    def __init__(self, client: Client, *, timeout: float) -> None:
        self._client = client
        self._timeout = timeout

    @property
    def client(self) -> Client:
        """The connected client (for reads the CLI composes itself)."""
        return self._client

    @property
    def target(self) -> str:
        """The server and namespace, for messages."""
        return (
            f"{self._client.service_client.config.target_host} (namespace {self._client.namespace})"
        )

    def _handle(self, incident_id: str) -> WorkflowHandle[IncidentWorkflow, IncidentView]:
        return self._client.get_workflow_handle_for(IncidentWorkflow.run, incident_id)

    async def declare(self, declaration: Declaration, *, task_queue: str) -> str:
        """Start a new incident and return its ID."""
        for _ in range(3):
            try:
                handle = await self._bounded(
                    start_incident(self._client, declaration, task_queue=task_queue)
                )
            except WorkflowAlreadyStartedError:
                continue  # a random ID taken the same day: draw another
            except RPCError as error:
                raise self._rpc_error(error) from None
            return handle.id
        raise CliError("could not find a free incident ID; try again")

    async def has_worker(self, task_queue: str, incident_id: str) -> bool:
        """Whether a worker serves ``task_queue`` (a hint, not a guarantee).

        A worker that has just started may not have polled yet, so for up to
        :data:`WORKER_GRACE` seconds this waits for a poller to show up or for
        the new incident's first workflow task to be picked up.
        """
        request = DescribeTaskQueueRequest(
            namespace=self._client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
        handle = self._handle(incident_id)
        deadline = asyncio.get_running_loop().time() + WORKER_GRACE
        try:
            while True:
                response = await self._bounded(
                    self._client.workflow_service.describe_task_queue(request)
                )
                if response.pollers:
                    return True
                # Started, scheduled, started: a worker took the first task.
                if (await self._bounded(handle.describe())).history_length > 2:
                    return True
                if asyncio.get_running_loop().time() > deadline:
                    return False
                await asyncio.sleep(0.1)
        except (RPCError, CliError):
            return True  # cannot tell: do not warn

    async def describe(self, incident_id: str) -> WorkflowExecutionDescription:
        """The incident's workflow, checked to be an incident.

        Raises:
            CliError: not found, or the ID belongs to another kind of workflow.
        """
        try:
            description = await self._bounded(self._handle(incident_id).describe())
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND and not _namespace_missing(error):
                raise CliError(f"incident {incident_id} not found on {self.target}") from None
            raise self._rpc_error(error) from None
        if description.workflow_type not in INCIDENT_WORKFLOW_TYPES:
            raise CliError(not_an_incident(incident_id, description.workflow_type))
        return description

    async def view(self, incident_id: str) -> IncidentView:
        """The incident's state and timeline (closed incidents too, while a worker runs).

        Raises:
            CliError: also when the incident's workflow ended without closing
                (terminated, failed, timed out): what it last showed is stale.
        """
        description = await self.describe(incident_id)
        if description.status in ENDED_ABNORMALLY:
            raise CliError(await self._ended_abnormally(incident_id, description))
        try:
            return await self._bounded(self._handle(incident_id).query(IncidentWorkflow.view))
        except WorkflowQueryFailedError as error:
            raise CliError(f"cannot read {incident_id}: {rejection_reason(error)}") from None
        except RPCError as error:
            raise await self._incident_error(incident_id, error) from None

    async def command(
        self, incident_id: str, update: Update[CommandT], command: CommandT
    ) -> CommandResult:
        """Send a responder command; the workflow validates it and says why when it refuses."""
        if not incident_id.startswith("INC-"):
            await self.describe(incident_id)  # an alert group's ID, say: not an incident
        try:
            return await self._bounded(self._handle(incident_id).execute_update(update, command))
        except WorkflowUpdateFailedError as error:
            raise CliError(rejection_reason(error)) from None
        except RPCError as error:
            raise await self._incident_error(incident_id, error) from None

    async def list(
        self,
        *,
        include_closed: bool,
        phase: Phase | None,
        severity: Severity | None,
        limit: int,
    ) -> list[IncidentSummary]:
        """Incidents matching the filters, most recently detected first."""
        try:
            return await self._bounded(
                list_incidents(
                    self._client,
                    include_closed=include_closed,
                    phase=phase,
                    severity=severity,
                    limit=limit,
                )
            )
        except RPCError as error:
            raise self._rpc_error(error) from None

    async def _bounded(self, call: Awaitable[_T]) -> _T:
        try:
            return await asyncio.wait_for(call, self._timeout)
        except (TimeoutError, RPCTimeoutOrCancelledError):
            raise CliError(
                f"no answer within {self._timeout:g}s from Temporal at {self.target}. "
                "Is the incident worker running (make run / incident-worker)? "
                "A command may still be applied once it is; check with `incident show`.",
                exit_code=EXIT_UNAVAILABLE,
            ) from None

    async def _incident_error(self, incident_id: str, error: RPCError) -> CliError:
        if error.status is not RPCStatusCode.NOT_FOUND or _namespace_missing(error):
            return self._rpc_error(error)
        # Updates on a finished workflow also answer NOT_FOUND; tell the two apart.
        try:
            description = await self._bounded(self._handle(incident_id).describe())
        except RPCError as missing:
            if _namespace_missing(missing):
                return self._rpc_error(missing)
            return CliError(f"incident {incident_id} not found on {self.target}")
        if description.workflow_type not in INCIDENT_WORKFLOW_TYPES:
            return CliError(not_an_incident(incident_id, description.workflow_type))
        if description.status in ENDED_ABNORMALLY:
            return CliError(await self._ended_abnormally(incident_id, description))
        status = description.status.name.lower() if description.status else "closed"
        return CliError(
            f"incident {incident_id} is closed ({status}); see `incident show {incident_id}`"
        )

    async def _ended_abnormally(
        self, incident_id: str, description: WorkflowExecutionDescription
    ) -> str:
        """Say plainly that the incident's workflow ended without closing, when and why."""
        assert description.status is not None
        how = ENDED_ABNORMALLY[description.status]
        when = (
            f" at {description.close_time.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
            if description.close_time
            else ""
        )
        reason = await self._end_reason(incident_id, description.run_id)
        attributes = description.typed_search_attributes
        phase = attributes.get(sa.PHASE) or "unknown"
        severity = attributes.get(sa.SEVERITY) or "?"
        return (
            f"incident {incident_id} was {how}{when}{f' ({reason})' if reason else ''}: "
            f"it no longer escalates, pages or sends updates (last phase {phase}, "
            f"severity {severity}). Declare a new incident if the problem persists."
        )

    async def _end_reason(self, incident_id: str, run_id: str) -> str:
        """The termination reason or failure message from the run's last event, if any."""
        request = GetWorkflowExecutionHistoryReverseRequest(
            namespace=self._client.namespace,
            execution=WorkflowExecution(workflow_id=incident_id, run_id=run_id),
            maximum_page_size=1,
        )
        try:
            response = await self._bounded(
                self._client.workflow_service.get_workflow_execution_history_reverse(request)
            )
        except (RPCError, CliError):
            return ""
        for event in response.history.events:
            if event.HasField("workflow_execution_terminated_event_attributes"):
                return event.workflow_execution_terminated_event_attributes.reason
            if event.HasField("workflow_execution_failed_event_attributes"):
                return event.workflow_execution_failed_event_attributes.failure.message
        return ""

    def _rpc_error(self, error: RPCError) -> CliError:
        code = EXIT_REJECTED
        if error.status in (
            RPCStatusCode.UNAVAILABLE,
            RPCStatusCode.DEADLINE_EXCEEDED,
            RPCStatusCode.UNAUTHENTICATED,
            RPCStatusCode.PERMISSION_DENIED,
        ) or _namespace_missing(error):
            code = EXIT_UNAVAILABLE
        return CliError(f"Temporal at {self.target}: {error.message}", exit_code=code)


def not_an_incident(workflow_id: str, workflow_type: str) -> str:
    """What to say when an ID names another kind of workflow."""
    kind = "an alert group" if workflow_type.startswith("AlertGroup") else "a workflow"
    return f"{workflow_id} is not an incident: it is {kind} ({workflow_type})"


def _namespace_missing(error: RPCError) -> bool:
    """NOT_FOUND about the namespace is a settings problem, not a missing incident."""
    return error.status is RPCStatusCode.NOT_FOUND and "namespace" in error.message.lower()
