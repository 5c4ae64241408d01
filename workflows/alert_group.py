"""The alert group: one small entity workflow per deduplication key.

Incident workflow IDs are human-friendly incident IDs, so an alert cannot name
its incident directly. Instead every alert is first sent (update, or
update-with-start with ID conflict policy USE_EXISTING when the group does not
run yet) to the group of its key, whose workflow ID is derived from the source
and the key. Temporal runs one group per ID and the group decides under a lock,
so concurrent and duplicate deliveries can never open a second incident while
one is open. The group answers with the incident; the sender then signals the
alert to that incident and only then reports success.

The group also publishes its open incident in its memo (``open_incident``), which
Temporal keeps in the workflow's mutable state: a sender that finds an incident
there signals it directly, without a workflow task of the group. Only the group
ever opens an incident, so this fast path cannot create duplicates; a sender
that finds no incident there, or finds it completed, asks the group.

New groups run the workflow type ``AlertGroup``, which always publishes, asks the
intake and opens bounded incidents. Groups started earlier, under the type
``AlertGroupWorkflow``, run on :mod:`workflows.legacy.alert_group_v1`, which
still decides those behaviours by patch; a sender's update-with-start reaches a
running group of either type.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ApplicationError, FailureError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from pydantic import Field

    from domain import launch
    from domain.models import (
        INCIDENT_CLOSED_SIGNAL,
        AlertEvent,
        Declaration,
        IncidentClosed,
        _Model,
    )
    from workflows import children
    from workflows.alert_intake import (
        OPENING_DECISION_SIGNAL,
        AlertIntakeWorkflow,
        IntakeInput,
        OpeningDecision,
        OpeningRequest,
        alert_intake_id,
    )
    from workflows.history import history_full
    from workflows.incident import (
        CLOSED_TRIGGER_SIGNAL,
        ClosedTrigger,
        IncidentWorkflow,
    )

OPEN_INCIDENT_MEMO = "open_incident"
"""Memo key holding the group's open incident ID (absent when none is open)."""
ADMISSION_TIMEOUT = timedelta(seconds=30)
"""How long a group waits for its intake's answer before opening its incident anyway."""


def alert_group_id(source: str, key: str) -> str:
    """Workflow ID of the group deduplicating ``key`` from ``source``."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{launch.ALERT_GROUP_PREFIX}{source}-{digest}"


class GroupState(_Model):
    """What a group remembers, carried across continue-as-new."""

    open_incident: str | None = None
    """The incident alerts of this key currently join."""
    last_incident: str | None = None
    """The most recent incident of this key that was resolved or dismissed."""
    last_closed_at: datetime | None = None
    """When ``last_incident`` closed."""
    last_activity_at: datetime | None = None
    """Latest delivery or closing; the group is forgotten ``repeat_window`` after it."""
    incidents_opened: int = 0
    """How many incidents this group opened."""
    declaration: Declaration | None = None
    """How the latest incident of this key was (to be) declared; a trigger a closed alert-
    storm incident hands back opens the next one with it."""
    alerts_received: int = 0
    """How many deliveries the group itself decided on."""


class GroupInput(_Model):
    """Input of :class:`AlertGroupWorkflow`."""

    source: str
    """Where the alerts come from (alertmanager, grafana, pagerduty, generic)."""
    key: str
    """The deduplication key (for display; the workflow ID holds its digest)."""
    repeat_window: timedelta = timedelta(days=7)
    """How long after the last activity, with no open incident, the group is kept."""
    max_history_events: int = 10_000
    """Continue-as-new at this history length even if the server has not suggested it."""
    carried: GroupState | None = None
    """State of the previous run, when continuing as new."""


class AlertDelivery(_Model):
    """Input of :meth:`AlertGroupWorkflow.deliver`: one alert notification."""

    status: Literal["firing", "resolved"]
    """Whether the alert fires (opens or joins) or recovered."""
    alert: AlertEvent
    """The alert as signalled to the incident."""
    declaration: Declaration
    """The routed declaration, used when this alert opens an incident."""
    stale_incident: str | None = None
    """An incident the sender found already completed when signalling it; the group
    forgets it before deciding, so the alert opens the next incident."""


class DeliveryResult(_Model):
    """What happened to a delivered alert."""

    incident_id: str | None
    """The incident the alert opened or joined (None when it was ignored)."""
    new: bool = False
    """True when this alert opened the incident."""
    action: Literal["opened", "joined", "recovered", "ignored"]
    """opened/joined for firing alerts, recovered/ignored for resolved ones."""
    related_incident: str | None = None
    """For an opened repeat incident: the earlier incident it repeats."""
    alert_included: bool = False
    """The incident was started with this alert (its ``first_alert``): the sender must not
    signal it again. False from groups of code before it, and for incidents of the
    first release."""


class GroupView(_Model):
    """Query result: the group's incidents."""

    source: str
    """Where the group's alerts come from."""
    key: str
    """The deduplication key (capped for display)."""
    open_incident: str | None = None
    """The incident alerts of this key currently join."""
    last_incident: str | None = None
    """The latest incident of this key that closed."""
    incidents_opened: int = 0
    """Incidents this group opened (across continue-as-new)."""
    alerts_received: int = 0
    """Alerts the group itself decided on (alerts joining through the memo fast
    path go straight to the incident, which counts every alert)."""
    incidents: list[str] = Field(default_factory=list)
    """Incidents opened by this run of the group."""


