"""One durable timer on the earliest deadline: the clock loop of every long-lived workflow.

Incidents and action items derive their deadlines from their state and sleep on
the earliest with a single ``workflow.sleep``, re-armed only when it must be:
each workflow chooses when (see :class:`SingleTimer`), since the choice decides
which timer commands its recorded histories hold.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Protocol

from temporalio import workflow


class Deadline(Protocol):
    """A deadline to sleep until, named in the Temporal UI by its label."""

    @property
    def when(self) -> datetime:
        """When it is due."""
        ...

    @property
    def label(self) -> str:
        """The timer's summary."""
        ...


class SingleTimer:
    """The workflow's one timer.

    Args:
        keep_earlier: keep a running timer unless an earlier deadline comes up
            (a timer that fires early only wakes the loop, which arms the next);
            otherwise any change of the upcoming deadline re-arms it.
    """

    def __init__(self, *, keep_earlier: bool) -> None:
        self._keep_earlier = keep_earlier
        self._task: asyncio.Task[None] | None = None
        self._armed_for: Deadline | None = None

    def arm(self, upcoming: Deadline | None) -> None:
        """Sleep until ``upcoming`` (None: no deadline), re-arming only when needed."""
        if self._task is not None and (self._task.done() or self._stale(upcoming)):
            self._task.cancel()
            self._task = None
        if upcoming is not None and self._task is None:
            delay = max(upcoming.when - workflow.now(), timedelta(milliseconds=1))
            self._task = asyncio.create_task(workflow.sleep(delay, summary=upcoming.label))
            self._armed_for = upcoming

    def _stale(self, upcoming: Deadline | None) -> bool:
        if not self._keep_earlier:
            return upcoming != self._armed_for
        return (
            upcoming is not None
            and self._armed_for is not None
            and upcoming.when < self._armed_for.when
        )

    @property
    def fired(self) -> bool:
        """Whether the armed timer has fired."""
        return self._task is not None and self._task.done()

    def cancel(self) -> None:
        """Cancel the armed timer, if any (when the loop ends)."""
        if self._task is not None:
            self._task.cancel()
