"""Documents at their worst sizes: 500 action items and 5,000 timeline events (issue 9).

Run from the repository root::

    python -m benchmarks.postmortem_draft [--items 500] [--events 5000] [--rounds 5]

Builds the incident view the workflow hands the draft activity (the newest
``workflows.timeline.KEPT`` entries, the rest from the timeline archive joined
back as the worker does), with every text at its cap and full of Markdown, then
renders the incident document and the post-mortem draft. Prints the slowest
render of each, the view's payload size (what goes into the activity input,
against Temporal's 2 MiB payload limit) and the documents' sizes. Exits 1 when
a render takes 2 s or more, or the payload reaches 2 MiB.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, date, datetime, timedelta

from domain.checklists import checklists_from
from domain.documents import ActionItemRow, incident_document, postmortem_draft, with_archived
from domain.incident import IncidentView
from domain.models import MAX_TEXT, EventKind, IncidentRecord, Phase, Severity, TimelineEvent
from domain.policy import Policy
from workflows.timeline import KEPT

TARGET_SECONDS = 2.0
PAYLOAD_LIMIT = 2 * 1024 * 1024
HOSTILE = "| *bold* [link](http://x) <b>html</b> `code` # heading\n- item "


def _timeline(count: int, start: datetime) -> list[TimelineEvent]:
    kinds = [
        EventKind.NOTE,
        EventKind.ALERT_FIRED,
        EventKind.UPDATE_POSTED,
        EventKind.PHASE_CHANGED,
    ]
    phases = [Phase.DETECT, Phase.INVESTIGATE, Phase.FIX, Phase.MONITOR]
    return [
        TimelineEvent(
            at=start + timedelta(seconds=seq),
            kind=kinds[seq % len(kinds)],
            text=(HOSTILE * 30)[:300],
            actor=f"responder-{seq % 7}",
            phase=phases[min(seq * len(phases) // count, len(phases) - 1)],
            seq=seq + 1,
        )
        for seq in range(count)
    ]


def _view(events: int) -> tuple[IncidentView, list[TimelineEvent]]:
    start = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    timeline = _timeline(events, start)
    kept, archived = timeline[-KEPT:], timeline[:-KEPT]
    view = IncidentView(
        id="INC-20261127-BENC",
        title=(HOSTILE * 10)[:300],
        severity=Severity.P0,
        phase=Phase.RESOLVE,
        service="checkout",
        commander="bob",
        declared_at=start,
        acknowledged_at=start + timedelta(minutes=4),
        resolved_at=start + timedelta(seconds=events),
        timeline=kept,
        timeline_archived=len(archived),
        record=IncidentRecord(
            root_cause=(HOSTILE * 100)[:MAX_TEXT],
            resolution=(HOSTILE * 100)[:MAX_TEXT],
            users_affected="12%",
            services_down=[f"service-{n}" for n in range(20)],
        ),
        checklists=checklists_from(Policy().checklists),
    )
    return view, archived


def _items(count: int) -> list[ActionItemRow]:
    return [
        ActionItemRow(
            action=(HOSTILE * 3)[:200],
            owner=f"@owner-{n % 40}",
            due=date(2026, 12, 1) + timedelta(days=n % 30),
            status="⏳ open",
        )
        for n in range(count)
    ]


def main() -> int:
    """Render both documents ``--rounds`` times and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    view, archived = _view(args.events)
    items = _items(args.items)
    payload = len(view.model_dump_json().encode())
    slowest = {"incident document": 0.0, "post-mortem draft": 0.0}
    sizes: dict[str, int] = {}
    for _ in range(args.rounds):
        began = time.perf_counter()
        whole = with_archived(view, archived)
        document = incident_document(whole, action_items=items)
        slowest["incident document"] = max(
            slowest["incident document"], time.perf_counter() - began
        )
        began = time.perf_counter()
        whole = with_archived(view, archived)
        draft = postmortem_draft(whole, action_items=items)
        slowest["post-mortem draft"] = max(
            slowest["post-mortem draft"], time.perf_counter() - began
        )
        sizes = {"incident document": len(document), "post-mortem draft": len(draft)}

    print(f"{args.events} timeline events ({len(archived)} archived), {args.items} action items")
    print(f"view payload to the draft activity: {payload / 1024:.1f} KiB (limit 2048 KiB)")
    failed = payload >= PAYLOAD_LIMIT
    for name, seconds in slowest.items():
        verdict = "ok" if seconds < TARGET_SECONDS else "MISSED"
        failed |= seconds >= TARGET_SECONDS
        print(
            f"{name}: slowest of {args.rounds} renders {seconds * 1000:.0f} ms "
            f"(target < {TARGET_SECONDS:.0f} s, {verdict}); {sizes[name] / 1024:.0f} KiB"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
