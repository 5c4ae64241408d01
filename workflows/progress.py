"""An incident's way through its phases and where each deadline stands, as short text.

Pure functions of the state and a moment (the workflow passes ``workflow.now()``),
shown in the Temporal UI's current details. Relative times ("in 4m") are true at
that moment only, which is why the details also say when they were written.
"""

from __future__ import annotations

from datetime import datetime

from domain.incident import IncidentState, PhaseClock
from domain.models import Phase
from workflows.transitions import DISMISSABLE

PATH: tuple[Phase, ...] = (
    Phase.DETECT,
    Phase.INVESTIGATE,
    Phase.FIX,
    Phase.MONITOR,
    Phase.RESOLVE,
)
"""The phases every incident is meant to go through, in order."""

DONE = "✓"
"""A phase the incident went through."""
CURRENT = "●"
"""The phase the incident is in."""
AHEAD = "○"
"""A phase not reached yet."""
BACK = "↺"
"""A later phase the incident reached, then left for an earlier one (a recurrence)."""
SKIPPED = "skipped"
"""An earlier phase the incident went past without entering it."""
STOPPED = "✕"
"""The phase a dismissed incident was dismissed from."""


def duration(seconds: float) -> str:
    """A short duration: ``45s``, ``3m``, ``1h 5m``, ``2d 3h`` (rounded down)."""
    total = max(int(seconds), 0)
    if total < 60:
        return f"{total}s"
    minutes = total // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"


def stopped_in(clock: PhaseClock) -> Phase:
    """The phase a dismissed incident was dismissed from.

    Only Detect and Investigate can be dismissed, and nothing leads back to Detect,
    so it is the later of the two the incident entered.
    """
    reached = [phase for phase in DISMISSABLE if phase in clock.first_entered]
    if not reached:
        return Phase.DETECT
    return max(reached, key=lambda phase: clock.first_entered[phase])


def path_line(state: IncidentState, now: datetime) -> str:
    """The whole path with each phase's state and time spent, e.g.
    ``Detect ✓ 3m → Investigate ✓ 12m → Fix ● 8m → Monitor ○ → Resolve ○``.

    A dismissed incident shows the phases it reached, the one it stopped in
    (``✕``) and ``Dismissed``.
    """
    clock = state.phases()
    if state.phase is Phase.DISMISSED:
        return _dismissed_line(state, clock, now)
    here = PATH.index(state.phase)
    steps: list[str] = []
    for index, phase in enumerate(PATH):
        reached = phase in clock.first_entered
        spent = duration(clock.spent(phase, state.phase, now))
        if phase is state.phase:
            mark = DONE if state.closed else CURRENT
            steps.append(f"{phase.value} {mark} {spent}")
        elif reached and index < here:
            steps.append(f"{phase.value} {DONE} {spent}")
        elif reached:
            steps.append(f"{phase.value} {BACK} {spent}")
        elif index < here:
            steps.append(f"{phase.value} {SKIPPED}")
        else:
            steps.append(f"{phase.value} {AHEAD}")
    return " → ".join(steps)


def _dismissed_line(state: IncidentState, clock: PhaseClock, now: datetime) -> str:
    stopped = stopped_in(clock)
    steps = []
    for phase in PATH:
        if phase not in clock.first_entered:
            continue
        mark = STOPPED if phase is stopped else DONE
        steps.append(f"{phase.value} {mark} {duration(clock.spent(phase, state.phase, now))}")
    steps.append(Phase.DISMISSED.value)
    return " → ".join(steps)


def deadline_status(
    deadline: datetime, *, now: datetime, done_at: datetime | None, missed: bool = False
) -> str:
    """``met``, ``missed`` or ``in 4m``: where a deadline stands at ``now``.

    Args:
        deadline: when it falls due.
        now: the moment the answer is for.
        done_at: when what it asks for happened, if it has.
        missed: already known to be missed (a page went out, the breach was recorded).
    """
    if missed:
        return "missed"
    if done_at is not None:
        return "met" if done_at <= deadline else "missed"
    if now >= deadline:
        return "missed"
    return f"in {duration((deadline - now).total_seconds())}"


def due_status(due: datetime, *, now: datetime) -> str:
    """``in 4m`` for a recurring deadline such as the next stakeholder update, or ``due``."""
    return "due" if now >= due else f"in {duration((due - now).total_seconds())}"
