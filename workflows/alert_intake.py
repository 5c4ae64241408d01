"""The alert intake: one workflow per alert source that caps how fast incidents open.

An alert storm of distinct keys (a network partition, a bad deploy fleet-wide)
would otherwise open one incident, one Slack channel and one page per key. Each
alert group asks its source's intake before it opens an incident; the intake
admits at most ``max_new_incidents_per_minute`` in any minute, and beyond that
opens one "alert storm" incident that every further new alert joins until it is
closed. The storm incident lists the alerts (capped, counted beyond) and
``incident dismiss --all-from-storm`` closes the noise in one step.

The conversation is signal for signal (workflows cannot send updates): a group
signals :meth:`AlertIntakeWorkflow.request_opening` and waits for
:data:`OPENING_DECISION_SIGNAL`; a group that hears nothing in time opens its
incident anyway, since a missed incident is worse than a noisy one.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from pydantic import Field
from temporalio import workflow
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from activities.policy import PolicyActivities
    from domain.models import (
        INCIDENT_CLOSED_SIGNAL,
        Declaration,
        IncidentClosed,
        Severity,
        _Model,
        cap_text,
    )
    from workflows import children
    from workflows.history import history_full

OPENING_DECISION_SIGNAL = "opening_decision"
"""Signal from the intake back to the asking alert group."""
ADMITTED_KEPT = 200
"""Groups admitted that the intake remembers (for ``--all-from-storm``), newest kept."""


def alert_intake_id(source: str, task_queue: str) -> str:
    """Workflow ID of ``source``'s intake for the worker fleet on ``task_queue``."""
    return f"alertintake-{source}-{task_queue}"


class OpeningRequest(_Model):
    """A group asks whether it may open an incident."""

    group_id: str
    """The asking alert group (answered by signal)."""
    request_id: int
    """Sequence number of the request inside that group."""
    declaration: Declaration
    """What the group would open."""


class OpeningDecision(_Model):
    """The intake's answer."""

    request_id: int
    """The request answered."""
    storm_incident: str | None = None
    """None: open your incident. Otherwise: join this alert-storm incident instead."""


class IntakeInput(_Model):
    """Input of :class:`AlertIntakeWorkflow`."""

    source: str
    """The alert source this intake serves."""
    max_history_events: int = 10_000
    """Continue-as-new at this history length even if the server has not suggested it."""
    carried: IntakeState | None = None
    """State of the previous run, when continuing as new."""


class IntakeState(_Model):
    """What the intake remembers across continue-as-new (bounded)."""

    cap: int | None = None
    """Incidents admitted in any minute (``alerts.max_new_incidents_per_minute``), read from
    the worker's policy when the intake starts."""
    storm_severity: Severity = Severity.P1
    """Severity of storm incidents (``alerts.storm_severity``)."""
    admitted_at: list[datetime] = Field(default_factory=list)
    """Admissions within the last minute (at most the cap)."""
    admitted_groups: list[str] = Field(default_factory=list)
    """Groups admitted most recently (at most :data:`ADMITTED_KEPT`)."""
    storm_incident: str | None = None
    """The open alert-storm incident, if any."""
    storm_groups: list[str] = Field(default_factory=list)
    """Groups admitted in the minute before the storm began (the noise it closes)."""
    requests: int = 0
    """Requests decided."""
    storms_opened: int = 0
    """Alert-storm incidents opened."""
    joined_storm: int = 0
    """Requests sent to a storm incident instead of opening their own."""


class IntakeView(IntakeState):
    """Query result: the intake's state and its source."""

    source: str
    """The alert source."""


IntakeInput.model_rebuild()


@workflow.defn
class AlertIntakeWorkflow:
    """Admits new incidents of one source at a bounded rate; opens a storm incident beyond."""

    @workflow.init
    def __init__(self, input: IntakeInput) -> None:
        self._input = input
        self._s = input.carried or IntakeState()
        self._lock = asyncio.Lock()

    @workflow.run
    async def run(self, input: IntakeInput) -> None:
        """Decide requests as they come; continue as new when history grows."""
        if self._s.cap is None:
            # A regular activity, not a local one: the intake's first task races the
            # first group's signal, and a local activity there stalls a worker that
            # caches no workflows.
            setup = await workflow.execute_activity_method(
                PolicyActivities.worker_setup,
                start_to_close_timeout=timedelta(seconds=10),
                summary="Load response policy",
            )
            self._s.storm_severity = setup.policy.alerts.storm_severity
            self._s.cap = setup.policy.alerts.max_new_incidents_per_minute
        await workflow.wait_condition(self._history_full)
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(input.model_copy(update={"carried": self._s}))

    def _history_full(self) -> bool:
        return history_full(max_events=self._input.max_history_events)

    @workflow.signal
    async def request_opening(self, request: OpeningRequest) -> None:
        """Admit the opening, or name the storm incident to join instead."""
        await workflow.wait_condition(lambda: self._s.cap is not None)
        async with self._lock:  # one decision at a time: a storm opens once
            storm = await self._decide(request)
        decision = OpeningDecision(request_id=request.request_id, storm_incident=storm)
        try:
            await workflow.get_external_workflow_handle(request.group_id).signal(
                OPENING_DECISION_SIGNAL, decision
            )
        except FailureError:
            workflow.logger.info("alert group %s gone before its answer", request.group_id)

    @workflow.signal(name=INCIDENT_CLOSED_SIGNAL)
    def incident_closed(self, closed: IncidentClosed) -> None:
        """The storm incident was resolved or dismissed: the next excess opens a new one."""
        if closed.incident_id == self._s.storm_incident:
            self._s.storm_incident = None
            self._s.storm_groups = []

    @workflow.query
    def view(self) -> IntakeView:
        """The intake's state."""
        return IntakeView(source=self._input.source, **self._s.model_dump())

    async def _decide(self, request: OpeningRequest) -> str | None:
        assert self._s.cap is not None
        self._s.requests += 1
        now = workflow.now()
        window = now - timedelta(minutes=1)
        self._s.admitted_at = [at for at in self._s.admitted_at if at > window]
        storm = self._s.storm_incident
        if storm is None and len(self._s.admitted_at) < self._s.cap:
            self._s.admitted_at.append(now)
            self._s.admitted_groups = [*self._s.admitted_groups, request.group_id][-ADMITTED_KEPT:]
            return None
        if storm is None:
            storm = await self._open_storm(request.declaration)
        if storm is not None:
            self._s.joined_storm += 1
        return storm

    async def _open_storm(self, trigger: Declaration) -> str | None:
        assert self._s.cap is not None
        cap = self._s.cap
        source = self._input.source
        declaration = Declaration(
            title=f"Alert storm: more than {cap} new {source} alerts in a minute",
            severity=self._s.storm_severity,
            service=trigger.service,
            declared_by=source,
            source=source,
            description=cap_text(
                f"New {source} alerts beyond {cap} a minute join this incident instead of "
                f"opening their own; it lists them. The first one: {trigger.title}"
            ),
            targets=trigger.targets,
            alert_group=workflow.info().workflow_id,
        )
        incident_id = await children.start_incident(declaration)
        if incident_id is not None:
            self._s.storm_incident = incident_id
            self._s.storm_groups = self._s.admitted_groups[-cap:]
            self._s.storms_opened += 1
            return incident_id
        workflow.logger.error("no free incident ID for a storm incident: alerts open their own")
        return None
