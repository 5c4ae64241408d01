"""The incident workflow as first released (type ``IncidentWorkflow``), frozen.

It finishes incidents started before :class:`workflows.incident.IncidentWorkflow`
(type ``Incident``) took over, and is never started again. Its one flaw stays as
recorded: the ``fire-clocks-one-at-a-time`` patch is decided after the policy
local activity, so a query during the first workflow task could split the two
and leave a history that no longer replays; ``docs/operations.md`` shows the
reset that repairs such an incident. Moving the decision now would reorder the
commands of every other recorded history. Only validators changed since (names
are checked), which writes nothing to history.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.notify import Notifier
    from activities.policy import PolicyActivities
    from domain.durations import format_duration
    from domain.incident import IncidentState, IncidentSummary, IncidentView
    from domain.models import (
        INCIDENT_CLOSED_SIGNAL,
        AcknowledgeInput,
        AlertEvent,
        AlertState,
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
        SeverityInput,
        StatusUpdateInput,
        TimelineEvent,
        _Model,
        cap_text,
    )
    from domain.policy import Policy, SeverityPolicy
    from workflows.legacy import clocks_v1 as clocks
    from workflows.legacy import presentation_v1 as presentation
    from workflows.legacy import transitions_v1 as transitions
    from workflows.legacy.clocks_v1 import Clock, ClockKind
    from workflows.presentation import public_history

NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
)
SYSTEM = "system"
FIRE_CLOCKS_ONE_AT_A_TIME = "fire-clocks-one-at-a-time"
"""Patch: due clocks are re-derived after each one fires (histories before it fire a batch)."""


class IncidentInput(_Model):
    """Input of :class:`IncidentWorkflow`: a declaration, or state carried over."""

    declaration: Declaration
    """What was declared (kept for reference across runs)."""
    carried: IncidentState | None = None
    """Full state from the previous run, when continuing as new."""


class CommandRejected(ValueError):
    """A responder command that is not allowed now; the message says why."""


def _reject_if(reason: str | None) -> None:
    if reason is not None:
        raise CommandRejected(reason)


@workflow.defn(name="IncidentWorkflow")
class LegacyIncidentWorkflow:
    """Drives one incident through Detect → Investigate → Fix → Monitor → Resolve.

    Responders act through validated updates; monitoring talks through signals.
    Every deadline is derived from the state (see :mod:`workflows.clocks`) and
    waited on with a single durable timer at a time.
    """

    @workflow.init
    def __init__(self, input: IncidentInput) -> None:
        if input.carried is not None:
            self._s = input.carried
        else:
            self._s = IncidentState.declare(
                workflow.info().workflow_id, input.declaration, workflow.now()
            )
        self._wake = False
        self._delivering = False
        self._published: dict[str, object] = {}
        self._alert_group = input.declaration.alert_group
        self._group_told: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------- run

    @workflow.run
    async def run(self, input: IncidentInput) -> IncidentView:
        """Run the incident until it is closed, continuing as new when history grows."""
        if self._s.policy is None:
            self._s.policy = await workflow.execute_local_activity_method(
                PolicyActivities.current_policy,
                start_to_close_timeout=timedelta(seconds=10),
                summary="Load response policy",
            )
            self._announce_declaration()
        workflow.upsert_memo({"title": self._s.title})
        delivery = asyncio.create_task(self._deliver_notifications())
        continue_as_new = await self._run_clocks()
        await workflow.wait_condition(self._settled)
        delivery.cancel()
        if continue_as_new:
            workflow.continue_as_new(IncidentInput(declaration=input.declaration, carried=self._s))
        self._publish()
        return self.view()

    def _settled(self) -> bool:
        """Nothing in flight: no notification, no handler, no message to the alert group."""
        return (
            not self._s.outbox
            and not self._delivering
            and (self._group_told is None or self._group_told.done())
            and workflow.all_handlers_finished()
        )

    async def _run_clocks(self) -> bool:
        """Fire due deadlines and sleep until the next one; True means continue-as-new."""
        while True:
            self._fire_due_clocks()
            self._publish()
            if self._s.closed:
                return False
            info = workflow.info()
            if (
                info.is_continue_as_new_suggested()
                or info.get_current_history_length() >= self.policy.max_history_events
            ):
                return True
            armed = clocks.armed_clocks(self._s, self.policy)
            self._wake = False
            if not armed:
                await workflow.wait_condition(lambda: self._wake)
                continue
            upcoming = armed[0]
            try:
                await workflow.wait_condition(
                    lambda: self._wake,
                    timeout=max(upcoming.when - workflow.now(), timedelta(milliseconds=1)),
                    timeout_summary=upcoming.label,
                )
            except TimeoutError:
                pass

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
        if not workflow.patched(FIRE_CLOCKS_ONE_AT_A_TIME):
            for clock in clocks.armed_clocks(self._s, self.policy):
                if clock.when <= workflow.now():
                    self._fire(clock)
            return
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
        now = workflow.now()
        self._s.commander = command.commander or command.responder
        self._s.acknowledged_at = now
        self._s.phase = Phase.INVESTIGATE
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
        _reject_if(transitions.check_acknowledge(self._s))

    @workflow.update
    async def set_phase(self, command: PhaseInput) -> CommandResult:
        """Move to another phase (Resolve included)."""
        await self._ready()
        target = transitions.parse_phase(command.phase)
        assert target is not None
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
        reason = cap_text(command.reason)
        self._s.phase = Phase.DISMISSED
        self._s.dismissed_reason = reason
        self._s.resolved_at = workflow.now()
        self._s.closed = True
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
        if command.impact is not None:
            self._s.impact = cap_text(command.impact)
        if command.eta is not None:
            self._s.eta = cap_text(command.eta, 200)
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
        self._record(EventKind.NOTE, cap_text(command.text), command.responder)
        return self._result(f"note added to {self._s.id}")

    @add_note.validator
    def _validate_add_note(self, command: NoteInput) -> None:
        _reject_if(transitions.check_responder(command.responder))
        _reject_if(transitions.check_note(self._s, command.text))

    @workflow.update
    async def record_postmortem(self, command: PostmortemInput) -> CommandResult:
        """Record the post-mortem; the incident is then closed."""
        await self._ready()
        self._s.postmortem_url = cap_text(command.url, 2000) if command.url else None
        self._s.postmortem_recorded_at = workflow.now()
        self._s.closed = True
        where = f" at {self._s.postmortem_url}" if self._s.postmortem_url else ""
        self._record(
            EventKind.POSTMORTEM_RECORDED, f"post-mortem recorded{where}", command.responder
        )
        self._notify(NotificationKind.POSTMORTEM_DONE, actor=command.responder)
        self._record(EventKind.CLOSED, "incident closed")
        return self._result(f"post-mortem recorded; {self._s.id} closed")

    @record_postmortem.validator
    def _validate_record_postmortem(self, command: PostmortemInput) -> None:
        _reject_if(transitions.check_responder(command.responder))
        required = self._s.policy is not None and clocks.postmortem_required(self._s, self.policy)
        _reject_if(transitions.check_postmortem(self._s, required))

    # ------------------------------------------------------------- signals

    @workflow.signal
    async def alert_fired(self, alert: AlertEvent) -> None:
        """A monitoring alert fired (again); during Monitor this is a recurrence."""
        await self._ready()
        now = workflow.now()
        known = self._s.alerts.get(alert.key)
        summary = cap_text(alert.summary or alert.key, 500)
        if known is None:
            known = AlertState(
                key=alert.key,
                source=alert.source,
                summary=summary,
                first_at=now,
                last_at=now,
                started_at=alert.started_at,
            )
            self._s.alerts[alert.key] = known
            if alert.started_at and (
                self._s.detected_at is None or alert.started_at < self._s.detected_at
            ):
                self._s.detected_at = alert.started_at
        was_firing = known.firing and known.count > 0
        known.count += 1
        known.last_at = now
        known.summary = summary
        known.firing = True
        if not was_firing:
            self._record(EventKind.ALERT_FIRED, f"alert firing: {summary}", alert.source)
        if self._s.phase is Phase.MONITOR:
            target = Phase(self.policy.alerts.recurrence_phase)
            self._record(
                EventKind.RECURRENCE, f"recurrence during Monitor: {summary}", alert.source
            )
            self._enter(target, alert.source, "", notify=False)
            self._notify(NotificationKind.RECURRENCE, text=summary, actor=alert.source)
        self._wake = True

    @workflow.signal
    async def alert_resolved(self, alert: AlertEvent) -> None:
        """A monitoring alert recovered; when all have, the policy decides what follows."""
        await self._ready()
        known = self._s.alerts.get(alert.key)
        if known is None or not known.firing:
            return
        known.firing = False
        known.last_at = workflow.now()
        self._record(EventKind.ALERT_RESOLVED, f"alert recovered: {known.summary}", alert.source)
        self._notify(NotificationKind.ALERT_RECOVERED, text=known.summary, actor=alert.source)
        if any(state.firing for state in self._s.alerts.values()):
            return
        self._on_all_alerts_recovered(alert.source)
        self._wake = True

    def _on_all_alerts_recovered(self, source: str) -> None:
        rule = self.policy.alerts
        phase = self._s.phase
        if not phase.is_open or rule.on_all_recovered == "none":
            return
        if phase is Phase.DETECT and not rule.resolve_unacknowledged:
            self._record(
                EventKind.NOTE,
                "all alerts recovered; still waiting for a human to acknowledge",
                SYSTEM,
            )
            return
        if rule.on_all_recovered == "resolve" or phase is Phase.DETECT:
            self._resolve(source, "all alerts recovered")
        elif phase in (Phase.INVESTIGATE, Phase.FIX):
            self._enter(Phase.MONITOR, source, "all alerts recovered")

    # --------------------------------------------------------------- query

    @workflow.query
    def view(self) -> IncidentView:
        """The incident as responders see it: facts, deadlines and timeline."""
        return presentation.view_of(self._s)

    @workflow.query
    def summary(self) -> IncidentSummary:
        """A small, bounded answer for listings and the status page."""
        return IncidentSummary(
            **self.facts().model_dump(),
            declared_by=self._s.declared_by,
            source=self._s.source,
            sla_breached=self._s.sla_breached,
            closed=self._s.closed,
            public_history=public_history(self._s.timeline),
        )

    def facts(self) -> IncidentFacts:
        """The incident's facts with derived deadlines."""
        return presentation.facts_of(self._s)

    # ------------------------------------------------------------- helpers

    def _announce_declaration(self) -> None:
        s = self._s
        origin = f"declared by {s.declared_by} via {s.source}"
        if s.routing_rule:
            origin += f" (routing rule {s.routing_rule!r})"
        if s.related_incident:
            origin += f"; repeats {s.related_incident}"
        self._record(EventKind.DECLARED, f"{s.severity.value}: {s.title} — {origin}", s.declared_by)
        self._notify(
            NotificationKind.DECLARED, targets=self._announcement_targets(), actor=s.declared_by
        )

    def _announcement_targets(self) -> list[str]:
        targets = [self.policy.notifications.incidents_channel, *self._s.targets]
        return list(dict.fromkeys(target for target in targets if target))

    def _enter(self, phase: Phase, actor: str, note: str, *, notify: bool = True) -> None:
        previous = self._s.phase
        self._s.phase = phase
        if phase is Phase.MONITOR:
            self._s.marks.monitor_started_at = workflow.now()
        note = cap_text(note)
        text = f"{previous.value} → {phase.value}" + (f": {note}" if note else "")
        self._record(EventKind.PHASE_CHANGED, text, actor)
        if notify:
            self._notify(NotificationKind.PHASE_CHANGED, text=note, actor=actor)

    def _resolve(self, actor: str, note: str) -> None:
        self._enter(Phase.RESOLVE, actor, note, notify=False)
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
        handle = workflow.get_external_workflow_handle(self._alert_group)
        closed = IncidentClosed(incident_id=self._s.id, phase=self._s.phase.value)

        async def tell() -> None:
            try:
                await handle.signal(INCIDENT_CLOSED_SIGNAL, closed)
            except FailureError:
                # The group is gone (idle-completed): there is nobody left to tell.
                workflow.logger.info("alert group %s not reachable", self._alert_group)

        self._group_told = asyncio.create_task(tell())

    def _record(self, kind: EventKind, text: str, actor: str | None = SYSTEM) -> None:
        self._s.timeline.append(
            _event(at=workflow.now(), kind=kind, text=text, actor=actor, phase=self._s.phase)
        )

    def _notify(
        self,
        kind: NotificationKind,
        *,
        targets: list[str] | None = None,
        text: str = "",
        actor: str | None = SYSTEM,
    ) -> None:
        self._s.notification_seq += 1
        self._s.outbox.append(
            Notification(
                key=f"{self._s.id}/{self._s.notification_seq}",
                kind=kind,
                incident=self.facts(),
                at=workflow.now(),
                targets=[target for target in targets or [] if target],
                text=text,
                actor=actor,
            )
        )

    async def _deliver_notifications(self) -> None:
        """Deliver queued notifications in order, one activity each."""
        while True:
            await workflow.wait_condition(lambda: bool(self._s.outbox))
            notification = self._s.outbox[0]
            notification.refs = dict(self._s.refs)
            self._delivering = True
            try:
                result = await workflow.execute_activity_method(
                    Notifier.notify,
                    notification,
                    start_to_close_timeout=timedelta(seconds=30),
                    schedule_to_close_timeout=timedelta(minutes=10),
                    retry_policy=NOTIFY_RETRY,
                    summary=f"notify: {notification.kind.value} {', '.join(notification.targets)}",
                )
                self._s.refs.update(result.refs)
                for failure in result.failures:
                    self._record(EventKind.NOTIFICATION_FAILED, failure)
                for sent in result.sent:
                    self._record(EventKind.NOTIFICATION_SENT, sent)
            except ActivityError as error:
                cause = str(error.cause) if error.cause else str(error)
                self._record(
                    EventKind.NOTIFICATION_FAILED,
                    f"{notification.kind.value} notification not delivered: {cause}",
                )
            finally:
                self._s.outbox.pop(0)
                self._delivering = False

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
        workflow.set_current_details(presentation.details_of(self._s))


def _event(
    *, at: datetime, kind: EventKind, text: str, actor: str | None, phase: Phase
) -> TimelineEvent:
    return TimelineEvent(at=at, kind=kind, text=text, actor=actor, phase=phase)
