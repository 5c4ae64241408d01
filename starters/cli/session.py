"""Talking to Temporal for the CLI, with every failure turned into a clear :class:`CliError`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import FailureError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from domain.connection import TemporalUnavailable, connect
from domain.incident import IncidentView
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

    async def has_worker(self, task_queue: str) -> bool:
        """Whether a worker polled ``task_queue`` recently (a hint, not a guarantee)."""
        request = DescribeTaskQueueRequest(
            namespace=self._client.namespace,
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
        try:
            response = await self._bounded(
                self._client.workflow_service.describe_task_queue(request)
            )
        except (RPCError, CliError):
            return True  # cannot tell: do not warn
        return bool(response.pollers)

    async def view(self, incident_id: str) -> IncidentView:
        """The incident's state and timeline (closed incidents too, while a worker runs)."""
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
        if description.workflow_type != IncidentWorkflow.__name__:
            return CliError(
                f"{incident_id} is not an incident (workflow type {description.workflow_type})"
            )
        status = description.status.name.lower() if description.status else "closed"
        return CliError(
            f"incident {incident_id} is closed ({status}); see `incident show {incident_id}`"
        )

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


def _namespace_missing(error: RPCError) -> bool:
    """NOT_FOUND about the namespace is a settings problem, not a missing incident."""
    return error.status is RPCStatusCode.NOT_FOUND and "namespace" in error.message.lower()
