"""The action-item workflow: one follow-up of an incident, alive until done or dropped.

Its workflow ID is the action ID (``INC-20261127-3A7X-A2``) and it outlives the
incident's own workflow. Every clock is derived from the state and the
``[actions]`` policy (:func:`armed_clocks`): the owner is reminded
``remind_before`` the due date and told when it passes, the IC and management
hear ``escalate_after`` later, and the IC is reminded of the open item every
``digest_every``. Marks keyed by the due date keep each from firing twice,
also across continue-as-new; editing the due date re-arms them.

Messages go through the same per-channel ``deliver_via`` activity as the
incident's, from a small outbox of their own, exactly once per key
(``<action id>/<seq>``). Listings read only visibility: the ``Action*`` search
attributes and the memo.

With ``[actions.jira] project`` set on a worker that has Jira credentials, the
item also gets one Jira issue (:mod:`workflows.jira_export`), in the background: a
Jira outage delays only the issue, never a reminder.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.policy import PolicyActivities
    from domain import search_attributes as sa
    from domain.actions import (
        ACTION_CHANNELS,
        ACTION_WORKFLOW_TYPE,
        MAX_NOTE,
        MAX_TITLE,
        OUTBOX_CAP,
        ActionDone,
        ActionEdit,
        ActionItemInput,
        ActionResult,
        ActionState,
        ActionStatus,
        ActionWontdo,
        check_edit,
        check_jira_done,
        check_open,
        check_reason,
        clamp,
        next_digest_at,
        normalize_owner,
    )
    from domain.durations import format_duration
    from domain.models import (
        IncidentFacts,
        Notification,
        NotificationKind,
    )
    from domain.policy import ActionsPolicy, JiraPolicy
    from workflows import delivery, lanes
    from workflows.history import history_full
    from workflows.jira_export import export_to_jira
    from workflows.lanes import Lane, next_turn
    from workflows.single_timer import SingleTimer

SINGLE_DISPATCHER = "action-item-single-dispatcher"
"""Patch: the clock loop hands out deliveries in a fixed order and commands run without
a condition pass once the policy is loaded (:mod:`workflows.lanes` says why); items
started before it keep waking their delivery workers by condition."""


class ClockKind(StrEnum):
    """What an action item's timer is for (ties fire in this order)."""

    REMIND = "remind"
    OVERDUE = "overdue"
    ESCALATE = "escalate"
    DIGEST = "digest"


@dataclass(frozen=True)
class Clock:
    """One armed deadline."""

    when: datetime
    kind: ClockKind
    label: str


_ORDER = list(ClockKind)


def armed_clocks(state: ActionState) -> list[Clock]:
    """Every deadline still to fire, earliest first (none once done or dropped)."""
    policy = state.policy
    if policy is None or state.status is not ActionStatus.OPEN:
        return []
    due, marks, who = state.due, state.marks, state.owner
    clocks: list[Clock] = []
    if marks.reminded_for != due:
        clocks.append(Clock(due - policy.remind_before, ClockKind.REMIND, f"remind {who}"))
    if marks.overdue_for != due:
        clocks.append(Clock(due, ClockKind.OVERDUE, f"due date of {state.id}"))
    if marks.escalated_for != due:
        escalate = due + policy.escalate_after
        clocks.append(Clock(escalate, ClockKind.ESCALATE, f"escalate {state.id}"))
    digest = next_digest_at(state)
    if digest is not None:
        clocks.append(Clock(digest, ClockKind.DIGEST, f"remind the IC of {state.id}"))
    clocks.sort(key=lambda clock: (clock.when, _ORDER.index(clock.kind)))
    return clocks


class CommandRejected(ValueError):
    """A command that is not allowed now; the message says why."""


def _reject_if(reason: str | None) -> None:
    if reason is not None:
        raise CommandRejected(reason)


def _recheck(reason: str | None) -> None:
    if reason is not None:
        raise ApplicationError(reason, type="CommandRejected", non_retryable=True)


