"""The incident's background work: delivering the outbox per channel, archiving the
timeline, writing the post-mortem draft."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    CancelledError,
)

with workflow.unsafe.imports_passed_through():
    from activities.postmortems import DraftInput, PostmortemDrafts
    from activities.timeline_archive import ArchiveInput, TimelineArchive
    from domain.models import (
        EventKind,
        Notification,
        NotificationKind,
        Phase,
    )
    from workflows import (
        clocks,
        delivery,
        outbox,
        presentation,
        timeline,
    )
    from workflows.incident_core import (
        IncidentCore,
    )
    from workflows.lanes import Lane, next_turn

DRAFT_GIVE_UP = timedelta(minutes=10)
"""Writing the post-mortem draft is given up after this (recorded; the CLI still prints it)."""


class IncidentBackground(IncidentCore):
    """Long-running tasks the run starts and stops (they resume after continue-as-new)."""

    def _make_lanes(self) -> None:
        """One lane per channel, then the archive and the draft: the dispatch order."""
        self._lanes = {
            f"deliver:{name}": Lane(partial(outbox.pending_for, self._s, name))
            for name in self._s.channels
        }
        self._lanes["archive"] = Lane(partial(timeline.archive_due, self._s))
        self._lanes["draft"] = Lane(self._draft_due)

    async def _next_turn(self, lane: Lane) -> bool:
        return await next_turn(lane, dispatched=self._dispatched, stopping=self._is_stopping)

    def _is_stopping(self) -> bool:
        return self._stopping

    async def _deliver(self, channel: str) -> None:
        """Deliver the outbox through ``channel``, one message at a time, forever."""
        lane = self._lanes[f"deliver:{channel}"]
        while await self._next_turn(lane):
            notification = outbox.next_for(self._s, channel)
            if notification is None:
                continue
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
        lane = self._lanes["archive"]
        while await self._next_turn(lane):
            batch = timeline.due_for_archive(self._s)
            if not batch:
                continue
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
        lane = self._lanes["draft"]
        while await self._next_turn(lane):
            if self._draft_due():
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
                DraftInput(view=presentation.view_of(self._s)),
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
