"""After the fire: the incident record, phase checklists, the post-mortem review meeting
and recording the post-mortem."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.checklists import find_item
    from domain.incident import (
        ReviewMeeting,
    )
    from domain.models import (
        CheckInput,
        CommandResult,
        EventKind,
        NotificationKind,
        Phase,
        PostmortemInput,
        RecordInput,
        ReviewInput,
        cap_text,
    )
    from workflows import (
        checklist,
        clocks,
        record,
        transitions,
    )
    from workflows.incident_core import (
        CommandRejected,
        IncidentCore,
        recheck,
        reject_if,
    )


class IncidentFollowUp(IncidentCore):
    """Updates that document the incident rather than drive its phases."""

    @workflow.update
    async def record_postmortem(self, command: PostmortemInput) -> CommandResult:
        """Record the post-mortem; the incident is then closed."""
        await self._ready()
        recheck(self._check_postmortem())
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
        reject_if(transitions.check_responder(command.responder))
        reject_if(self._check_postmortem())
        document = command.document
        if document is not None and (
            len(document.path) > 1000 or len(document.sha256) != 64 or document.size < 0
        ):
            raise CommandRejected("the post-mortem file reference is malformed")

    @workflow.update
    async def schedule_review(self, command: ReviewInput) -> CommandResult:
        """Schedule the post-mortem review meeting; attendees are reminded before it."""
        await self._ready()
        recheck(transitions.check_review(self._s, command, workflow.now()))
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
        reject_if(transitions.check_responder(command.responder))
        reject_if(transitions.check_review(self._s, command, workflow.now()))

    @workflow.update
    async def check(self, command: CheckInput) -> CommandResult:
        """Tick a checklist item (by its number or text) of the current or a named phase."""
        await self._ready()
        phase, index = self._checked_item(command, rejected=recheck)
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
        reject_if(transitions.check_responder(command.responder))
        if self._s.policy is not None:
            self._checked_item(command, rejected=reject_if)

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

    def _check_postmortem(self) -> str | None:
        required = self._s.policy is not None and clocks.postmortem_required(self._s, self.policy)
        return transitions.check_postmortem(self._s, required)

    @workflow.update
    async def set_record(self, command: RecordInput) -> CommandResult:
        """Fill in or correct the incident record; one timeline entry names the changes."""
        await self._ready()
        recheck(transitions.check_record(self._s, command, workflow.now()))
        changes = record.apply(self._s.record, command)
        if not changes:
            return self._result(f"record of {self._s.id} unchanged")
        self._record(EventKind.RECORD_CHANGED, "record: " + "; ".join(changes), command.responder)
        # A draft already written is written again with the new record.
        self._s.postmortem_draft_written = False
        return self._result(f"record of {self._s.id} updated: {len(changes)} field(s)")

    @set_record.validator
    def _validate_set_record(self, command: RecordInput) -> None:
        reject_if(transitions.check_responder(command.responder))
        reject_if(transitions.check_record(self._s, command, workflow.now()))