@workflow.defn(name=ACTION_WORKFLOW_TYPE)
class ActionItemWorkflow:
    """Keeps one action item alive: reminders, overdue notice, escalation, IC digest."""

    @workflow.init
    def __init__(self, input: ActionItemInput) -> None:
        if input.carried is not None:
            self._s = input.carried
        else:
            self._s = ActionState(
                id=workflow.info().workflow_id,
                incident_id=input.incident_id,
                title=clamp(input.title, MAX_TITLE),
                owner=normalize_owner(input.owner),
                due=input.due,
                added_by=input.added_by,
                added_at=workflow.now(),
                commander=input.commander,
                severity=input.severity,
                incident_title=clamp(input.incident_title, MAX_TITLE),
                incident_phase=input.incident_phase,
                incident_declared_at=input.incident_declared_at,
            )
        self._input = input
        self._wake = False
        self._stopping = False
        self._in_flight: dict[str, str] = {}
        self._published: dict[str, object] = {}
        self._dispatched = workflow.patched(SINGLE_DISPATCHER)
        self._lanes: dict[str, Lane] = {}

    @workflow.run
    async def run(self, input: ActionItemInput) -> ActionState:
        """Fire clocks until the item is done or dropped, continuing as new when history grows."""
        if self._s.channels is None:
            setup = await workflow.execute_local_activity_method(
                PolicyActivities.worker_setup,
                start_to_close_timeout=timedelta(seconds=10),
                summary="Load action-item policy and channels",
            )
            self._s.policy = setup.policy.actions
            self._s.max_history_events = input.max_history_events or setup.policy.max_history_events
            self._s.max_history_bytes = setup.policy.max_history_bytes
            self._s.channels = [name for name in setup.channels if name in ACTION_CHANNELS]
        self._lanes = {name: Lane(partial(self._pending_for, name)) for name in self._s.channels}
        workers = [asyncio.create_task(self._deliver(name)) for name in self._s.channels]
        jira = self._policy.jira
        if jira.project and self._s.jira_key is None and not self._s.jira_error:
            workers.append(asyncio.create_task(self._export_to_jira(jira)))
        continue_as_new = await self._run_clocks()
        if not continue_as_new:
            await workflow.wait_condition(self._drained)
        self._stopping = True
        for worker in workers:
            worker.cancel()
        await workflow.wait_condition(
            lambda: all(worker.done() for worker in workers) and workflow.all_handlers_finished()
        )
        if continue_as_new:
            workflow.continue_as_new(input.model_copy(update={"carried": self._s}))
        self._publish()
        return self._s

    @property
    def _policy(self) -> ActionsPolicy:
        assert self._s.policy is not None, "the policy is loaded before any clock fires"
        return self._s.policy

    def _history_full(self) -> bool:
        return history_full(
            max_events=self._s.max_history_events, max_bytes=self._s.max_history_bytes
        )

    def _closed(self) -> bool:
        return self._s.status is not ActionStatus.OPEN

    def _drained(self) -> bool:
        return not self._s.outbox and workflow.all_handlers_finished()

    async def _run_clocks(self) -> bool:
        """Fire due clocks, hand out deliveries and sleep until the next clock; True means
        continue-as-new. With the dispatcher, a closed item keeps handing out deliveries
        until drained."""
        timer = SingleTimer(keep_earlier=False)
        dispatched = self._dispatched
        try:
            while True:
                self._fire_due_clocks()
                self._publish()
                if self._closed() and (not dispatched or self._drained()):
                    return False
                if self._history_full():
                    return True
                armed = armed_clocks(self._s)
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
                        or (dispatched and self._closed() and self._drained())
                    )
                )
        finally:
            timer.cancel()

    # -------------------------------------------------------------- clocks

    def _fire_due_clocks(self) -> None:
        while True:
            armed = armed_clocks(self._s)
            if not armed or armed[0].when > workflow.now():
                return
            self._fire(armed[0])

    def _fire(self, clock: Clock) -> None:
        s, now = self._s, workflow.now()
        if clock.kind is ClockKind.REMIND:
            s.marks.reminded_for = s.due
            if now < s.due:  # already due: the overdue notice says it instead
                self._notify(NotificationKind.ACTION_REMINDER, [s.owner])
        elif clock.kind is ClockKind.OVERDUE:
            s.marks.reminded_for = s.marks.overdue_for = s.due
            self._notify(NotificationKind.ACTION_OVERDUE, [s.owner])
        elif clock.kind is ClockKind.ESCALATE:
            s.marks.escalated_for = s.due
            late = format_duration(self._policy.escalate_after)
            self._notify(
                NotificationKind.ACTION_ESCALATED,
                [s.commander or "", *self._policy.escalate_to, s.owner],
                suffix=f"; still open {late} after its due date",
            )
        else:
            # One reminder per wake-up, however long the worker was away.
            periods = int((now - s.added_at) / self._policy.digest_every)
            s.marks.digests_sent = max(periods, s.marks.digests_sent + 1)
            self._notify(NotificationKind.ACTION_DIGEST, [s.commander or s.added_by])

    # ------------------------------------------------------------- updates

    async def _ready(self) -> None:
        if self._dispatched and self._s.policy is not None:
            return  # no condition pass: the command ends before the dispatcher wakes
        await workflow.wait_condition(lambda: self._s.policy is not None)

    def _result(self, message: str) -> ActionResult:
        self._wake = True
        return ActionResult(
            action_id=self._s.id, status=self._s.status, message=message, on_time=self._s.on_time
        )

    @workflow.update
    async def done(self, command: ActionDone) -> ActionResult:
        """Mark the item done; records when, and whether it was on time."""
        await self._ready()
        _recheck(check_open(self._s) or check_jira_done(self._s, command.jira_issue))
        s, now = self._s, workflow.now()
        s.status, s.completed_at, s.on_time = ActionStatus.DONE, now, now <= s.due
        s.note = clamp(command.note, MAX_NOTE)
        when = "on time" if s.on_time else f"late (was due {s.deadline_text})"
        self._notify(
            NotificationKind.ACTION_DONE,
            [s.commander or "", s.owner],
            suffix=f"; done {when} by {command.responder}",
            actor=command.responder,
        )
        return self._result(f"{s.id} done {when}")

    @done.validator
    def _validate_done(self, command: ActionDone) -> None:
        _reject_if(check_open(self._s) or check_jira_done(self._s, command.jira_issue))

    @workflow.update
    async def wontdo(self, command: ActionWontdo) -> ActionResult:
        """Drop the item with a reason."""
        await self._ready()
        _recheck(check_open(self._s) or check_reason(command.reason))
        s = self._s
        s.status, s.completed_at = ActionStatus.DROPPED, workflow.now()
        s.reason = clamp(command.reason, MAX_NOTE)
        self._notify(
            NotificationKind.ACTION_DROPPED,
            [s.commander or "", s.owner],
            suffix=f"; dropped by {command.responder}: {s.reason}",
            actor=command.responder,
        )
        return self._result(f"{s.id} dropped")

    @wontdo.validator
    def _validate_wontdo(self, command: ActionWontdo) -> None:
        _reject_if(check_open(self._s) or check_reason(command.reason))

    @workflow.update
    async def edit(self, command: ActionEdit) -> ActionResult:
        """Change title, owner or due date; a new due date re-arms every clock."""
        await self._ready()
        _recheck(check_edit(self._s, command, workflow.now()))
        s = self._s
        changes: list[str] = []
        if command.title is not None:
            s.title = clamp(command.title, MAX_TITLE)
            changes.append("title")
        if command.owner is not None:
            s.owner = normalize_owner(command.owner)
            changes.append(f"owner {s.owner}")
        if command.due is not None:
            s.due = command.due
            changes.append(f"due {s.deadline_text}")
        s.edits += 1
        return self._result(f"{s.id}: {', '.join(changes)}")

    @edit.validator
    def _validate_edit(self, command: ActionEdit) -> None:
        _reject_if(check_edit(self._s, command, workflow.now()))

    @workflow.query
    def view(self) -> ActionState:
        """The item's state (for tests and debugging; listings use visibility)."""
        return self._s

    # ------------------------------------------------------------ messages

    def _facts(self) -> IncidentFacts:
        s = self._s
        return IncidentFacts(
            id=s.incident_id,
            title=s.incident_title or s.incident_id,
            severity=s.severity,
            phase=s.incident_phase,
            commander=s.commander,
            declared_at=s.incident_declared_at or s.added_at,
        )

    def _notify(
        self,
        kind: NotificationKind,
        targets: list[str],
        *,
        suffix: str = "",
        actor: str = "system",
    ) -> None:
        s = self._s
        s.notification_seq += 1
        text = f"{s.id} “{s.title}” (owner {s.owner}, due {s.deadline_text}){suffix}"
        notification = Notification(
            key=f"{s.id}/{s.notification_seq}",
            kind=kind,
            incident=self._facts(),
            at=workflow.now(),
            targets=list(dict.fromkeys(target for target in targets if target)),
            text=text,
            actor=actor,
            priority=True,
            pending=list(s.channels or []),
        )
        if not notification.pending:
            return
        s.outbox.append(notification)
        if len(s.outbox) > OUTBOX_CAP:
            victim = next((n for n in s.outbox if n.key not in self._in_flight.values()), None)
            if victim is not None:
                s.outbox.remove(victim)
                workflow.logger.warning("%s: outbox full, dropped %s", s.id, victim.key)
        self._wake = True

    def _pending_for(self, channel: str) -> bool:
        return any(channel in n.pending for n in self._s.outbox)

    def _is_stopping(self) -> bool:
        return self._stopping

    async def _deliver(self, channel: str) -> None:
        """Deliver the outbox through ``channel``, oldest first, until stopped."""
        lane = self._lanes[channel]
        while await next_turn(lane, dispatched=self._dispatched, stopping=self._is_stopping):
            notification = next((n for n in self._s.outbox if channel in n.pending), None)
            if notification is None:
                continue
            self._in_flight[channel] = notification.key
            try:
                await self._deliver_one(channel, notification)
            finally:
                del self._in_flight[channel]

    async def _deliver_one(self, channel: str, notification: Notification) -> None:
        result = await delivery.deliver_via(channel, notification, self._s.refs)
        if channel in notification.pending:
            notification.pending.remove(channel)
        if not notification.pending and notification in self._s.outbox:
            self._s.outbox.remove(notification)
        self._s.refs.update(result.refs)
        for failure in result.failures:
            workflow.logger.error("%s: %s not delivered: %s", channel, notification.key, failure)

    # ----------------------------------------------------------------- jira

    async def _export_to_jira(self, jira: JiraPolicy) -> None:
        await export_to_jira(self._s, jira)
        self._wake = True  # publish the key (or the failure)

    # ----------------------------------------------------------- visibility

    def _publish(self) -> None:
        """Keep the search attributes and memo listings read in step with the state."""
        s = self._s
        values: list[tuple[Any, Any]] = [
            (sa.ACTION_INCIDENT, s.incident_id),
            (sa.ACTION_OWNER, sa.keyword(s.owner)),
            (sa.ACTION_STATUS, s.status.value),
            (sa.ACTION_DUE_AT, int(s.due.timestamp())),
        ]
        updates: list[SearchAttributeUpdate[Any]] = []
        for key, value in values:
            if self._published.get(key.name) != value:
                self._published[key.name] = value
                updates.append(key.value_set(value))
        if updates:
            workflow.upsert_search_attributes(updates)
        memo = memo_of(s)
        if self._published.get("memo") != memo:
            self._published["memo"] = memo
            workflow.upsert_memo(memo)
        details = f"**{s.status.value}** · owner {s.owner} · due {s.deadline_text}"
        if s.jira_key is not None:
            details += f" · Jira [{s.jira_key}]({s.jira_url})"
        elif s.jira_error:
            details += " · Jira export failed"
        workflow.set_current_details(details)


def memo_of(state: ActionState) -> dict[str, Any]:
    """What listings show besides the search attributes."""
    return {
        "title": state.title,
        "due": state.due.isoformat(),
        "commander": state.commander,
        "incident_title": state.incident_title,
        "completed_at": state.completed_at.isoformat() if state.completed_at else None,
        "on_time": state.on_time,
        # Only once there is one, so items without Jira keep the memo they always had.
        **({"jira_key": state.jira_key, "jira_url": state.jira_url} if state.jira_key else {}),
    }
