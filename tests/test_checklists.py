"""Phase checklists and the post-mortem review meeting, on the time-skipping server:
checklists posted on entering each phase, ticked by responders and by what the system
did, refused with a reason when the item is unknown; review attendees reminded."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from domain.checklists import ChecklistItem, ChecklistPolicy, ItemSpec, find_item
from domain.models import (
    AcknowledgeInput,
    CheckInput,
    Phase,
    PhaseInput,
    PostmortemInput,
    RecordInput,
    ReviewInput,
)
from domain.policy import policy_from_mapping
from starters.cli.documents_store import DocumentError, keep_document
from tests.conftest import Outbox, new_worker
from tests.helpers import Handle, declare, view
from workflows.incident import IncidentWorkflow

POLICY = policy_from_mapping(
    {
        "severities": {"P1": {"ack_sla": "1h", "monitor_window": "1h"}},
        "postmortem": {"deadline": "48h", "reminder_before": "24h"},
        "checklists": {
            "resolve": [
                {"text": "Update status page", "auto": "status_page"},
                {"text": "Schedule post-mortem", "auto": "postmortem_scheduled"},
                {"text": "Thank the team"},
            ]
        },
    }
)


def test_items_are_found_by_number_or_unique_text() -> None:
    items = [ChecklistItem(text="Check recent deployments"), ChecklistItem(text="Review logs")]
    assert find_item(items, "2") == (1, None)
    assert find_item(items, "review LOGS") == (1, None)
    assert find_item(items, "deploy") == (0, None)
    assert find_item(items, "3") == (None, "no item 3; the list has 2")
    assert find_item(items, "e") == (None, "'e' matches items 1, 2; give the number")
    assert find_item(items, "coffee") == (None, "no item matches 'coffee'")
    assert find_item(items, " ") == (None, "name the item by its number or its text")


def test_policy_overrides_a_phase_and_keeps_the_others() -> None:
    policy = ChecklistPolicy(fix=[ItemSpec(text="Roll back")])
    assert [item.text for item in policy.for_phase(Phase.FIX)] == ["Roll back"]
    assert "Test hypothesis" in [item.text for item in policy.for_phase(Phase.INVESTIGATE)]
    with pytest.raises(ValidationError, match="at most 30 items"):
        ChecklistPolicy(fix=[ItemSpec(text=f"step {n}") for n in range(31)])
    with pytest.raises(ValidationError):
        ChecklistPolicy.model_validate({"fix": [{"text": "x", "auto": "magic"}]})


async def _check(handle: Handle, item: str, phase: str | None = None) -> str:
    result = await handle.execute_update(
        IncidentWorkflow.check, CheckInput(responder="carol", item=item, phase=phase)
    )
    return result.message


async def _rejected(handle: Handle, item: str, phase: str | None = None) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as rejected:
        await _check(handle, item, phase)
    return str(rejected.value.cause)


async def _phase(handle: Handle, name: str) -> None:
    await handle.execute_update(IncidentWorkflow.set_phase, PhaseInput(responder="bob", phase=name))


async def test_checklists_are_posted_ticked_and_left_open_items_kept(
    ts_env: WorkflowEnvironment, outbox: Outbox
) -> None:
    client = ts_env.client
    async with new_worker(client, policy=POLICY, channels=[outbox.channel]) as worker:
        handle = await declare(client, worker)
        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bob"))
        detect = (await view(handle)).checklists[Phase.DETECT]
        ticked = {item.text: item.done_by for item in detect if item.done}
        assert ticked == {
            "Declare severity level": "system (declared P1)",
            "Assign IC (Incident Commander)": "system (bob acknowledged as IC)",
        }

        assert "ticked 'Check recent deployments'" in await _check(handle, "1")
        assert "already ticked by carol" in await _check(handle, "recent deployments")
        assert await _rejected(handle, "coffee") == (
            "CommandRejected: Investigate checklist: no item matches 'coffee'; "
            "another phase's item needs --phase"
        )
        assert "give the number" in await _rejected(handle, "check")
        assert await _check(handle, "verify user reports", phase="detect")
        assert "unknown phase 'later'" in await _rejected(handle, "1", phase="later")

        await _phase(handle, "fix")
        await handle.execute_update(
            IncidentWorkflow.set_record, RecordInput(responder="bob", fix_strategy="rollback")
        )
        await _phase(handle, "monitor")
        await _phase(handle, "resolve")
        await ts_env.sleep(timedelta(seconds=5))  # let the deliveries run
        final = await view(handle)

    fix = {item.text: item.done_by for item in final.checklists[Phase.FIX] if item.done}
    assert fix == {
        "Choose a fix strategy: rollback, hotfix, scale, disable or redirect": (
            "system (fix strategy rollback recorded)"
        ),
        "Deploy to production": "system (entered Monitor)",
    }
    resolve = {item.text: item.done_by for item in final.checklists[Phase.RESOLVE] if item.done}
    assert resolve == {
        "Update status page": "system (the built-in status page shows it resolved)"
    }, "no status-page channel: the HTTP service's /status reads the incident itself"
    notes = [e.text for e in final.timeline if "checklist: ticked" in e.text]
    assert "Investigate checklist: ticked 'Check recent deployments'" in notes
    assert [e.actor for e in final.timeline if "'Verify user reports'" in e.text] == ["carol"]

    posted = {r["kind"]: r for r in outbox.records(handle.id)}
    assert posted["declared"]["checklist"][:2] == [
        "1. Check monitoring alerts",
        "2. Verify user reports",
    ]
    assert "Declare severity level" not in "\n".join(posted["declared"]["checklist"])
    fix_entry = next(
        r
        for r in outbox.records(handle.id)
        if r["kind"] == "phase_changed" and r["incident"]["phase"] == "Fix"
    )
    assert fix_entry["checklist"][0].startswith("1. Choose a fix strategy")
    assert "Checklist (Fix), tick with: incident check" in fix_entry["rendered"]


async def test_review_meeting_reminds_attendees_and_is_refused_in_the_past(
    ts_env: WorkflowEnvironment, outbox: Outbox
) -> None:
    client = ts_env.client
    async with new_worker(client, policy=POLICY, channels=[outbox.channel]) as worker:
        handle = await declare(client, worker)
        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bob"))
        await _phase(handle, "resolve")
        now = (await view(handle)).resolved_at
        assert now is not None
        with pytest.raises(WorkflowUpdateFailedError) as past:
            await handle.execute_update(
                IncidentWorkflow.schedule_review,
                ReviewInput(responder="bob", at=now - timedelta(hours=1)),
            )
        assert "is in the past" in str(past.value.cause)

        meeting = now + timedelta(hours=6)
        await handle.execute_update(
            IncidentWorkflow.schedule_review,
            ReviewInput(responder="bob", at=meeting, attendees=["@alice", "@carol"]),
        )
        scheduled = await view(handle)
        resolve = {i.text: i.done_by for i in scheduled.checklists[Phase.RESOLVE] if i.done}
        assert "Schedule post-mortem" in resolve

        await ts_env.sleep(timedelta(hours=5, minutes=1))
        reminded = [r for r in outbox.records(handle.id) if r["kind"] == "postmortem_review"]
        assert len(reminded) == 1
        assert reminded[0]["targets"] == ["@alice", "@carol", "bob"]
        assert reminded[0]["at"] >= (meeting - timedelta(hours=1)).isoformat().replace("+00:00", "")

        # The 24 h reminder of the post-mortem names the meeting.
        await ts_env.sleep(timedelta(hours=19))
        reminder = [r for r in outbox.records(handle.id) if r["kind"] == "postmortem_reminder"]
        assert len(reminder) == 1 and "Review meeting: " in reminder[0]["rendered"]
        assert "with @alice, @carol" in reminder[0]["rendered"]


async def test_the_final_document_is_kept_by_path_and_hash(
    ts_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    source = tmp_path / "postmortem.md"
    source.write_text("# Post-Mortem\n\nAll good now.\n")
    kept = keep_document(source, "INC-X", tmp_path / "data")
    assert kept == keep_document(source, "INC-X", tmp_path / "data"), "same file, same copy"
    assert Path(kept.path).read_bytes() == source.read_bytes() and kept.size == 29
    with pytest.raises(DocumentError, match="cannot read"):
        keep_document(tmp_path / "missing.md", "INC-X", tmp_path / "data")

    async with new_worker(ts_env.client, policy=POLICY) as worker:
        handle = await declare(ts_env.client, worker)
        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bob"))
        await _phase(handle, "resolve")
        await handle.execute_update(
            IncidentWorkflow.record_postmortem, PostmortemInput(responder="bob", document=kept)
        )
        final = await view(handle)
    assert final.postmortem_document == kept and final.closed
    recorded = next(e for e in final.timeline if e.text.startswith("post-mortem recorded"))
    assert f"sha256 {kept.sha256[:12]}" in recorded.text
