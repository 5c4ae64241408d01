"""The incident document and the post-mortem draft, rendered from a fixed incident view.

Golden files (``tests/golden/*.md``) hold the whole expected Markdown; after an
intended change, regenerate them with ``UPDATE_GOLDEN=1 pytest tests/test_documents.py``
and read the diff.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from domain.checklists import ChecklistItem
from domain.comms import downtime
from domain.documents import (
    NO_ACTION_ITEMS,
    NOT_RECORDED,
    ActionItemRow,
    attendees,
    figures,
    incident_document,
    postmortem_draft,
    with_archived,
)
from domain.incident import IncidentView, ReviewMeeting
from domain.models import (
    AlertState,
    EventKind,
    FixStrategy,
    IncidentRecord,
    Phase,
    Severity,
    TimelineEvent,
)

GOLDEN = Path(__file__).parent / "golden"
T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
HOSTILE = "# Heading? | pipe [link](http://evil.example) <script>x</script> `code` *bold*"


def _at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _event(minutes: float, kind: EventKind, text: str, actor: str, phase: Phase) -> TimelineEvent:
    return TimelineEvent(at=_at(minutes), kind=kind, text=text, actor=actor, phase=phase)


def resolved_p1() -> IncidentView:
    """A P1 from declaration to Resolve, with a full record and some hostile text."""
    timeline = [
        _event(0, EventKind.DECLARED, "P1: Checkout returns 500s", "alice", Phase.DETECT),
        _event(0, EventKind.ALERT_FIRED, "alert firing: 5xx", "alertmanager", Phase.DETECT),
        _event(3, EventKind.ACKNOWLEDGED, "acknowledged; IC is bob", "bob", Phase.INVESTIGATE),
        _event(12, EventKind.NOTE, HOSTILE, "carol", Phase.INVESTIGATE),
        _event(20, EventKind.PHASE_CHANGED, "Investigate → Fix", "bob", Phase.FIX),
        _event(31, EventKind.NUDGE, "nudged bob for a stakeholder update", "system", Phase.FIX),
        _event(35, EventKind.UPDATE_POSTED, "rolling back v42", "bob", Phase.FIX),
        _event(45, EventKind.PHASE_CHANGED, "Fix → Monitor", "bob", Phase.MONITOR),
        _event(
            46, EventKind.RECORD_CHANGED, "record: fix strategy → rollback", "dave", Phase.MONITOR
        ),
        _event(100, EventKind.PHASE_CHANGED, "Monitor → Resolve", "bob", Phase.RESOLVE),
        _event(100, EventKind.RESOLVED, "resolved; post-mortem due", "bob", Phase.RESOLVE),
        _event(
            100,
            EventKind.NOTIFICATION_SENT,
            "email: customer e-mail sent to 2 recipients (downtime 1h 48m)",
            "system",
            Phase.RESOLVE,
        ),
    ]
    for seq, event in enumerate(timeline, start=1):
        event.seq = seq
    return IncidentView(
        id="INC-20261127-AB12",
        title="Checkout returns 500s | *all* EU",
        severity=Severity.P1,
        phase=Phase.RESOLVE,
        service="checkout",
        commander="bob",
        declared_at=T0,
        acknowledged_at=_at(3),
        resolved_at=_at(100),
        ack_deadline=_at(5),
        resolve_deadline=_at(240),
        update_interval_seconds=1800,
        postmortem_due_at=_at(100 + 48 * 60),
        status_page_url="https://status.example.com",
        declared_by="alice",
        source="cli",
        alerts=[
            AlertState(key="k1", source="alertmanager", summary="5xx", first_at=T0, last_at=T0)
        ],
        timeline=timeline,
        refs={
            "slack.channel_name": "inc-20261127-ab12-checkout",
            "statuspage.incident_id": "sp-1",
            "statuspage.status": "resolved",
        },
        record=IncidentRecord(
            users_affected="12%",
            services_down=["api", "checkout|payments"],
            data_loss=False,
            revenue_impact=1200.0,
            customer_complaints=4,
            root_cause="# Not a heading\n- not a list item\n\nA bad config in deploy v42.\n"
            "| a | b |",
            root_cause_key="deploy/bad-config",
            resolution="Rolled back to v41 [then](http://x) verified.",
            fix_strategy=FixStrategy.ROLLBACK,
            impact_started=_at(-8),
        ),
        review=ReviewMeeting(
            at=_at(100 + 24 * 60), attendees=["@bob", "@carol|x"], scheduled_by="bob"
        ),
        checklists={
            Phase.DETECT: [
                ChecklistItem(text="Assign IC", done_at=_at(3), done_by="system (bob)"),
                ChecklistItem(text="Verify user reports"),
            ],
            Phase.RESOLVE: [ChecklistItem(text=HOSTILE)],
        },
    )


def open_unrecorded() -> IncidentView:
    """An incident just declared: nothing recorded yet."""
    return IncidentView(
        id="INC-20261127-CD34",
        title="Search is slow",
        severity=Severity.P2,
        phase=Phase.DETECT,
        declared_at=T0,
        declared_by="grafana",
        source="grafana",
        timeline=[_event(0, EventKind.DECLARED, "P2: Search is slow", "grafana", Phase.DETECT)],
    )


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"differs from {path} (see module doc)"


def _headings(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("#")]


def test_incident_document_matches_its_golden_file() -> None:
    _golden("incident_document.md", incident_document(resolved_p1()))


def test_postmortem_draft_matches_its_golden_file() -> None:
    _golden("postmortem_draft.md", postmortem_draft(resolved_p1()))


def recorded() -> IncidentView:
    """A real incident's view, saved by ``python -m tests.record_histories
    incident_full_lifecycle`` from the workflow (escalation, severity change, recurrence,
    record, checklist tick, review meeting, post-mortem reminder and deadline)."""
    return IncidentView.model_validate_json((GOLDEN / "recorded_view.json").read_text())


def test_documents_of_a_recorded_incident_match_their_golden_files() -> None:
    view = recorded()
    document, draft = incident_document(view), postmortem_draft(view)
    _golden("recorded_incident_document.md", document)
    _golden("recorded_postmortem_draft.md", draft)
    declared = view.declared_at
    assert f"**Started:** {declared - timedelta(minutes=8):%Y-%m-%d %H:%M} UTC  " in document
    assert "**Revenue Impact:** $1,200  " in document
    assert "A bad config in deploy 4411 \\| \\*not\\* a \\[link\\](http://x)" in document
    assert "- [x] Immediate fix deployed" in document and "- [x] Post-mortem scheduled" in document
    assert "**Attendees:** @bob, @alice, @dave  " in draft, "everyone who acted, no timers"
    assert "**Review Meeting:** " in draft and "with @amy" in draft
    assert "| Time to detect | 8 min | under 5 min |" in draft
    assert "- ❌ acknowledged in 70 min against a 15 min SLA" in draft
    assert "- ❌ 2 escalation pages before acknowledgement" in draft
    assert "- ❌ 1 recurrence during Monitor" in draft
    assert "Fix: Implement fix (code, config, infrastructure)" not in draft, "ticked by bob"
    assert "- [ ] Fix: Test fix in staging" in draft
    kinds = {event.kind for event in view.timeline}
    for kind in (EventKind.ESCALATION_PAGE, EventKind.RECURRENCE, EventKind.SEVERITY_CHANGED):
        assert kind in kinds, kind


def test_incident_document_has_every_section_of_the_template() -> None:
    document = incident_document(resolved_p1())
    assert _headings(document) == [
        "# Incident: INC-20261127-AB12 - Checkout returns 500s \\| \\*all\\* EU",
        "## Impact",
        "## Timeline",
        "## Root Cause",
        "## Resolution",
        "## Action Items",
        "### Follow-ups",
        "## Communication",
        "### Internal",
        "### External",
        "## Lessons Learned",
    ]
    assert "**Status:** Resolved  " in document
    assert "**Started:** 2026-11-27 09:52 UTC  " in document
    assert "**Duration:** 108 min  " in document
    assert "**Revenue Impact:** $1,200  " in document
    assert "**Services Down:** api, checkout\\|payments  " in document
    assert "- **2026-11-27 10:20** - Root cause identified" in document
    assert "- **2026-11-27 10:45** - Fix deployed (rollback)" in document
    assert "- [x] Immediate fix deployed\n- [ ] Monitoring added" in document
    assert "- [x] Post-mortem scheduled\n- [x] Customer communication sent" in document
    assert "- Slack: #inc-20261127-ab12-checkout" in document
    assert "- Customer email: sent (email: customer e-mail sent to 2 recipients" in document


def test_postmortem_draft_has_every_section_figures_and_facts() -> None:
    draft = postmortem_draft(resolved_p1())
    assert _headings(draft) == [
        "# Post-Mortem: INC-20261127-AB12 - Checkout returns 500s \\| \\*all\\* EU",
        "## Summary",
        "## Impact",
        "## Timeline",
        "## Response Figures",
        "## Root Cause",
        "### Contributing Factors",
        "## Resolution",
        "## What Went Well",
        "## What Went Poorly",
        "## Action Items",
        "### Checklist Items Left Open",
        "## Lessons Learned",
        "## Prevention",
    ]
    assert "- [ ] Detect: Verify user reports\n- [ ] Resolve: \\# Heading?" in draft
    assert "Assign IC" not in draft
    assert "**Review Meeting:** 2026-11-28 11:40 UTC with @bob, @carol\\|x  " in draft
    assert "**Attendees:** @bob, @alice, @carol, @dave  " in draft
    assert "| Time to detect | 8 min | under 5 min |" in draft
    assert "| Time to acknowledge | 3 min | within 5 min (met) |" in draft
    assert "| Time to mitigate | 53 min | — |" in draft
    assert "| Time to resolve | 108 min | within 240 min (met) |" in draft
    assert "- ✅ acknowledged in 3 min against a 5 min SLA" in draft
    assert "- ✅ resolved within the 240 min resolve SLA (100 min after declaration)" in draft
    assert "- ❌ 1 stakeholder update late (the commander was nudged)" in draft
    assert "- ❌ detected 8 min after impact started (target: under 5 min)" in draft
    assert NO_ACTION_ITEMS in draft
    assert draft.count("✍️ **To fill in:**") == 4


def test_user_text_cannot_break_the_structure() -> None:
    for markdown in (incident_document(resolved_p1()), postmortem_draft(resolved_p1())):
        assert "[link](" not in markdown and "<script>" not in markdown
        assert not re.search(r"(?<!\\)\]\(", markdown), "a live link from user text"
        assert "\\# Heading? \\| pipe \\[link\\]" in markdown or "# Heading?" not in markdown
        for line in markdown.splitlines():
            assert not re.match(r"^- not a list", line), "a list item from user text"
            if line.startswith("|"):
                assert line.count("|") - line.count("\\|") == 4, line


def test_a_missed_sla_and_late_acknowledgement_are_poorly() -> None:
    view = resolved_p1().model_copy(
        update={"acknowledged_at": _at(9), "resolve_deadline": _at(88), "sla_breached": True}
    )
    draft = postmortem_draft(view)
    assert "- ❌ acknowledged in 9 min against a 5 min SLA" in draft
    assert "- ❌ resolve SLA missed by 12 min" in draft
    assert "| Time to resolve | 108 min | within 88 min (missed by 12 min) |" in draft


def test_unknown_fields_show_as_not_recorded() -> None:
    document = incident_document(open_unrecorded())
    for label in ("Users Affected", "Services Down", "Data Loss", "Revenue Impact"):
        assert f"**{label}:** {NOT_RECORDED}  " in document
    assert "**Resolved:** not recorded  " in document
    assert "**Duration:** ongoing  " in document
    assert "**Incident Commander:** not recorded  " in document
    assert "- **not recorded** - Root cause identified" in document
    for line in document.splitlines():
        assert not re.fullmatch(r"\*\*[^*]+:\*\*\s*", line), f"blank field: {line!r}"
    draft = postmortem_draft(open_unrecorded())
    assert "**Attendees:** not recorded  " in draft, "alert sources are not attendees"
    assert "| Time to detect | not measurable | under 5 min |" in draft


def test_action_items_hook_renders_an_escaped_table() -> None:
    rows = [ActionItemRow("Add | monitoring", "alice", date(2026, 12, 3), "⏳ open")]
    draft = postmortem_draft(resolved_p1(), action_items=rows)
    assert "| Add \\| monitoring | @alice | 2026-12-03 | ⏳ open |" in draft
    assert NO_ACTION_ITEMS not in draft
    document = incident_document(resolved_p1(), action_items=rows)
    assert "- [ ] Add \\| monitoring (@alice, due 2026-12-03)" in document


def test_archived_entries_are_counted_and_moments_not_guessed() -> None:
    view = resolved_p1()
    kept = [e for e in view.timeline if e.kind is not EventKind.PHASE_CHANGED]
    view = view.model_copy(update={"timeline": kept, "timeline_archived": 250})
    draft = postmortem_draft(view)
    assert "_250 older entries are in the timeline archive" in draft
    assert "- **in the timeline archive** - Fix deployed" in incident_document(view)


def test_archived_entries_join_before_the_kept_ones_once() -> None:
    view = resolved_p1()
    archived_part, kept = view.timeline[:5], view.timeline[5:]
    partial = view.model_copy(update={"timeline": kept, "timeline_archived": 5})
    joined = with_archived(partial, [*archived_part, kept[0]])
    assert [e.seq for e in joined.timeline] == [e.seq for e in view.timeline]
    assert joined.timeline_archived == 0
    assert postmortem_draft(joined) == postmortem_draft(view)


def test_thousands_of_entries_render_in_one_pass() -> None:
    event = _event(1, EventKind.ALERT_FIRED, "alert firing: x" * 50, "alertmanager", Phase.FIX)
    view = resolved_p1().model_copy(update={"timeline": [event] * 5000})
    draft = postmortem_draft(view)
    assert draft.count("alert fired (alertmanager)") == 5000
    assert attendees(view) == ["bob"]


@pytest.mark.parametrize("impact_started", [None, _at(-30)])
def test_customer_downtime_counts_from_a_human_impact_start(
    impact_started: datetime | None,
) -> None:
    view = resolved_p1()
    view.impact_started = impact_started
    expected = timedelta(minutes=100) if impact_started is None else timedelta(minutes=130)
    assert downtime(view) == expected
    assert figures(view).time_to_acknowledge == timedelta(minutes=3)
