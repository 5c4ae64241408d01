"""Monitoring alerts joining an incident: signals handled synchronously, tracked keys
bounded, flapping counted, late triggers handed back to the alert group."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain import launch
    from domain.durations import format_duration
    from domain.models import (
        AlertBatch,
        AlertEvent,
        AlertState,
        EventKind,
        NotificationKind,
        Phase,
        cap_text,
    )
    from workflows import (
        timeline,
    )
    from workflows.incident_core import (
        CLOSED_TRIGGER_SIGNAL,
        ClosedTrigger,
        IncidentCore,
    )

MAX_TRACKED_ALERTS = 100
"""Alert keys an incident tracks one by one; later keys (an alert storm) are counted."""


class IncidentAlerts(IncidentCore):
    """The alert signals and how they move the incident."""

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
