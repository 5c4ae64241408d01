"""The incident workflow: one long-lived workflow per production incident (type ``Incident``).

Built to stay small and responsive whatever arrives: the timeline, alerts and
outbox in its state are bounded (:mod:`workflows.timeline`,
:mod:`workflows.outbox`, :data:`MAX_TRACKED_ALERTS`), clocks keep firing while
it continues as new, each notification channel delivers on its own, and every
command re-checks its transition after its last ``await``. Alert signals are
handled synchronously, so an alert storm can never keep a handler in flight
and hold back continue-as-new.

The class is put together from parts, one module each, sharing the state and
helpers of :class:`~workflows.incident_core.IncidentCore`: what each deadline
does (:mod:`workflows.incident_clocks`), the alert signals
(:mod:`workflows.incident_alerts`), the record, checklists and post-mortem
(:mod:`workflows.incident_followup`) and the background deliveries, archiving
and draft (:mod:`workflows.incident_background`). This module holds the run
loop, the responders' phase commands and the queries.

Patch decisions are made in ``__init__``, before the worker-setup local
activity: a query during the first task can split that task, and only code
before any ``await`` runs in the same activation on replay.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    from activities.policy import PolicyActivities
    from domain.incident import (
        IncidentState,
        IncidentSummary,
        IncidentView,
    )
    from domain.measures import MEASURES_MEMO
    from domain.models import (
        AcknowledgeInput,
        AlertEvent,
        CommandResult,
        Declaration,
        DismissInput,
        EventKind,
        NoteInput,
        NotificationKind,
        Phase,
        PhaseInput,
        SeverityInput,
        StatusUpdateInput,
        _Model,
        cap_text,
    )
    from workflows import (
        checklist,
        clocks,
        lanes,
        presentation,
        transitions,
    )
    from workflows.history import history_full
    from workflows.incident_alerts import MAX_TRACKED_ALERTS, IncidentAlerts
    from workflows.incident_background import IncidentBackground
    from workflows.incident_clocks import IncidentClocks
    from workflows.incident_core import (
        CLOSED_TRIGGER_SIGNAL,
        ClosedTrigger,
        recheck,
        reject_if,
    )
    from workflows.incident_followup import IncidentFollowUp
    from workflows.single_timer import SingleTimer

__all__ = [
    "CLOSED_TRIGGER_SIGNAL",
    "MAX_TRACKED_ALERTS",
    "SINGLE_DISPATCHER",
    "ClosedTrigger",
    "IncidentInput",
    "IncidentWorkflow",
]

SINGLE_DISPATCHER = "incident-single-dispatcher"
"""Patch: the clock loop hands out the background work (:mod:`workflows.lanes`) and
commands run without a condition pass once the policy is loaded, so a run's commands
come out in one order however SDK Core cuts its activations. Runs started before it
keep waking their workers by condition."""


class IncidentInput(_Model):
    """Input of :class:`IncidentWorkflow`: a declaration, or state carried over."""

    declaration: Declaration
    """What was declared (kept for reference across runs)."""
    carried: IncidentState | None = None
    """State from the previous run, when continuing as new (bounded, see module doc)."""
    first_alert: AlertEvent | None = None
    """The alert that opened the incident, taken as if signalled in its first task: the
    webhook then need not signal it (one RPC, one event and one decode less per new
    incident). Never carried across continue-as-new."""


@workflow.defn(name="Incident")
class IncidentWorkflow(IncidentClocks, IncidentAlerts, IncidentFollowUp, IncidentBackground):
    """Drives one incident through Detect → Investigate → Fix → Monitor → Resolve.

    Responders act through validated updates; monitoring talks through signals.
    Every deadline is derived from the state (see :mod:`workflows.clocks`) and
    waited on with a single durable timer, re-armed only when it changes.
    """

    @workflow.init
    def __init__(self, input: IncidentInput) -> None:
        if input.carried is not None:
            self._s = input.carried
        else:
            self._s = IncidentState.declare(
                workflow.info().workflow_id, input.declaration, workflow.now()
            )
        self._declaration = input.declaration
        self._wake = False
        self._published = {}
        self._alert_group = input.declaration.alert_group
        self._signals_out = set()
        self._in_flight = {}
        self._stopping = False
        self._held = []
        if input.carried is None and input.first_alert is not None:
            self._held.append((input.first_alert, True))
        self._drafting = False
        self._dispatched = self._decide_dispatcher()
        self._lanes = {}

    def _decide_dispatcher(self) -> bool:
        """The :data:`SINGLE_DISPATCHER` patch decision (a test stands in a run from before)."""
        return workflow.patched(SINGLE_DISPATCHER)

    @workflow.run
    async def run(self, input: IncidentInput) -> IncidentView:
        """Run the incident until it is closed, continuing as new when history grows."""
        if self._s.policy is None:
            setup = await workflow.execute_local_activity_method(
                PolicyActivities.worker_setup,
                start_to_close_timeout=timedelta(seconds=10),
                summary="Load response policy and channels",
            )
            self._s.policy = setup.policy
            self._s.channels = setup.channels
            self._announce_declaration()
            self._release_held()
        workflow.upsert_memo({"title": self._s.title, "public_title": self._s.public_title})
        self._make_lanes()
        workers = [asyncio.create_task(self._deliver(name)) for name in self._s.channels]
        workers.append(asyncio.create_task(self._archive()))
        workers.append(asyncio.create_task(self._write_draft()))
        continue_as_new = await self._run_clocks()
        if not continue_as_new:
            await workflow.wait_condition(self._drained)
        # Deliveries and archiving resume in the next run (both are idempotent): waiting
        # for a failing channel here would stop every clock meanwhile. Their activities
        # are abandoned, not cancelled: the closing run takes them with it. The flag
        # ends the idle loops (cancelling a task inside wait_condition is not enough
        # after a replay).
        self._stopping = True
        for worker in workers:
            worker.cancel()
        await workflow.wait_condition(
            lambda: all(worker.done() for worker in workers) and self._handlers_done()
        )
        if continue_as_new:
            workflow.continue_as_new(IncidentInput(declaration=input.declaration, carried=self._s))
        self._publish()
        return self.view()

    def _drained(self) -> bool:
        """Nothing left to deliver, to draft or to handle: a closed run may end."""
        return (
            not self._s.outbox
            and self._handlers_done()
            and not (self._drafting or self._draft_due())
        )

    def _handlers_done(self) -> bool:
        return not self._signals_out and workflow.all_handlers_finished()

    def _history_full(self) -> bool:
        return history_full(
            max_events=self.policy.max_history_events, max_bytes=self.policy.max_history_bytes
        )

    async def _run_clocks(self) -> bool:
        """Fire due deadlines, hand out background work and sleep until the next deadline;
        True means continue-as-new.

        With the dispatcher, a closed run keeps handing out deliveries until drained.
        """
        # Re-armed only for an earlier deadline: a flapping alert pushes the settle
        # deadline back on every recovery, and costs no timer events.
        timer = SingleTimer(keep_earlier=True)
        dispatched = self._dispatched
        try:
            while True:
                self._fire_due_clocks()
                self._tick_known()
                self._publish()
                if self._s.closed and (not dispatched or self._drained()):
                    return False
                if self._history_full():
                    return True
                armed = clocks.armed_clocks(self._s, self.policy)
                timer.arm(armed[0] if armed else None)
                if dispatched:
                    lanes.dispatch(self._lanes.values())
                self._wake = False
                await workflow.wait_condition(
                    lambda: (
                        self._wake
                        or timer.fired
                        or self._history_full()
                        or (dispatched and lanes.any_due(self._lanes.values()))
                        or (dispatched and self._s.closed and self._drained())
                    )
                )
        finally:
            timer.cancel()

    @workflow.update
    async def acknowledge(self, command: AcknowledgeInput) -> CommandResult:
        """Take the incident as commander; stops escalation and enters Investigate."""
        await self._ready()
        recheck(transitions.check_acknowledge(self._s))
        now = workflow.now()
        self._s.commander = command.commander or command.responder
        self._s.acknowledged_at = now
        if not self._s.public_title_confirmed:
            self._s.public_title, self._s.public_title_confirmed = self._s.title, True
        self._s.move_to(Phase.INVESTIGATE, now)
        self._s.marks.update_anchor = now
        self._record(
            EventKind.ACKNOWLEDGED,
            f"acknowledged; incident commander is {self._s.commander}",
            command.responder,
        )
        self._notify(NotificationKind.ACKNOWLEDGED, actor=command.responder)
        return self._result(f"{self._s.id} acknowledged; IC {self._s.commander}; Investigate")

    @acknowledge.validator
    def _validate_acknowledge(self, command: AcknowledgeInput) -> None:
        reject_if(transitions.check_responder(command.responder))
        if command.commander is not None:
            reject_if(transitions.check_name(command.commander, "commander"))
        reject_if(transitions.check_acknowledge(self._s))

    @workflow.update
    async def set_phase(self, command: PhaseInput) -> CommandResult:
        """Move to another phase (Resolve included)."""
        await self._ready()
        recheck(transitions.check_phase(self._s, command.phase))
        target = transitions.parse_phase(command.phase)
        assert target is not None
        self._s.auto_transition = None
        if command.public_note is not None:
            self._s.public_resolution = cap_text(command.public_note)
        if target is Phase.RESOLVE:
            self._resolve(command.responder, command.note)
        else:
            self._enter(target, command.responder, command.note)
        return self._result(f"{self._s.id} is now in {self._s.phase.value}")

    @set_phase.validator
    def _validate_set_phase(self, command: PhaseInput) -> None:
        reject_if(transitions.check_responder(command.responder))
        reject_if(transitions.check_phase(self._s, command.phase))

    @workflow.update
    async def dismiss(self, command: DismissInput) -> CommandResult:
        """Close a false alarm from Detect or Investigate."""
        await self._ready()
        recheck(transitions.check_dismiss(self._s, command.reason))
        reason = cap_text(command.reason)
        self._s.move_to(Phase.DISMISSED, workflow.now())
        self._s.dismissed_reason = reason
        self._s.resolved_at = workflow.now()
        self._s.closed = True
        self._s.auto_transition = None
        self._tell_alert_group()
        self._record(
            EventKind.DISMISSED, f"dismissed as a false alarm: {reason}", command.responder
        )
        self._notify(NotificationKind.DISMISSED, text=reason, actor=command.responder)
        return self._result(f"{self._s.id} dismissed")

    @dismiss.validator
    def _validate_dismiss(self, command: DismissInput) -> None:
        reject_if(transitions.check_responder(command.responder))
        reject_if(transitions.check_dismiss(self._s, command.reason))

    @workflow.update
    async def change_severity(self, command: SeverityInput) -> CommandResult:
        """Change severity; SLA deadlines are recomputed from the declaration time."""
        await self._ready()
        recheck(transitions.check_severity(self._s, command.severity))
        severity = transitions.parse_severity(command.severity)
        assert severity is not None
        previous = self._s.severity
        self._s.severity = severity
        reason = cap_text(command.reason)
        text = f"severity {previous.value} → {severity.value}" + (f": {reason}" if reason else "")
        self._record(EventKind.SEVERITY_CHANGED, text, command.responder)
        self._notify(NotificationKind.SEVERITY_CHANGED, text=reason, actor=command.responder)
        return self._result(f"{self._s.id} is now {severity.value}")

    @change_severity.validator
    def _validate_change_severity(self, command: SeverityInput) -> None:
        reject_if(transitions.check_responder(command.responder))
        reject_if(transitions.check_severity(self._s, command.severity))

    @workflow.update
    async def post_update(self, command: StatusUpdateInput) -> CommandResult:
        """Post a stakeholder update now; restarts the update interval."""
        await self._ready()
        recheck(transitions.check_update(self._s, command.text))
        if command.impact is not None:
            self._s.impact = cap_text(command.impact)
        if command.eta is not None:
            self._s.eta = cap_text(command.eta, 200)
        if command.public_title is not None and command.public_title.strip():
            self._s.public_title = cap_text(command.public_title, 300)
            self._s.public_title_confirmed = True
        self._s.marks.update_anchor = workflow.now()
        text = cap_text(command.text)
        self._record(EventKind.UPDATE_POSTED, text, command.responder)
        self._notify(
            NotificationKind.UPDATE,
            targets=self._announcement_targets(),
            text=text,
            actor=command.responder,
        )
        return self._result(f"update posted on {self._s.id}")

    @post_update.validator
    def _validate_post_update(self, command: StatusUpdateInput) -> None:
        reject_if(transitions.check_responder(command.responder))
        reject_if(transitions.check_update(self._s, command.text))

    @workflow.update
    async def add_note(self, command: NoteInput) -> CommandResult:
        """Add a note to the timeline."""
        await self._ready()
        recheck(transitions.check_note(self._s, command.text))
        self._record(EventKind.NOTE, command.text, command.responder)
        return self._result(f"note added to {self._s.id}")

    @add_note.validator
    def _validate_add_note(self, command: NoteInput) -> None:
        reject_if(transitions.check_responder(command.responder))
        reject_if(transitions.check_note(self._s, command.text))

    @workflow.query
    def view(self) -> IncidentView:
        """The incident as responders see it: facts, deadlines and the newest timeline."""
        return presentation.view_of(self._s)

    @workflow.query
    def summary(self) -> IncidentSummary:
        """A small, bounded answer for listings and the status page."""
        return presentation.summary_of(self._s)

    def _announce_declaration(self) -> None:
        s = self._s
        if s.source == "cli":
            s.public_title, s.public_title_confirmed = s.title, True
        else:
            s.public_title = self.policy.notifications.neutral_title(s.service)
        if s.detected_at is not None:
            s.detected_at = self._plausible_start(s.detected_at, s.declared_at)
        origin = f"declared by {s.declared_by} via {s.source}"
        if s.routing_rule:
            origin += f" (routing rule {s.routing_rule!r})"
        if s.related_incident:
            origin += f"; repeats {s.related_incident}"
        self._record(EventKind.DECLARED, f"{s.severity.value}: {s.title} — {origin}", s.declared_by)
        self._tick_known()
        self._notify(
            NotificationKind.DECLARED,
            targets=self._announcement_targets(),
            actor=s.declared_by,
            checklist=checklist.open_texts(s, self.policy, Phase.DETECT),
        )

    def _publish(self) -> None:
        """Keep search attributes and current details in step with the state."""
        updates: list[SearchAttributeUpdate[Any]] = []
        for key, value in presentation.search_attribute_values(self._s):
            known = key.name in self._published
            if known and self._published[key.name] == value:
                continue
            self._published[key.name] = value
            if value is None and not known:
                # Nothing to unset. The time-skipping test server keeps an unset Datetime
                # as an empty value, which the SDK's describe() then fails to decode. The
                # first upsert of a run carries the phase, so it is never left empty.
                continue
            updates.append(key.value_unset() if value is None else key.value_set(value))
        if updates:
            workflow.upsert_search_attributes(updates)
        memo: dict[str, Any] = {}
        if self._published.setdefault("public_title", self._s.public_title) != self._s.public_title:
            self._published["public_title"] = memo["public_title"] = self._s.public_title
        measures = presentation.measures_of(self._s).model_dump(mode="json")
        if self._published.get(MEASURES_MEMO) != measures:
            self._published[MEASURES_MEMO] = memo[MEASURES_MEMO] = measures
        if memo:
            workflow.upsert_memo(memo)
        workflow.set_current_details(presentation.details_of(self._s, workflow.now()))
