"""What every part of the incident workflow shares: its state, the timeline and the
outbox, phase changes, and how commands are refused (see :mod:`workflows.incident`)."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.exceptions import (
    ApplicationError,
    FailureError,
)

with workflow.unsafe.imports_passed_through():
    from domain.incident import (
        AutoTransition,
        IncidentState,
    )
    from domain.models import (
        INCIDENT_CLOSED_SIGNAL,
        AlertEvent,
        CommandResult,
        Declaration,
        EventKind,
        IncidentClosed,
        IncidentFacts,
        Notification,
        NotificationKind,
        Phase,
        _Model,
        cap_text,
    )
    from domain.policy import Policy, SeverityPolicy
    from workflows import (
        checklist,
        clocks,
        outbox,
        presentation,
        timeline,
    )
    from workflows.lanes import Lane

SYSTEM = "system"
"""The actor of what the workflow does by itself (timers, auto-transitions)."""
CLOSED_TRIGGER_SIGNAL = "trigger_after_close"
"""Signal to the alert group: an alert fired at an incident that had already closed."""


class ClosedTrigger(_Model):
    """Payload of :data:`CLOSED_TRIGGER_SIGNAL`: a trigger a closed incident handed back."""

    alert: AlertEvent
    """The alert that fired."""
    closed_incident: str
    """The incident that had already been resolved or dismissed."""
    declaration: Declaration
    """How that incident was declared; the group opens the next one the same way."""


class CommandRejected(ValueError):
    """A responder command that is not allowed now; the message says why."""


def reject_if(reason: str | None) -> None:
    """Reject from a validator: nothing is written to history."""
    if reason is not None:
        raise CommandRejected(reason)


def recheck(reason: str | None) -> None:
    """Reject from inside a handler: another command of the same task got there first."""
    if reason is not None:
        raise ApplicationError(reason, type="CommandRejected", non_retryable=True)


class IncidentCore:
    """State and helpers of :class:`~workflows.incident.IncidentWorkflow`, shared by its parts
    (clocks, alerts, follow-up, background work); the workflow sets the attributes."""

    _s: IncidentState
    _declaration: Declaration
    _wake: bool
    _published: dict[str, object]
    """What was last published (search attributes, memo), to publish only changes."""
    _alert_group: str | None
    _signals_out: set[asyncio.Task[None]]
    """Signals to other workflows still being sent."""
    _in_flight: dict[str, str]
    """Channel → key of the message it is delivering right now."""
    _stopping: bool
    _held: list[tuple[AlertEvent, bool]]
    """Alerts signalled before the policy was loaded, with whether they fired."""
    _drafting: bool
    """Whether the post-mortem draft is being written right now."""
    _dispatched: bool
    """Whether this run hands background work out from the clock loop
    (:data:`~workflows.incident.SINGLE_DISPATCHER`); runs started before wake
    their workers by condition."""
    _lanes: dict[str, Lane]
    """The background workers' lanes, in dispatch order: channels, archive, draft."""

    @property
    def policy(self) -> Policy:
        """The policy loaded when the incident was declared."""
        assert self._s.policy is not None, "policy is loaded before any handler runs"
        return self._s.policy

    @property
    def _severity_policy(self) -> SeverityPolicy:
        return self.policy.for_severity(self._s.severity)

    async def _ready(self) -> None:
        if self._dispatched and self._s.policy is not None:
            # No condition pass: the handler finishes before the dispatcher wakes, and
            # a second command of the same task meets the first one's state in its
            # validator.
            return
        await workflow.wait_condition(lambda: self._s.policy is not None)

    def _result(self, message: str) -> CommandResult:
        self._wake = True
        return CommandResult(incident_id=self._s.id, phase=self._s.phase, message=message)

    def facts(self) -> IncidentFacts:
        """The incident's facts with derived deadlines."""
        return presentation.facts_of(self._s)

    def _announcement_targets(self) -> list[str]:
        targets = [self.policy.notifications.incidents_channel, *self._s.targets]
        return list(dict.fromkeys(target for target in targets if target))

    def _enter(
        self,
        phase: Phase,
        actor: str,
        note: str,
        *,
        notify: bool = True,
        informational: bool = False,
    ) -> None:
        previous = self._s.phase
        self._s.move_to(phase, workflow.now())
        if phase is Phase.MONITOR:
            self._s.marks.monitor_started_at = workflow.now()
        note = cap_text(note)
        text = f"{previous.value} → {phase.value}" + (f": {note}" if note else "")
        self._record(EventKind.PHASE_CHANGED, text, actor)
        self._tick_known()
        if notify:
            self._notify(
                NotificationKind.PHASE_CHANGED,
                text=note,
                actor=actor,
                informational=informational,
                checklist=checklist.open_texts(self._s, self.policy, phase),
            )

    def _resolve(self, actor: str, note: str) -> None:
        self._enter(Phase.RESOLVE, actor, note, notify=False)
        self._s.auto_transition = None
        self._tell_alert_group()
        self._s.resolved_at = workflow.now()
        due = clocks.postmortem_due_at(self._s, self.policy)
        if due is None:
            self._record(EventKind.RESOLVED, "resolved; no post-mortem required", actor)
            self._s.closed = True
        else:
            self._record(
                EventKind.RESOLVED, f"resolved; post-mortem due by {due:%Y-%m-%d %H:%M} UTC", actor
            )
        self._notify(
            NotificationKind.RESOLVED,
            targets=self._announcement_targets(),
            text=cap_text(note),
            actor=actor,
        )
        if self._s.closed:
            self._record(EventKind.CLOSED, "incident closed")

    def _tell_alert_group(self) -> None:
        """Tell the alert group that opened this incident, so its next trigger opens a new one."""
        if not self._alert_group:
            return
        group = workflow.get_external_workflow_handle(self._alert_group)
        closed = IncidentClosed(incident_id=self._s.id, phase=self._s.phase.value)
        self._send(group.signal(INCIDENT_CLOSED_SIGNAL, closed), f"alert group {group.id}")

    def _send(self, signal: Any, whom: str) -> None:
        """Signal another workflow in the background; waited for before the run ends."""

        async def send() -> None:
            try:
                await signal
            except FailureError:
                # The group is gone (idle-completed): there is nobody left to tell.
                workflow.logger.info("%s not reachable", whom)

        task = asyncio.create_task(send())
        self._signals_out.add(task)
        task.add_done_callback(self._signals_out.discard)

    def _record(self, kind: EventKind, text: str, actor: str | None = SYSTEM) -> Any:
        self._wake = True
        return timeline.append(
            self._s, at=workflow.now(), kind=kind, text=text, actor=actor, phase=self._s.phase
        )

    def _notify(
        self,
        kind: NotificationKind,
        *,
        targets: list[str] | None = None,
        text: str = "",
        actor: str | None = SYSTEM,
        informational: bool = False,
        checklist: list[str] | None = None,
    ) -> None:
        self._s.notification_seq += 1
        notification = Notification(
            key=f"{self._s.id}/{self._s.notification_seq}",
            kind=kind,
            incident=self.facts(),
            at=workflow.now(),
            targets=[target for target in targets or [] if target],
            text=text,
            actor=actor,
            priority=not informational,
            checklist=checklist or [],
        )
        dropped = outbox.enqueue(self._s, notification, started=self._started)
        if dropped is not None:
            self._record(
                EventKind.NOTIFICATION_FAILED,
                f"{dropped.kind.value} notification dropped: the outbox is full",
            )

    def _started(self, key: str) -> bool:
        return key in self._in_flight.values()

    def _tick_known(self) -> None:
        """Tick the checklist items the system itself did; each names what did it (no
        timeline entry: the fact that ticked it is already there)."""
        if self._s.policy is not None:
            checklist.tick_known(self._s, self.policy, workflow.now())

    def _any_alert_firing(self) -> bool:
        return self._s.alerts_untracked > 0 or any(a.firing for a in self._s.alerts.values())

    def _on_all_alerts_recovered(self, source: str, *, quiet: bool) -> None:
        rule = self.policy.alerts
        phase = self._s.phase
        if not phase.is_open or rule.on_all_recovered == "none":
            return
        if phase is Phase.DETECT and not rule.resolve_unacknowledged:
            if not quiet:
                self._record(
                    EventKind.NOTE,
                    "all alerts recovered; still waiting for a human to acknowledge",
                    SYSTEM,
                )
            return
        if rule.on_all_recovered == "resolve" or phase is Phase.DETECT:
            target = Phase.RESOLVE
        elif phase in (Phase.INVESTIGATE, Phase.FIX):
            target = Phase.MONITOR
        else:
            return
        self._s.auto_transition = AutoTransition(target=target, since=workflow.now(), actor=source)
