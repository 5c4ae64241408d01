"""The incident workflow: one long-lived workflow per production incident (type ``Incident``).

Built to stay small and responsive whatever arrives: the timeline, alerts and
outbox in its state are bounded (:mod:`workflows.timeline`,
:mod:`workflows.outbox`, :data:`MAX_TRACKED_ALERTS`), clocks keep firing while
it continues as new, each notification channel delivers on its own, and every
command re-checks its transition after its last ``await``. Alert signals are
handled synchronously, so an alert storm can never keep a handler in flight
and hold back continue-as-new.

Patch decisions, when this workflow needs them, are made first thing in
``run``, before the worker-setup local activity: a query during the first task
can split that task, and only code before any ``await`` runs in the same
activation on replay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    FailureError,
)

with workflow.unsafe.imports_passed_through():
    from activities.policy import PolicyActivities
    from activities.postmortems import DraftInput, PostmortemDrafts
    from activities.timeline_archive import ArchiveInput, TimelineArchive
    from domain import launch
    from domain.checklists import find_item
    from domain.durations import format_duration
    from domain.incident import (
        AutoTransition,
        IncidentState,
        IncidentSummary,
        IncidentView,
        ReviewMeeting,
    )
    from domain.measures import MEASURES_MEMO
    from domain.models import (
        INCIDENT_CLOSED_SIGNAL,
        AcknowledgeInput,
        AlertBatch,
        AlertEvent,
        AlertState,
        CheckInput,
        CommandResult,
        Declaration,
        DismissInput,
        EventKind,
        IncidentClosed,
        IncidentFacts,
        NoteInput,
        Notification,
        NotificationKind,
        Phase,
        PhaseInput,
        PostmortemInput,
        RecordInput,
        ReviewInput,
        SeverityInput,
        StatusUpdateInput,
        _Model,
        cap_text,
    )
    from domain.policy import Policy, SeverityPolicy
    from workflows import (
        checklist,
        clocks,
        delivery,
        outbox,
        presentation,
        record,
        timeline,
        transitions,
    )
    from workflows.clocks import Clock, ClockKind
    from workflows.history import history_full

SYSTEM = "system"
MAX_TRACKED_ALERTS = 100
"""Alert keys an incident tracks one by one; later keys (an alert storm) are counted."""
CLOSED_TRIGGER_SIGNAL = "trigger_after_close"
"""Signal to the alert group: an alert fired at an incident that had already closed."""

DRAFT_GIVE_UP = timedelta(minutes=10)
"""Writing the post-mortem draft is given up after this (recorded; the CLI still prints it)."""


class IncidentInput(_Model):
    """Input of :class:`IncidentWorkflow`: a declaration, or state carried over."""

    declaration: Declaration
    """What was declared (kept for reference across runs)."""
    carried: IncidentState | None = None
    """State from the previous run, when continuing as new (bounded, see module doc)."""


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


def _reject_if(reason: str | None) -> None:
    if reason is not None:
        raise CommandRejected(reason)


def _recheck(reason: str | None) -> None:
    """Reject from inside a handler: another command of the same task got there first."""
    if reason is not None:
        raise ApplicationError(reason, type="CommandRejected", non_retryable=True)


@workflow.defn(name="Incident")
class IncidentWorkflow:
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
        self._published: dict[str, object] = {}
        self._alert_group = input.declaration.alert_group
        self._signals_out: set[asyncio.Task[None]] = set()
        self._in_flight: dict[str, str] = {}
        """Channel → key of the message it is delivering right now."""
        self._stopping = False
        self._held: list[tuple[AlertEvent, bool]] = []
        """Alerts signalled before the policy was loaded, with whether they fired."""
        self._drafting = False
        """Whether the post-mortem draft is being written right now."""

    # ----------------------------------------------------------------- run

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
        workers = [asyncio.create_task(self._deliver(name)) for name in self._s.channels]
        workers.append(asyncio.create_task(self._archive()))
        workers.append(asyncio.create_task(self._write_draft()))
        continue_as_new = await self._run_clocks()
        if not continue_as_new:
            await workflow.wait_condition(
                lambda: (
                    not self._s.outbox
                    and self._handlers_done()
                    and not (self._drafting or self._draft_due())
                )
            )
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

    def _handlers_done(self) -> bool:
        return not self._signals_out and workflow.all_handlers_finished()

    def _history_full(self) -> bool:
        return history_full(
            max_events=self.policy.max_history_events, max_bytes=self.policy.max_history_bytes
        )

    async def _run_clocks(self) -> bool:
        """Fire due deadlines and sleep until the next one; True means continue-as-new."""
        timer: asyncio.Task[None] | None = None
        armed_for: Clock | None = None
        try:
            while True:
                self._fire_due_clocks()
                self._tick_known()
                self._publish()
                if self._s.closed:
                    return False
                if self._history_full():
                    return True
                armed = clocks.armed_clocks(self._s, self.policy)
                upcoming = armed[0] if armed else None
                # Re-arm only for an earlier deadline: a timer that fires early just wakes
                # the loop, which arms the next one. A flapping alert pushes the settle
                # deadline back on every recovery; it costs no timer events now.
                if timer is not None and (
                    timer.done()
                    or (
                        upcoming is not None
                        and armed_for is not None
                        and upcoming.when < armed_for.when
                    )
                ):
                    timer.cancel()
                    timer = None
                if upcoming is not None and timer is None:
                    delay = max(upcoming.when - workflow.now(), timedelta(milliseconds=1))
                    timer = asyncio.create_task(workflow.sleep(delay, summary=upcoming.label))
                    armed_for = upcoming
                self._wake = False
                await workflow.wait_condition(self._woken_by(timer))
        finally:
            if timer is not None:
                timer.cancel()

    def _woken_by(self, timer: asyncio.Task[None] | None) -> Callable[[], bool]:
        return lambda: self._wake or (timer is not None and timer.done()) or self._history_full()

    @property
    def policy(self) -> Policy:
        """The policy loaded when the incident was declared."""
        assert self._s.policy is not None, "policy is loaded before any handler runs"
        return self._s.policy

    @property
    def _severity_policy(self) -> SeverityPolicy:
        return self.policy.for_severity(self._s.severity)

    # -------------------------------------------------------------- clocks

    def _fire_due_clocks(self) -> None:
        # Re-derive after each firing: one clock can disarm another that was due at the
        # same wake-up (a Monitor auto-resolve ends the resolve SLA, for instance).
        while True:
            armed = clocks.armed_clocks(self._s, self.policy)
            if not armed or armed[0].when > workflow.now():
                return
            self._fire(armed[0])

    def _fire(self, clock: Clock) -> None:
        handlers = {
            ClockKind.ESCALATION_PAGE: self._page,
            ClockKind.RESOLVE_SLA: self._resolve_sla_breached,
            ClockKind.NUDGE: self._nudge,
            ClockKind.STAKEHOLDER_UPDATE: self._stakeholder_update,
            ClockKind.MONITOR_END: self._monitor_window_passed,
            ClockKind.POSTMORTEM_REMINDER: self._postmortem_reminder,
            ClockKind.POSTMORTEM_DEADLINE: self._postmortem_overdue,
            ClockKind.ALERTS_SETTLED: self._alerts_settled,
            ClockKind.REVIEW_REMINDER: self._review_reminder,
        }
        handlers[clock.kind]()

    def _page(self) -> None:
        marks = self._s.marks
        if marks.pages_sent == 0:
            self._record(
                EventKind.ACK_SLA_BREACHED,
                f"not acknowledged within the {self._s.severity.value} SLA "
                f"({format_duration(self._severity_policy.ack_sla)}); escalating",
            )
        step = clocks.latest_due_page(self._s, self.policy, workflow.now())
        levels = self.policy.escalation.levels
        cycle, index = divmod(step, len(levels))
        level = levels[index]
        marks.pages_sent = step + 1
        text = f"escalation level {index + 1}/{len(levels)}, round {cycle + 1}"
        self._record(
            EventKind.ESCALATION_PAGE, f"paged {', '.join(level.targets)} ({text})", SYSTEM
        )
        self._notify(NotificationKind.PAGE, targets=level.targets, text=text)

    def _resolve_sla_breached(self) -> None:
        self._s.marks.resolve_breach_notified = True
        self._s.sla_breached = True
        sla = format_duration(self._severity_policy.resolve_sla)
        text = f"not resolved within the {self._s.severity.value} resolve SLA ({sla})"
        self._record(EventKind.RESOLVE_SLA_BREACHED, text, SYSTEM)
        self._notify(
            NotificationKind.SLA_BREACH, targets=self.policy.notifications.management, text=text
        )

    def _nudge(self) -> None:
        self._s.marks.nudged_for = self._s.marks.update_anchor
        commander = self._s.commander or ""
        self._record(EventKind.NUDGE, f"nudged {commander} for a stakeholder update", SYSTEM)
        self._notify(NotificationKind.NUDGE, targets=[commander])

    def _stakeholder_update(self) -> None:
        interval = self._severity_policy.update_interval
        due = clocks.next_update_at(self._s, self.policy)
        assert due is not None
        # Keep the cadence anchored to the schedule, unless the worker was down for
        # longer than an interval: then restart from now instead of catching up.
        self._s.marks.update_anchor = due if workflow.now() - due < interval else workflow.now()
        self._record(EventKind.STAKEHOLDER_UPDATE, "posted the scheduled stakeholder update")
        self._notify(NotificationKind.UPDATE, targets=self._announcement_targets(), actor=SYSTEM)

    def _monitor_window_passed(self) -> None:
        window = format_duration(self._severity_policy.monitor_window)
        self._resolve(SYSTEM, f"stable for the {window} monitor window without recurrence")

    def _postmortem_reminder(self) -> None:
        self._s.marks.postmortem_reminded = True
        self._record(EventKind.POSTMORTEM_REMINDER, "reminded the commander of the post-mortem")
        self._notify(
            NotificationKind.POSTMORTEM_REMINDER, targets=[self._s.commander or ""], actor=SYSTEM
        )

    def _postmortem_overdue(self) -> None:
        self._s.marks.postmortem_escalated = True
        targets = list(self.policy.postmortem.escalate_to)
        if self._s.commander and self._s.commander not in targets:
            targets.append(self._s.commander)
        self._record(
            EventKind.POSTMORTEM_OVERDUE, f"post-mortem overdue; told {', '.join(targets)}"
        )
        self._notify(NotificationKind.POSTMORTEM_OVERDUE, targets=targets, actor=SYSTEM)

    def _review_reminder(self) -> None:
        review = self._s.review
        assert review is not None
        review.reminded = True
        targets = list(dict.fromkeys([*review.attendees, self._s.commander or ""]))
        self._record(
            EventKind.POSTMORTEM_REMINDER,
            f"reminded {', '.join(t for t in targets if t) or 'nobody'} of the post-mortem review",
        )
        self._notify(NotificationKind.POSTMORTEM_REVIEW, targets=targets, actor=SYSTEM)

    def _alerts_settled(self) -> None:
        pending = self._s.auto_transition
        self._s.auto_transition = None
        if pending is None or self._any_alert_firing():
            return
        window = format_duration(self.policy.alerts.settle_window)
        note = f"all alerts recovered and stayed so for {window}"
        if pending.target is Phase.RESOLVE:
            self._resolve(pending.actor, note)
        elif self._s.phase in (Phase.INVESTIGATE, Phase.FIX):
            self._enter(Phase.MONITOR, pending.actor, note, informational=True)

    # ------------------------------------------------------------- updates

    async def _ready(self) -> None:
        await workflow.wait_condition(lambda: self._s.policy is not None)

    def _result(self, message: str) -> CommandResult:
        self._wake = True
        return CommandResult(incident_id=self._s.id, phase=self._s.phase, message=message)

    @workflow.update
    async def acknowledge(self, command: AcknowledgeInput) -> CommandResult:
        """Take the incident as commander; stops escalation and enters Investigate."""
        await self._ready()
        _recheck(transitions.check_acknowledge(self._s))
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
        _reject_if(transitions.check_responder(command.responder))
        if command.commander is not None:
            _reject_if(transitions.check_name(command.commander, "commander"))
        _reject_if(transitions.check_acknowledge(self._s))

    @workflow.update
    async def set_phase(self, command: PhaseInput) -> CommandResult:
        """Move to another phase (Resolve included)."""
        await self._ready()
        _recheck(transitions.check_phase(self._s, command.phase))
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
        _reject_if(transitions.check_responder(command.responder))
        _reject_if(transitions.check_phase(self._s, command.phase))

    @workflow.update
    async def dismiss(self, command: DismissInput) -> CommandResult:
        """Close a false alarm from Detect or Investigate."""
        await self._ready()
        _recheck(transitions.check_dismiss(self._s, command.reason))
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
        _reject_if(transitions.check_responder(command.responder))
        _reject_if(transitions.check_dismiss(self._s, command.reason))

    @workflow.update
    async def change_severity(self, command: SeverityInput) -> CommandResult:
        """Change severity; SLA deadlines are recomputed from the declaration time."""
        await self._ready()
        _recheck(transitions.check_severity(self._s, command.severity))
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
        _reject_if(transitions.check_responder(command.responder))
        _reject_if(transitions.check_severity(self._s, command.severity))

    @workflow.update
    async def post_update(self, command: StatusUpdateInput) -> CommandResult:
        """Post a stakeholder update now; restarts the update interval."""
        await self._ready()
        _recheck(transitions.check_update(self._s, command.text))
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
        _reject_if(transitions.check_responder(command.responder))
        _reject_if(transitions.check_update(self._s, command.text))

    @workflow.update
    async def add_note(self, command: NoteInput) -> CommandResult:
        """Add a note to the timeline."""
        await self._ready()
        _recheck(transitions.check_note(self._s, command.text))
        self._record(EventKind.NOTE, command.text, command.responder)
        return self._result(f"note added to {self._s.id}")

    @add_note.validator
    def _validate_add_note(self, command: NoteInput) -> None:
        _reject_if(transitions.check_responder(command.responder))
        _reject_if(transitions.check_note(self._s, command.text))

    @workflow.update
    async def record_postmortem(self, command: PostmortemInput) -> CommandResult:
        """Record the post-mortem; the incident is then closed."""
        await self._ready()
        _recheck(self._check_postmortem())
        self._s.postmortem_url = cap_text(command.url, 2000) if command.url else None
        self._s.postmortem_document = command.document
        self._s.postmortem_recorded_at = workflow.now()
        self._tick_known()
        self._s.closed = True
        where = f" at {self._s.postmortem_url}" if self._s.postmortem_url else ""
        if command.document is not None:
            where += f" (file {command.document.path}, sha256 {command.document.sha256[:12]}…)"
        self._record(
            EventKind.POSTMORTEM_RECORDED, f"post-mortem recorded{where}", command.responder
        )
        self._notify(NotificationKind.POSTMORTEM_DONE, actor=command.responder)
        self._record(EventKind.CLOSED, "incident closed")
        return self._result(f"post-mortem recorded; {self._s.id} closed")

    @record_postmortem.validator
    def _validate_record_postmortem(self, command: PostmortemInput) -> None:
        _reject_if(transitions.check_responder(command.responder))
        _reject_if(self._check_postmortem())
        document = command.document
        if document is not None and (
            len(document.path) > 1000 or len(document.sha256) != 64 or document.size < 0
        ):
            raise CommandRejected("the post-mortem file reference is malformed")

    @workflow.update
    async def schedule_review(self, command: ReviewInput) -> CommandResult:
        """Schedule the post-mortem review meeting; attendees are reminded before it."""
        await self._ready()
        _recheck(transitions.check_review(self._s, command, workflow.now()))
        at = command.at.astimezone(UTC)
        attendees = list(dict.fromkeys(a.strip() for a in command.attendees if a.strip()))
        again = self._s.review is not None
        self._s.review = ReviewMeeting(at=at, attendees=attendees, scheduled_by=command.responder)
        who = ", ".join(attendees) or "no attendees named"
        verb = "rescheduled" if again else "scheduled"
        self._record(
            EventKind.NOTE,
            f"post-mortem review {verb} for {at:%Y-%m-%d %H:%M} UTC ({who})",
            command.responder,
        )
        self._tick_known()
        self._s.postmortem_draft_written = False  # the draft names the meeting
        return self._result(
            f"post-mortem review of {self._s.id} {verb} for {at:%Y-%m-%d %H:%M} UTC"
        )

    @schedule_review.validator
    def _validate_schedule_review(self, command: ReviewInput) -> None:
        _reject_if(transitions.check_responder(command.responder))
        _reject_if(transitions.check_review(self._s, command, workflow.now()))

    @workflow.update
    async def check(self, command: CheckInput) -> CommandResult:
        """Tick a checklist item (by its number or text) of the current or a named phase."""
        await self._ready()
        phase, index = self._checked_item(command, rejected=_recheck)
        item = checklist.kept_lists(self._s, self.policy)[phase][index]
        if item.done:
            return self._result(f"{item.text!r} was already ticked by {item.done_by}")
        item.done_at, item.done_by = workflow.now(), command.responder
        self._record(
            EventKind.NOTE, f"{phase.value} checklist: ticked {item.text!r}", command.responder
        )
        self._s.postmortem_draft_written = False  # a draft lists the items left open
        left = len(checklist.open_texts(self._s, self.policy, phase))
        return self._result(f"ticked {item.text!r}; {left} item(s) of {phase.value} left")

    @check.validator
    def _validate_check(self, command: CheckInput) -> None:
        _reject_if(transitions.check_responder(command.responder))
        if self._s.policy is not None:
            self._checked_item(command, rejected=_reject_if)

    def _checked_item(
        self, command: CheckInput, *, rejected: Callable[[str | None], None]
    ) -> tuple[Phase, int]:
        phase, reason = transitions.check_item(self._s, command.phase)
        rejected(reason)
        assert phase is not None
        index, reason = find_item(checklist.items_of(self._s, self.policy, phase), command.item)
        if reason is not None:
            other = "" if command.phase else "; another phase's item needs --phase"
            rejected(f"{phase.value} checklist: {reason}{other}")
        assert index is not None
        return phase, index

    def _tick_known(self) -> None:
        """Tick the checklist items the system itself did; each names what did it (no
        timeline entry: the fact that ticked it is already there)."""
        if self._s.policy is not None:
            checklist.tick_known(self._s, self.policy, workflow.now())

    def _check_postmortem(self) -> str | None:
        required = self._s.policy is not None and clocks.postmortem_required(self._s, self.policy)
        return transitions.check_postmortem(self._s, required)

    @workflow.update
    async def set_record(self, command: RecordInput) -> CommandResult:
        """Fill in or correct the incident record; one timeline entry names the changes."""
        await self._ready()
        _recheck(transitions.check_record(self._s, command, workflow.now()))
        changes = record.apply(self._s.record, command)
        if not changes:
            return self._result(f"record of {self._s.id} unchanged")
        self._record(EventKind.RECORD_CHANGED, "record: " + "; ".join(changes), command.responder)
        # A draft already written is written again with the new record.
        self._s.postmortem_draft_written = False
        return self._result(f"record of {self._s.id} updated: {len(changes)} field(s)")

    @set_record.validator
    def _validate_set_record(self, command: RecordInput) -> None:
        _reject_if(transitions.check_responder(command.responder))
        _reject_if(transitions.check_record(self._s, command, workflow.now()))

    # ------------------------------------------------------------- signals

    @workflow.signal
    def alert_fired(self, alert: AlertEvent) -> None:
        """A monitoring alert fired (again); during Monitor this is a recurrence."""
        if self._s.policy is None:
            self._hold(alert, firing=True)
            return
        self._s.alert_notifications += 1
        self._wake = True
        if not self._s.phase.is_open:
            self._hand_back(alert)
            return
        known = self._track(alert)
        if known is None:
            return
        was_firing = known.firing and known.count > 0
        known.count += 1
        known.last_at = workflow.now()
        known.summary = cap_text(alert.summary or alert.key, 300)
        known.firing = True
        self._s.auto_transition = None
        if not was_firing and not self._flapped(known):
            self._record(EventKind.ALERT_FIRED, f"alert firing: {known.summary}", alert.source)
        if self._s.phase is Phase.MONITOR:
            target = Phase(self.policy.alerts.recurrence_phase)
            self._record(
                EventKind.RECURRENCE, f"recurrence during Monitor: {known.summary}", alert.source
            )
            self._enter(target, alert.source, "", notify=False)
            self._notify(
                NotificationKind.RECURRENCE,
                text=known.summary,
                actor=alert.source,
                informational=True,
            )

    @workflow.signal
    def alert_resolved(self, alert: AlertEvent) -> None:
        """A monitoring alert recovered; once all stay recovered, the policy decides."""
        if self._s.policy is None:
            self._hold(alert, firing=False)
            return
        self._s.alert_notifications += 1
        known = self._s.alerts.get(cap_text(alert.key, 300))
        if known is None or not known.firing:
            return
        known.firing = False
        known.last_at = workflow.now()
        self._wake = True
        flapped = self._flapped(known)
        known.recoveries += 1
        if not flapped:
            self._record(
                EventKind.ALERT_RESOLVED, f"alert recovered: {known.summary}", alert.source
            )
            self._notify(
                NotificationKind.ALERT_RECOVERED,
                text=known.summary,
                actor=alert.source,
                informational=True,
            )
        if not self._any_alert_firing():
            self._on_all_alerts_recovered(alert.source, quiet=known.flaps > 0)

    @workflow.signal
    def alert_batch(self, batch: AlertBatch) -> None:
        """Several alerts at once (the webhook batches alerts bound for one incident)."""
        for fired, alert in zip(batch.fired, batch.alerts, strict=False):
            (self.alert_fired if fired else self.alert_resolved)(alert)

    def _hold(self, alert: AlertEvent, *, firing: bool) -> None:
        """Keep an alert that arrived before the policy was loaded (first task only)."""
        if len(self._held) < MAX_TRACKED_ALERTS:
            self._held.append((alert, firing))
        else:
            self._s.alert_notifications += 1
            self._s.alerts_untracked += 1

    def _release_held(self) -> None:
        held, self._held = self._held, []
        for alert, firing in held:
            (self.alert_fired if firing else self.alert_resolved)(alert)

    def _track(self, alert: AlertEvent) -> AlertState | None:
        """The alert's state, created on its first notification; None past the cap."""
        key = cap_text(alert.key, 300)
        known = self._s.alerts.get(key)
        if known is not None:
            return known
        if len(self._s.alerts) >= MAX_TRACKED_ALERTS:
            if self._s.alerts_untracked == 0:
                self._record(
                    EventKind.NOTE,
                    f"more than {MAX_TRACKED_ALERTS} distinct alerts joined; later ones are "
                    "counted, not listed, and no longer move the incident by themselves",
                    alert.source,
                )
            self._s.alerts_untracked += 1
            return None
        now = workflow.now()
        known = AlertState(
            key=key,
            source=alert.source,
            summary=cap_text(alert.summary or alert.key, 300),
            first_at=now,
            last_at=now,
            started_at=alert.started_at,
        )
        self._s.alerts[key] = known
        started = alert.started_at and self._plausible_start(alert.started_at, now)
        if started and (self._s.detected_at is None or started < self._s.detected_at):
            self._s.detected_at = started
        return known

    def _plausible_start(self, started: datetime, arrived: datetime) -> datetime:
        """A sender's start time, clamped to ``alerts.max_start_age`` before it arrived."""
        earliest = arrived - self.policy.alerts.max_start_age
        if started >= earliest:
            return started
        if not self._s.detected_clamped:
            self._s.detected_clamped = True
            self._record(
                EventKind.NOTE,
                f"alert start time {started:%Y-%m-%d %H:%M} UTC is more than "
                f"{format_duration(self.policy.alerts.max_start_age)} before it arrived; "
                f"time-to-detect counts from {earliest:%Y-%m-%d %H:%M} UTC",
            )
        return earliest

    def _flapped(self, known: AlertState) -> bool:
        """Count a status change of an alert that recovered before, within the settle window.

        The first firing and the first recovery are always recorded on their own
        (repeated firing notifications in between change nothing); from the next
        firing on, a change that follows the previous one within the window is flapping.

        Returns True when the change was counted as flapping (one timeline entry per
        burst, its count kept current) rather than recorded on its own.
        """
        now = workflow.now()
        previous, known.changed_at = known.changed_at, now
        window = self.policy.alerts.settle_window
        if previous is None or now - previous >= window or known.recoveries == 0:
            known.flaps = 0
            known.flap_entry = None
            return False
        known.flaps += 1
        text = (
            f"alert flapping: {known.summary} — {known.flaps} status changes, each within "
            f"{format_duration(window)} of the last; phases wait until it settles"
        )
        entry = timeline.entry(self._s, known.flap_entry)
        if entry is not None:
            entry.text = cap_text(text, timeline.ENTRY_TEXT)
            entry.at = now
        else:
            known.flap_entry = self._record(EventKind.ALERT_FLAPPING, text, known.source).seq
        return True

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

    def _hand_back(self, alert: AlertEvent) -> None:
        """A trigger for a closed incident: its alert group opens the next incident."""
        group_id = alert.group or self._alert_group
        if not group_id or not group_id.startswith(launch.ALERT_GROUP_PREFIX):
            workflow.logger.info(
                "alert %s after close has no alert group to open the next", alert.key
            )
            return
        group = workflow.get_external_workflow_handle(group_id)
        trigger = ClosedTrigger(
            alert=alert,
            closed_incident=self._s.id,
            declaration=self._declaration.model_copy(
                update={"detected_at": alert.started_at, "related_incident": self._s.id}
            ),
        )
        self._send(group.signal(CLOSED_TRIGGER_SIGNAL, trigger), f"alert group {group.id}")

    # --------------------------------------------------------------- query

    @workflow.query
    def view(self) -> IncidentView:
        """The incident as responders see it: facts, deadlines and the newest timeline."""
        return presentation.view_of(self._s)

    @workflow.query
    def summary(self) -> IncidentSummary:
        """A small, bounded answer for listings and the status page."""
        return presentation.summary_of(self._s)

    def facts(self) -> IncidentFacts:
        """The incident's facts with derived deadlines."""
        return presentation.facts_of(self._s)

    # ------------------------------------------------------------- helpers

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

    # ------------------------------------------------------------ delivery

    async def _deliver(self, channel: str) -> None:
        """Deliver the outbox through ``channel``, one message at a time, forever."""
        while True:
            await workflow.wait_condition(
                lambda: self._stopping or outbox.pending_for(self._s, channel)
            )
            if self._stopping:
                return
            notification = outbox.next_for(self._s, channel)
            assert notification is not None
            self._in_flight[channel] = notification.key
            try:
                await self._deliver_one(channel, notification)
            finally:
                del self._in_flight[channel]

    async def _deliver_one(self, channel: str, notification: Notification) -> None:
        result = await delivery.deliver_via(channel, notification, self._s.refs)
        outbox.delivered(self._s, notification, channel)
        if any(self._s.refs.get(key) != value for key, value in result.refs.items()):
            self._wake = True  # a new reference can tick a checklist item
        self._s.refs.update(result.refs)
        for cause in result.failures:
            failure = f"{channel}: {notification.kind.value} notification not delivered: {cause}"
            self._record(EventKind.NOTIFICATION_FAILED, failure)
            self._page_failed(notification, failure)
        for sent in result.sent:
            self._record(EventKind.NOTIFICATION_SENT, f"{channel}: {sent}")

    def _page_failed(self, notification: Notification, failure: str) -> None:
        """Flag the incident and page the fallback targets instead, once per page."""
        if notification.kind is not NotificationKind.PAGE:
            return
        workflow.logger.error("incident %s: page not delivered: %s", self._s.id, failure)
        self._s.delivery_failed = True
        fallback = [t for t in self.policy.escalation.fallback_targets if t]
        if not fallback or notification.targets == fallback:
            return
        self._record(
            EventKind.ESCALATION_PAGE,
            f"paged the fallback {', '.join(fallback)}: a page to "
            f"{', '.join(notification.targets)} was not delivered",
        )
        self._notify(NotificationKind.PAGE, targets=fallback, text="fallback: " + notification.text)

    async def _archive(self) -> None:
        """Move the oldest timeline entries to the archive, a batch at a time, forever."""
        while True:
            await workflow.wait_condition(
                lambda: self._stopping or bool(timeline.due_for_archive(self._s))
            )
            if self._stopping:
                return
            batch = timeline.due_for_archive(self._s)
            try:
                through = await workflow.execute_activity_method(
                    TimelineArchive.archive,
                    ArchiveInput(incident_id=self._s.id, events=batch),
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=delivery.DELIVERY_RETRY,
                    cancellation_type=workflow.ActivityCancellationType.ABANDON,
                    summary=f"archive timeline entries {batch[0].seq}–{batch[-1].seq}",
                )
            except ActivityError as error:
                if isinstance(error.cause, CancelledError):
                    raise asyncio.CancelledError from None  # stopping for continue-as-new
                raise
            timeline.archived(self._s, min(through, batch[-1].seq))

    def _draft_due(self) -> bool:
        s = self._s
        return (
            s.phase is Phase.RESOLVE
            and not s.postmortem_draft_written
            and s.policy is not None
            and clocks.postmortem_required(s, s.policy)
        )

    async def _write_draft(self) -> None:
        """Once resolved with a post-mortem owed, write its draft; again when the record changes."""
        while True:
            await workflow.wait_condition(lambda: self._stopping or self._draft_due())
            if self._stopping:
                return
            await self._write_draft_once()

    async def _write_draft_once(self) -> None:
        # Marked before the write: a record change meanwhile clears the mark again,
        # and the loop writes the newer draft.
        self._s.postmortem_draft_written = True
        self._drafting = True
        try:
            # The view is bounded (newest timeline entries); the document itself is
            # rendered by the activity and never enters the history.
            await workflow.execute_activity_method(
                PostmortemDrafts.write,
                DraftInput(view=self.view()),
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=DRAFT_GIVE_UP,
                retry_policy=delivery.DELIVERY_RETRY,
                cancellation_type=workflow.ActivityCancellationType.ABANDON,
                summary="write the post-mortem draft",
            )
        except ActivityError as error:
            if isinstance(error.cause, CancelledError):
                self._s.postmortem_draft_written = False  # the next run writes it
                raise asyncio.CancelledError from None  # stopping for continue-as-new
            cause = error.cause if error.cause else error
            self._record(EventKind.NOTE, f"post-mortem draft not written: {cause}")
        finally:
            self._drafting = False
        self._wake = True

    def _publish(self) -> None:
        """Keep search attributes and current details in step with the state."""
        updates: list[SearchAttributeUpdate[Any]] = []
        for key, value in presentation.search_attribute_values(self._s):
            if key.name in self._published and self._published[key.name] == value:
                continue
            self._published[key.name] = value
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
