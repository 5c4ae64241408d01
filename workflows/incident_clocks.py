"""The incident's clocks firing: escalation pages, SLA breaches, stakeholder updates and
nudges, the Monitor window, post-mortem and review reminders, settled alerts."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.durations import format_duration
    from domain.models import (
        EventKind,
        NotificationKind,
        Phase,
    )
    from workflows import (
        clocks,
    )
    from workflows.clocks import Clock, ClockKind
    from workflows.incident_core import (
        SYSTEM,
        IncidentCore,
    )


class IncidentClocks(IncidentCore):
    """What each due deadline does (the deadlines themselves are :mod:`workflows.clocks`)."""

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
        # Every step that came due since the last page is paged now, in one message: a
        # worker or server outage must not skip the first levels of the chain.
        first = marks.pages_sent
        last = clocks.latest_due_page(self._s, self.policy, workflow.now())
        levels = self.policy.escalation.levels
        names: list[str] = []
        targets: list[str] = []
        for step in range(first, last + 1):
            cycle, index = divmod(step, len(levels))
            names.append(f"level {index + 1}/{len(levels)}, round {cycle + 1}")
            targets += levels[index].targets
        targets = list(dict.fromkeys(targets))
        marks.pages_sent = last + 1
        text = f"escalation {'; '.join(names)}"
        if len(names) > 1:
            text += f" ({len(names)} steps came due together)"
        self._record(EventKind.ESCALATION_PAGE, f"paged {', '.join(targets)} ({text})", SYSTEM)
        self._notify(NotificationKind.PAGE, targets=targets, text=text)

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
