"""Golden figures: a hand-built November 2026 whose every figure is worked out below.

Times are UTC; ``D(day, h, m)`` is a moment of November 2026. The listing is read
on 5 December (``AS_OF``), so every due date of November has passed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.metrics import (
    ActionRow,
    IncidentRow,
    MetricsInput,
    Period,
    Unmeasured,
    compute,
    stat,
    time_to_detect,
)
from domain.models import Phase, Severity
from domain.policy import policy_from_mapping

AS_OF = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
NOVEMBER = Period.month("2026-11")


def D(day: int, hour: int, minute: int = 0, *, month: int = 11) -> datetime:  # noqa: N802
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def incident(id_: str, severity: str, declared: datetime, **facts: Any) -> IncidentRow:
    facts.setdefault("phase", Phase.RESOLVE)
    facts.setdefault("source", "cli")
    return IncidentRow(
        id=id_, title=id_, severity=Severity(severity), declared_at=declared, **facts
    )


MIN = 60
HOUR = 3600

INCIDENTS = [
    # A, P0: alert 10 min before the declaration. TTD 600, TTA 240, TTM 2400, TTR 3600.
    incident(
        "A", "P0", D(2, 10),
        detected_at=D(2, 9, 50), acknowledged_at=D(2, 10, 4), mitigated_at=D(2, 10, 30),
        resolved_at=D(2, 10, 50), root_cause_key="db/pool",
        postmortem_due_at=D(4, 10, 50), postmortem_recorded_at=D(3, 12),
    ),
    # B, P0: the responder's impact start (11:40) wins over the alert's (11:55).
    # TTD 1200, TTA 600, TTM 2400, TTR 7200. Same key as A: a repeat of A.
    incident(
        "B", "P0", D(5, 12), source="alertmanager",
        impact_started=D(5, 11, 40), detected_at=D(5, 11, 55), acknowledged_at=D(5, 12, 10),
        mitigated_at=D(5, 12, 20), resolved_at=D(5, 13, 40), root_cause_key="db/pool",
        resolve_sla_missed=True,
        postmortem_due_at=D(7, 13, 40), postmortem_recorded_at=D(8, 9),
    ),
    # C, P1: no impact information, never acknowledged, never in Monitor.
    # TTD not measurable, TTA left out, TTM left out, TTR 3600 (from the declaration).
    incident(
        "C", "P1", D(12, 9),
        resolved_at=D(12, 10), ack_sla_missed=True, pages_sent=2,
        postmortem_due_at=D(14, 10),
    ),
    # D, P2: dismissed: in no time metric, and no repeat although it has A's key.
    incident(
        "D", "P2", D(15, 8), source="grafana", phase=Phase.DISMISSED, dismissed=True,
        detected_at=D(15, 7, 55), acknowledged_at=D(15, 8, 1), resolved_at=D(15, 8, 20),
        root_cause_key="db/pool",
    ),
    # E, P1: linked by its alert group to an October incident not in the listing.
    # TTD 120, TTA 300, TTM 1920, TTR 3720.
    incident(
        "E", "P1", D(20, 8), source="alertmanager", repeat_of="INC-20261020-OLD1",
        detected_at=D(20, 7, 58), acknowledged_at=D(20, 8, 5), mitigated_at=D(20, 8, 30),
        resolved_at=D(20, 9), postmortem_due_at=D(22, 9), postmortem_recorded_at=D(21, 9),
    ),
    # F, P3: still open (Investigate): counted, in no mean.
    incident("F", "P3", D(25, 14), phase=Phase.INVESTIGATE, acknowledged_at=D(25, 14, 30)),
    # G, P0 in October: the previous period. TTD 600, TTA 120, TTR 2400.
    incident(
        "G", "P0", D(10, 10, month=10),
        detected_at=D(10, 9, 50, month=10), acknowledged_at=D(10, 10, 2, month=10),
        resolved_at=D(10, 10, 30, month=10), root_cause_key="cache/evict",
    ),
    # H, P2: G's key 49 days later: a repeat of G. TTD 60, TTA 60, TTM 600, TTR 1200.
    incident(
        "H", "P2", D(28, 10),
        detected_at=D(28, 9, 59), acknowledged_at=D(28, 10, 1), mitigated_at=D(28, 10, 9),
        resolved_at=D(28, 10, 19), root_cause_key="cache/evict",
    ),
    # K, P3: its workflow was terminated in Fix: abandoned, neither open nor in a mean.
    incident("K", "P3", D(26, 9), phase=Phase.FIX, running=False, acknowledged_at=D(26, 9, 5)),
    # I, in July: J's key, but 125 days before J: no repeat.
    incident("I", "P3", D(1, 10, month=7), resolved_at=D(1, 11, month=7), root_cause_key="net/dns"),
    # J, P3: its alert started after the declaration: TTD not measurable; the impact
    # start is still that alert start, so TTR = 11:10 − 10:10 = 3600. TTA 60.
    incident(
        "J", "P3", D(3, 10),
        detected_at=D(3, 10, 10), acknowledged_at=D(3, 10, 1), resolved_at=D(3, 11, 10),
        root_cause_key="net/dns",
    ),
]  # fmt: skip


def item(
    id_: str, incident_id: str, status: str, due: datetime, done: datetime | None = None
) -> ActionRow:
    return ActionRow.model_validate(
        {"id": id_, "incident_id": incident_id, "status": status, "due": due, "completed_at": done}
    )


ACTIONS = [
    item("A-A1", "A", "done", D(10, 23), D(9, 12)),  # on time
    item("B-A1", "B", "done", D(12, 23), D(14, 9)),  # late
    item("C-A1", "C", "dropped", D(20, 23), D(18, 9)),  # dropped: apart
    item("E-A1", "E", "open", D(25, 23)),  # due in November, still open: missed, overdue
    item("F-A1", "F", "open", D(20, 23, month=12)),  # not yet due: December's
    item("G-A1", "G", "open", D(30, 23, month=10)),  # October's, overdue now
    item("H-A1", "H", "done", D(15, 23, month=12), D(29, 9)),  # done early: November's
]

LISTING = MetricsInput(
    incidents=INCIDENTS,
    actions=ACTIONS,
    unmeasured=[
        Unmeasured(id="INC-20261101-LGCY", seen_at=D(1, 8)),
        Unmeasured(id="INC-20261001-LGCY", seen_at=D(1, 8, month=10)),
    ],
    as_of=AS_OF,
)


def test_counts_leave_dismissed_and_open_incidents_apart() -> None:
    figures = compute(NOVEMBER, LISTING)
    overall = figures.overall
    # A B C D E F H J K were declared in November; D dismissed, F open, K abandoned.
    assert (overall.declared, overall.resolved, overall.dismissed) == (9, 6, 1)
    assert (overall.open, overall.abandoned) == (1, 1)
    assert figures.open_by_phase[Phase.INVESTIGATE] == 1
    assert sum(figures.open_by_phase.values()) == 1
    assert (overall.ack_sla_missed, overall.resolve_sla_missed) == (1, 1)  # C; B
    assert figures.unmeasured == ["INC-20261101-LGCY"]
    assert [figures.by_severity[s].declared for s in Severity] == [2, 2, 2, 3]


def test_time_metrics_cover_resolved_incidents_only() -> None:
    overall = compute(NOVEMBER, LISTING).overall
    # TTD over A B C E H J: 600, 1200, —, 120, 60, — → [60, 120, 600, 1200]
    assert overall.ttd.model_dump() == {
        "covered": 4, "left_out": 2, "mean": 1980 / 4, "median": 360, "p90": 1200,
    }  # fmt: skip
    # TTA: 240, 600, — (C never acknowledged), 300, 60, 60
    assert overall.tta.model_dump() == {
        "covered": 5, "left_out": 1, "mean": 1260 / 5, "median": 240, "p90": 600,
    }  # fmt: skip
    # TTM: 2400, 2400, —, 1920, 600, — → [600, 1920, 2400, 2400]
    assert overall.ttm.model_dump() == {
        "covered": 4, "left_out": 2, "mean": 7320 / 4, "median": 2160, "p90": 2400,
    }  # fmt: skip
    # TTR: 3600, 7200, 3600, 3720, 1200, 3600 → p90 is the 6th of 6
    assert overall.ttr.model_dump() == {
        "covered": 6, "left_out": 0, "mean": 22920 / 6, "median": 3600, "p90": 7200,
    }  # fmt: skip


def test_no_impact_information_is_not_measurable_never_zero() -> None:
    c = next(row for row in INCIDENTS if row.id == "C")
    j = next(row for row in INCIDENTS if row.id == "J")
    assert time_to_detect(c) is None
    assert time_to_detect(j) is None  # its only alert started after the declaration


def test_per_severity_and_month() -> None:
    figures = compute(NOVEMBER, LISTING)
    p0 = figures.by_severity[Severity.P0]
    assert (p0.declared, p0.ttr.covered, p0.ttr.mean) == (2, 2, (3600 + 7200) / 2)
    p1 = figures.by_severity[Severity.P1]
    assert (p1.tta.covered, p1.tta.left_out, p1.tta.mean) == (1, 1, 300)
    assert list(figures.by_month) == ["2026-11"]
    assert figures.by_month["2026-11"] == figures.overall


def test_repeats_name_what_they_repeat() -> None:
    repeats = compute(NOVEMBER, LISTING).repeats
    assert [(r.incident_id, r.repeats, r.kind, r.root_cause_key) for r in repeats] == [
        ("B", "A", "root_cause", "db/pool"),
        ("E", "INC-20261020-OLD1", "alert_group", None),
        ("H", "G", "root_cause", "cache/evict"),
    ]  # D is dismissed; J's key was last seen 125 days before (window 90 days)


def test_the_repeat_window_is_policy() -> None:
    policy = policy_from_mapping({"metrics": {"repeat_window": "130d"}})
    repeats = compute(NOVEMBER, LISTING, policy=policy).repeats
    assert ("J", "I") in [(r.incident_id, r.repeats) for r in repeats]


def test_action_items_done_late_dropped_and_overdue() -> None:
    actions = compute(NOVEMBER, LISTING).actions
    # November: A-A1 and H-A1 on time, B-A1 late, E-A1 missed; C-A1 dropped apart.
    assert (actions.done_on_time, actions.done_late, actions.missed) == (2, 1, 1)
    assert (actions.dropped, actions.pending) == (1, 0)
    assert actions.completion == 2 / 4
    assert [i.id for i in actions.dropped_items] == ["C-A1"]
    assert [(i.id, i.incident_id) for i in actions.overdue_now] == [("G-A1", "G"), ("E-A1", "E")]


def test_postmortems_on_time() -> None:
    postmortems = compute(NOVEMBER, LISTING).postmortems
    # Required: A (on time), B (late), C (missed), E (on time).
    assert (postmortems.on_time, postmortems.late, postmortems.missed) == (2, 1, 1)
    assert postmortems.rate == 0.5


def test_targets_met_or_missed() -> None:
    targets = {t.name: t for t in compute(NOVEMBER, LISTING).targets}
    assert targets["MTTR P0"].actual == 5400 and targets["MTTR P0"].status == "missed"
    assert targets["MTTR P0"].target == "< 1h"
    assert targets["MTTD"].actual == 495 and targets["MTTD"].status == "missed"
    assert (
        targets["Repeat incidents"].actual == 3 and targets["Repeat incidents"].status == "missed"
    )
    assert targets["Action items on time"].status == "missed"
    october = {t.name: t.status for t in compute(NOVEMBER.previous(), LISTING).targets}
    # G: MTTR 2400 < 3600, MTTD 600 ≥ 300, no repeats, its item missed.
    assert october == {
        "MTTR P0": "met", "MTTD": "missed", "Repeat incidents": "met",
        "Action items on time": "missed",
    }  # fmt: skip


def test_change_against_the_previous_period() -> None:
    figures = compute(NOVEMBER, LISTING, LISTING)
    assert figures.previous is not None and figures.previous.period.label == "2026-10"
    change = {c.figure: (c.current, c.previous, c.delta) for c in figures.changes}
    assert change["declared"] == (9, 1, 8)
    assert change["mttr"] == (3820, 2400, 1420)
    assert change["mttr P0"] == (5400, 2400, 3000)
    assert change["mttr P3"] == (3600, None, None)
    assert change["repeats"] == (3, 0, 3)
    assert change["action_items_on_time"] == (0.5, 0.0, 0.5)  # October: G-A1 missed


def test_filters_keep_repeats_across_severities_and_the_filtered_items() -> None:
    p0 = compute(NOVEMBER, LISTING, severity=Severity.P0)
    assert p0.overall.declared == 2
    assert [r.incident_id for r in p0.repeats] == ["B"]
    assert (p0.actions.done_on_time, p0.actions.done_late) == (1, 1)  # A-A1, B-A1
    assert [i.id for i in p0.actions.overdue_now] == ["G-A1"]  # G is a P0 too
    assert [t.name for t in p0.targets] == [
        "MTTR P0",
        "MTTD",
        "Repeat incidents",
        "Action items on time",
    ]
    grafana = compute(NOVEMBER, LISTING, service="nothing")
    assert grafana.overall.declared == 0 and grafana.overall.ttr.mean is None


def test_figures_survive_json() -> None:
    figures = compute(NOVEMBER, LISTING, LISTING)
    again = type(figures).model_validate_json(figures.model_dump_json())
    assert again == figures


def test_stat_of_nothing_and_of_one() -> None:
    assert stat([None, None]).model_dump() == {
        "covered": 0, "left_out": 2, "mean": None, "median": None, "p90": None,
    }  # fmt: skip
    assert stat([5.0]).p90 == 5.0


def test_periods() -> None:
    assert NOVEMBER.start == D(1, 0) and NOVEMBER.end == datetime(2026, 12, 1, tzinfo=UTC)
    assert Period.month("2026-01").previous().label == "2025-12"
    span = Period.between(D(20, 0), datetime(2027, 1, 10, tzinfo=UTC))
    assert span.months() == ["2026-11", "2026-12", "2027-01"]
    assert span.previous().end == span.start
    assert span.previous().end - span.previous().start == timedelta(days=51)
    with pytest.raises(ValueError, match="YYYY-MM"):
        Period.month("2026-13")
