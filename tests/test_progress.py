"""The progress line and deadline states in the Temporal UI's current details (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.incident import IncidentState
from domain.models import Declaration, Phase, Severity
from domain.policy import Policy
from workflows import progress
from workflows.presentation import details_of

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
"""Declaration time; the default P1 SLAs put the ack deadline at 10:15, resolve at 14:00."""


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def incident(title: str = "Checkout returns 500s", **fields: object) -> IncidentState:
    declaration = Declaration(title=title, severity=Severity.P1, service="checkout", **fields)
    state = IncidentState.declare("INC-20261127-TEST", declaration, T0)
    state.policy = Policy()
    return state


def walk(state: IncidentState, *steps: tuple[Phase, float]) -> IncidentState:
    """Move through ``(phase, at minute)`` steps the way the workflow does."""
    for phase, at in steps:
        if state.phase is Phase.DETECT and phase is Phase.INVESTIGATE:
            state.acknowledged_at = minutes(at)
            state.commander = "alice"
        if phase in (Phase.RESOLVE, Phase.DISMISSED):
            state.resolved_at = minutes(at)
        state.move_to(phase, minutes(at))
    return state


def line(details: str) -> str:
    return details.splitlines()[1]


@pytest.mark.parametrize(
    ("steps", "now", "expected"),
    [
        (
            (),
            2,
            "Detect ● 2m → Investigate ○ → Fix ○ → Monitor ○ → Resolve ○",
        ),
        (
            ((Phase.INVESTIGATE, 3),),
            10,
            "Detect ✓ 3m → Investigate ● 7m → Fix ○ → Monitor ○ → Resolve ○",
        ),
        (
            ((Phase.INVESTIGATE, 3), (Phase.FIX, 15)),
            23,
            "Detect ✓ 3m → Investigate ✓ 12m → Fix ● 8m → Monitor ○ → Resolve ○",
        ),
        (
            ((Phase.INVESTIGATE, 3), (Phase.FIX, 15), (Phase.MONITOR, 40)),
            41.5,
            "Detect ✓ 3m → Investigate ✓ 12m → Fix ✓ 25m → Monitor ● 1m → Resolve ○",
        ),
        (
            ((Phase.INVESTIGATE, 3), (Phase.FIX, 15), (Phase.MONITOR, 40), (Phase.RESOLVE, 160)),
            160 + 60 * 24,
            "Detect ✓ 3m → Investigate ✓ 12m → Fix ✓ 25m → Monitor ✓ 2h → Resolve ● 1d",
        ),
    ],
    ids=["detect", "investigate", "fix", "monitor", "resolve-awaiting-postmortem"],
)
def test_each_phase_shows_the_whole_path_with_time_spent(
    steps: tuple[tuple[Phase, float], ...], now: float, expected: str
) -> None:
    state = walk(incident(), *steps)
    assert line(details_of(state, minutes(now))) == expected
    assert progress.path_line(state, minutes(now)) == expected


def test_a_closed_incident_ticks_resolve() -> None:
    state = walk(incident(), (Phase.INVESTIGATE, 1), (Phase.FIX, 2), (Phase.RESOLVE, 30))
    state.postmortem_recorded_at = minutes(90)
    state.closed = True
    assert line(details_of(state, minutes(90))) == (
        "Detect ✓ 1m → Investigate ✓ 1m → Fix ✓ 28m → Monitor skipped → Resolve ✓ 1h"
    )


def test_a_recurrence_shows_monitor_left_behind() -> None:
    state = walk(
        incident(), (Phase.INVESTIGATE, 1), (Phase.FIX, 5), (Phase.MONITOR, 20), (Phase.FIX, 26)
    )
    assert line(details_of(state, minutes(30))) == (
        "Detect ✓ 1m → Investigate ✓ 4m → Fix ● 19m → Monitor ↺ 6m → Resolve ○"
    )


def test_phases_gone_past_are_skipped() -> None:
    state = walk(incident(), (Phase.INVESTIGATE, 2), (Phase.RESOLVE, 9))
    assert line(details_of(state, minutes(9))) == (
        "Detect ✓ 2m → Investigate ✓ 7m → Fix skipped → Monitor skipped → Resolve ● 0s"
    )


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (((Phase.DISMISSED, 4),), "Detect ✕ 4m → Dismissed"),
        (
            ((Phase.INVESTIGATE, 3), (Phase.DISMISSED, 20)),
            "Detect ✓ 3m → Investigate ✕ 17m → Dismissed",
        ),
        (
            (
                (Phase.INVESTIGATE, 3),
                (Phase.FIX, 10),
                (Phase.INVESTIGATE, 12),
                (Phase.DISMISSED, 20),
            ),
            "Detect ✓ 3m → Investigate ✕ 15m → Fix ✓ 2m → Dismissed",
        ),
    ],
    ids=["from-detect", "from-investigate", "back-from-fix"],
)
def test_a_dismissed_incident_shows_where_it_stopped(
    steps: tuple[tuple[Phase, float], ...], expected: str
) -> None:
    state = walk(incident(), *steps)
    state.dismissed_reason = "synthetic check, *not* real"
    state.closed = True
    details = details_of(state, minutes(30))
    assert line(details) == expected
    assert "**Dismissed:** synthetic check, \\*not\\* real" in details
    assert "Ack by" not in details and "Next update" not in details


def test_slas_upcoming_while_nothing_is_due() -> None:
    details = details_of(incident(), minutes(11))
    assert "**Ack by:** 2026-11-27 10:15:00 UTC (in 4m)" in details
    assert "**Resolve by:** 2026-11-27 14:00:00 UTC (in 3h 49m)" in details
    assert "**Next update:** 2026-11-27 10:15:00 UTC (in 4m)" in details
    assert details.endswith("_As of 2026-11-27 10:11:00 UTC_")


def test_slas_met() -> None:
    state = walk(incident(), (Phase.INVESTIGATE, 14), (Phase.FIX, 20), (Phase.RESOLVE, 200))
    details = details_of(state, minutes(200))
    assert "**Ack by:** 2026-11-27 10:15:00 UTC (met)" in details
    assert "**Resolve by:** 2026-11-27 14:00:00 UTC (met)" in details
    assert "**Post-mortem due:** 2026-11-29 13:20:00 UTC (in 2d)" in details
    assert "Next update" not in details
    state.postmortem_recorded_at = minutes(300)
    assert "**Post-mortem due:** 2026-11-29 13:20:00 UTC (met)" in details_of(state, minutes(300))


def test_slas_missed() -> None:
    state = incident()
    assert "**Ack by:** 2026-11-27 10:15:00 UTC (missed)" in details_of(state, minutes(15))
    state.marks.pages_sent = 1  # paged: missed, even if someone acknowledges now
    walk(state, (Phase.INVESTIGATE, 16))
    assert "**Ack by:** 2026-11-27 10:15:00 UTC (missed)" in details_of(state, minutes(16))
    state.sla_breached = True
    details = details_of(state, minutes(241))
    assert "**Resolve by:** 2026-11-27 14:00:00 UTC (missed)" in details
    assert "**SLA breached**" in details
    walk(state, (Phase.RESOLVE, 300))
    state.postmortem_recorded_at = minutes(300 + 49 * 60)
    late = details_of(state, minutes(300 + 49 * 60))
    assert "**Post-mortem due:** 2026-11-29 15:00:00 UTC (missed)" in late


def test_an_acknowledgement_after_the_deadline_is_missed() -> None:
    state = walk(incident(), (Phase.INVESTIGATE, 16))
    assert "**Ack by:** 2026-11-27 10:15:00 UTC (missed)" in details_of(state, minutes(20))


def test_an_overdue_stakeholder_update_is_due() -> None:
    assert "**Next update:** 2026-11-27 10:15:00 UTC (due)" in details_of(incident(), minutes(16))


def test_without_a_moment_the_latest_change_counts() -> None:
    state = walk(incident(), (Phase.INVESTIGATE, 3))
    state.timeline.clear()
    assert "_As of 2026-11-27 10:03:00 UTC_" in details_of(state)


def test_untrusted_text_is_escaped_and_bounded() -> None:
    hostile = "[click](https://evil.example) **bold** <img src=x> " + "#" * 5000
    state = incident(title=hostile, commander="`rm -rf` " + "_" * 5000)
    details = details_of(state, minutes(1))
    assert "[click]" not in details and "\\[click\\]\\(https://evil\\.example\\)" in details
    assert "\\<img src=x\\>" in details and "\\`rm \\-rf\\`" in details
    assert len(details) < 2000
    assert len(details.splitlines()) == 6


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59.9, "59s"), (60, "1m"), (3599, "59m"), (3600, "1h"), (3900, "1h 5m"),
     (86400, "1d"), (86400 * 2 + 3 * 3600 + 59, "2d 3h"), (-5, "0s")],
)  # fmt: skip
def test_durations_are_short(seconds: float, text: str) -> None:
    assert progress.duration(seconds) == text
