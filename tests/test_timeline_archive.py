"""The timeline archive keeps what the incident moves out of its state, once each."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from activities.timeline_archive import ArchiveInput, TimelineArchive
from domain.models import EventKind, NoteInput, Phase, TimelineEvent
from domain.policy import Policy
from starters.cli import app
from tests.conftest import new_worker
from tests.helpers import declare, view
from tests.test_cli import base_env
from workflows import timeline
from workflows.incident import IncidentWorkflow


def _events(first: int, last: int) -> list[TimelineEvent]:
    at = datetime(2026, 11, 27, tzinfo=UTC)
    return [
        TimelineEvent(at=at, kind=EventKind.NOTE, text=f"n{seq}", phase=Phase.DETECT, seq=seq)
        for seq in range(first, last + 1)
    ]


async def test_a_retried_or_overlapping_batch_is_stored_once(tmp_path: Path) -> None:
    archive = TimelineArchive(tmp_path)
    assert await archive.archive(ArchiveInput(incident_id="INC-1", events=_events(1, 50))) == 50
    assert await archive.archive(ArchiveInput(incident_id="INC-1", events=_events(1, 50))) == 50
    assert await archive.archive(ArchiveInput(incident_id="INC-1", events=_events(40, 90))) == 90
    assert [e.seq for e in archive.read("INC-1")] == list(range(1, 91))


async def test_a_torn_last_line_is_cut_before_appending(tmp_path: Path) -> None:
    archive = TimelineArchive(tmp_path)
    await archive.archive(ArchiveInput(incident_id="INC-2", events=_events(1, 3)))
    path = archive.path("INC-2")
    path.write_bytes(path.read_bytes() + b'{"at": "2026-11-27T00:00:00Z", "ki')  # a crash
    await archive.archive(ArchiveInput(incident_id="INC-2", events=_events(1, 5)))
    assert [e.seq for e in archive.read("INC-2")] == [1, 2, 3, 4, 5]


async def test_show_full_joins_the_archive_and_the_kept_timeline(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    notes = timeline.KEPT + timeline.ARCHIVE_BATCH + 10
    async with new_worker(
        dev_env.client, policy=Policy(), archive_dir=data_dir / "timelines"
    ) as worker:
        handle = await declare(dev_env.client, worker)
        for n in range(notes):
            await handle.execute_update(
                IncidentWorkflow.add_note, NoteInput(responder="bob", text=f"note {n}")
            )
        for _ in range(100):
            kept = await view(handle)
            if kept.timeline_archived:
                break
            await asyncio.sleep(0.05)
        env = base_env(tmp_path) | {
            "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": dev_env.client.namespace,
            "INCIDENT_DATA_DIR": str(data_dir),
        }
        full = await asyncio.to_thread(
            CliRunner().invoke, app, ["show", handle.id, "--full", "--json"], env=env
        )
        elsewhere = await asyncio.to_thread(
            CliRunner().invoke,
            app,
            ["show", handle.id, "--full"],
            env=env | {"INCIDENT_DATA_DIR": str(tmp_path / "elsewhere")},
        )
        await handle.terminate(reason="test finished")

    assert (
        kept.timeline_archived > 0 and len(kept.timeline) <= timeline.KEPT + timeline.ARCHIVE_BATCH
    )
    assert full.exit_code == 0, full.output
    entries = json.loads(full.stdout)["timeline"]
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert [e["text"] for e in entries if e["kind"] == "note"] == [
        f"note {n}" for n in range(notes)
    ]
    assert elsewhere.exit_code == 1 and "timeline archive" in elsewhere.stderr
