"""Turns for a workflow's background workers, handed out in a fixed order by one dispatcher.

Temporal SDK Core does not always cut a history into activations the same way live
and on replay: a workflow task that completed with no commands, followed at once by
another task, is taken for a heartbeat when a worker replays the run from scratch and
merged with the next one (temporalio/sdk-rust#1146, #1606). Coroutines woken by
``workflow.wait_condition`` in one pass run in the order in which they registered
their conditions, and that order differs between the merged and the split
activations, so their commands can come out in another order on replay (TMPRL1100:
seen as a delivery activity and a timer cancel swapping places).

So background workers do not wake themselves. Each waits in its :class:`Lane` for a
turn; the dispatcher issues its own commands first and then gives turns to the lanes
with work, in the order the lanes were made. Every command of an activation then
comes out in program order, however the activation was cut.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from temporalio import workflow


class Lane:
    """One background worker's place in the dispatch order.

    A lane is idle from the moment it is made, before its worker's task first runs,
    so the dispatcher's first pass already hands out the work that is waiting.

    Args:
        has_work: whether the worker has something to do now (read by the dispatcher).
    """

    def __init__(self, has_work: Callable[[], bool]) -> None:
        self.has_work = has_work
        self._turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._taken = False

    async def turn(self) -> None:
        """Wait until the dispatcher gives this worker its next turn (a turn given before
        the worker first asked is taken at once)."""
        if self._taken:
            self._turn = asyncio.get_running_loop().create_future()
            self._taken = False
        await self._turn
        self._taken = True

    @property
    def idle(self) -> bool:
        """Whether the worker waits for a turn (and has not been given one yet)."""
        return not self._turn.done()

    def give(self) -> None:
        """Give the waiting worker its turn; it runs once the dispatcher yields."""
        if not self._turn.done():
            self._turn.set_result(None)


def any_due(lanes: Iterable[Lane]) -> bool:
    """Whether a waiting lane has work (the dispatcher wakes for it, as a worker waiting
    on its own condition would)."""
    return any(lane.idle and lane.has_work() for lane in lanes)


def dispatch(lanes: Iterable[Lane]) -> None:
    """Give a turn to every waiting lane that has work, in the lanes' order."""
    for lane in lanes:
        if lane.idle and lane.has_work():
            lane.give()


async def next_turn(lane: Lane, *, dispatched: bool, stopping: Callable[[], bool]) -> bool:
    """Wait for a worker's next piece of work; False when its run is stopping.

    With ``dispatched`` the worker waits for the dispatcher; otherwise (runs started
    before their workflow had a dispatcher) for its own condition, as those runs did.
    A run cancels its workers when it stops, but a cancel that reaches an activity whose
    result has already come back is lost and the worker carries on: ``stopping`` ends
    its loop then.
    """
    if dispatched:
        if stopping():
            return False
        await lane.turn()  # cancelled when the run stops
        return not stopping()
    await workflow.wait_condition(lambda: stopping() or lane.has_work())
    return not stopping()