@workflow.defn(name="AlertGroup")
class AlertGroupWorkflow:
    """Maps one alert deduplication key to its open incident, opening one when needed.

    A firing alert joins the open incident, or opens a new child
    :class:`~workflows.incident.IncidentWorkflow` (abandoned on close, so it
    outlives the group). The incident signals back when it is resolved or
    dismissed; the next firing alert then opens a repeat incident linked to it.
    """

    _first_alert_in_input = True
    """A new incident gets the alert that opened it in its input, and the sender is told
    (``DeliveryResult.alert_included``) not to signal it."""

    @workflow.init
    def __init__(self, input: GroupInput) -> None:
        self._input = input
        self._s = input.carried or GroupState()
        if self._s.last_activity_at is None:
            self._s.last_activity_at = workflow.now()
        self._lock = asyncio.Lock()
        self._touched = False
        self._opened_here: list[str] = []
        # What the legacy type decides by patch (workflows.legacy.alert_group_v1).
        self._publishes = self._bounded = self._capped = True
        self._requests = 0
        self._decisions: dict[int, OpeningDecision] = {}
        """The intake's answer to the pending request (at most one entry)."""

    @workflow.run
    async def run(self, input: GroupInput) -> GroupState:
        """Wait for alerts; forget the key after a quiet ``repeat_window``."""
        if self._s.open_incident is not None:
            self._publish_open_incident()
        while True:
            self._touched = False
            timeout = None
            if self._s.open_incident is None:
                timeout = max(self._forget_at() - workflow.now(), timedelta(seconds=1))
            try:
                await workflow.wait_condition(
                    lambda: self._touched or self._should_continue_as_new(),
                    timeout=timeout,
                    timeout_summary="forget this alert group",
                )
            except TimeoutError:
                pass
            if self._should_continue_as_new():
                await workflow.wait_condition(self._settled)
                workflow.continue_as_new(input.model_copy(update={"carried": self._s}))
            if self._expired():
                await workflow.wait_condition(self._settled)
                if self._expired():
                    return self._s

    def _forget_at(self) -> datetime:
        assert self._s.last_activity_at is not None
        return self._s.last_activity_at + self._input.repeat_window

    def _settled(self) -> bool:
        return not self._lock.locked() and workflow.all_handlers_finished()

    def _expired(self) -> bool:
        return self._s.open_incident is None and workflow.now() >= self._forget_at()

    def _should_continue_as_new(self) -> bool:
        return history_full(max_events=self._input.max_history_events)

    def _touch(self) -> None:
        self._s.last_activity_at = workflow.now()
        self._touched = True

    # ------------------------------------------------------------ handlers

    @workflow.update
    async def deliver(self, delivery: AlertDelivery) -> DeliveryResult:
        """Decide which incident an alert belongs to, opening one if needed.

        The caller signals the alert to the returned incident afterwards.
        """
        self._s.alerts_received += 1
        self._touch()
        if delivery.stale_incident and delivery.stale_incident == self._s.open_incident:
            self._mark_closed(delivery.stale_incident)
        if delivery.status == "resolved":
            incident = self._s.open_incident
            if incident is None:
                return DeliveryResult(incident_id=self._s.last_incident, action="ignored")
            return DeliveryResult(incident_id=incident, action="recovered")
        incident, new = await self._open_or_join(delivery)
        return DeliveryResult(
            incident_id=incident,
            new=new,
            action="opened" if new else "joined",
            related_incident=self._repeated_incident() if new else None,
            alert_included=new and self._first_alert_in_input,
        )

    @workflow.signal(name=INCIDENT_CLOSED_SIGNAL)
    def incident_closed(self, closed: IncidentClosed) -> None:
        """The open incident was resolved or dismissed: the next trigger opens a new one."""
        if closed.incident_id != self._s.open_incident:
            return
        self._mark_closed(closed.incident_id)

    @workflow.signal(name=CLOSED_TRIGGER_SIGNAL)
    async def trigger_after_close(self, trigger: ClosedTrigger) -> None:
        """An alert fired at an incident that had closed: it opens (or joins) the next one.

        The closed incident hands the trigger back instead of absorbing it, so however
        late this group learns that its incident closed, no trigger is ever swallowed.
        """
        self._s.alerts_received += 1
        self._touch()
        if trigger.closed_incident == self._s.open_incident:
            self._mark_closed(trigger.closed_incident)
        own = self._s.declaration if self._capped else None
        declaration = (own or trigger.declaration).model_copy(
            update={"detected_at": trigger.alert.started_at}
        )
        delivery = AlertDelivery(status="firing", alert=trigger.alert, declaration=declaration)
        incident, new = await self._open_or_join(delivery)
        if new and self._first_alert_in_input:
            return  # started with the trigger as its first alert
        try:
            await workflow.get_external_workflow_handle(incident).signal(
                IncidentWorkflow.alert_fired, trigger.alert
            )
        except FailureError:
            workflow.logger.warning("incident %s gone before its trigger arrived", incident)

    @workflow.signal(name=OPENING_DECISION_SIGNAL)
    def opening_decision(self, decision: OpeningDecision) -> None:
        """The intake's answer to :meth:`_admission`."""
        if decision.request_id == self._requests:  # a late answer to a request given up on
            self._decisions[decision.request_id] = decision

    @workflow.query
    def view(self) -> GroupView:
        """The group's key and incidents."""
        return GroupView(
            source=self._input.source,
            key=self._input.key,
            open_incident=self._s.open_incident,
            last_incident=self._s.last_incident,
            incidents_opened=self._s.incidents_opened,
            alerts_received=self._s.alerts_received,
            incidents=list(self._opened_here),
        )

    # ------------------------------------------------------------- helpers

    def _publish_open_incident(self) -> None:
        if self._publishes:
            workflow.upsert_memo({OPEN_INCIDENT_MEMO: self._s.open_incident})

    def _mark_closed(self, incident_id: str) -> None:
        self._s.open_incident = None
        self._publish_open_incident()
        self._s.last_incident = incident_id
        self._s.last_closed_at = workflow.now()
        self._touch()

    async def _open_or_join(self, delivery: AlertDelivery) -> tuple[str, bool]:
        async with self._lock:
            if self._s.open_incident is not None:
                return self._s.open_incident, False
            if self._capped:
                self._s.declaration = delivery.declaration
                storm = await self._admission(delivery.declaration)
                if storm is not None:
                    self._s.open_incident = storm
                    self._publish_open_incident()
                    return storm, False
            return await self._open(delivery.declaration, delivery.alert), True

    async def _admission(self, declaration: Declaration) -> str | None:
        """Ask the source's intake; a storm incident to join, or None to open one's own."""
        self._requests += 1
        self._decisions.clear()  # one request at a time (under the group's lock)
        request = OpeningRequest(
            group_id=workflow.info().workflow_id,
            request_id=self._requests,
            declaration=declaration,
        )
        intake_id = alert_intake_id(self._input.source, workflow.info().task_queue)
        if not await self._ask(intake_id, request):
            try:
                await workflow.start_child_workflow(
                    AlertIntakeWorkflow.run,
                    IntakeInput(source=self._input.source),
                    id=intake_id,
                    parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                    static_summary=f"alert intake · {self._input.source}",
                )
            except WorkflowAlreadyStartedError:
                pass
            if not await self._ask(intake_id, request):
                return None
        try:
            await workflow.wait_condition(
                lambda: request.request_id in self._decisions,
                timeout=ADMISSION_TIMEOUT,
                timeout_summary="wait for the alert intake",
            )
        except TimeoutError:
            workflow.logger.warning("alert intake %s did not answer; opening anyway", intake_id)
            return None
        return self._decisions.pop(request.request_id).storm_incident

    async def _ask(self, intake_id: str, request: OpeningRequest) -> bool:
        try:
            await workflow.get_external_workflow_handle(intake_id).signal(
                AlertIntakeWorkflow.request_opening, request
            )
        except FailureError:
            return False
        return True

    async def _open(self, draft: Declaration, first_alert: AlertEvent) -> str:
        declaration = draft.model_copy(
            update={
                "related_incident": self._repeated_incident(),
                "alert_group": workflow.info().workflow_id,
            }
        )
        incident_id = await self._start_incident(
            declaration, first_alert if self._first_alert_in_input else None
        )
        if incident_id is None:
            raise ApplicationError(f"no free incident ID after {children.ID_ATTEMPTS} attempts")
        self._s.open_incident = incident_id
        self._publish_open_incident()
        self._s.incidents_opened += 1
        self._opened_here.append(incident_id)
        return incident_id

    async def _start_incident(
        self, declaration: Declaration, first_alert: AlertEvent | None
    ) -> str | None:
        return await children.start_incident(declaration, first_alert)

    def _repeated_incident(self) -> str | None:
        closed = self._s.last_closed_at
        if closed is None or workflow.now() - closed > self._input.repeat_window:
            return None
        return self._s.last_incident
