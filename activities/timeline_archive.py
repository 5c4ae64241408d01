"""The timeline archive: where an incident's older timeline entries live.

An incident keeps only its newest timeline entries in workflow state, so its
state and history stay bounded whatever arrives. Older entries are handed to
:meth:`TimelineArchive.archive` in batches and written to one JSON-lines file
per incident, from which the full timeline (``incident show --full``, the
post-mortem) is read back. Writing is idempotent: entries carry their sequence
number and a retried batch only appends what is not there yet.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from temporalio import activity

from domain.models import TimelineEvent, _Model

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


class ArchiveInput(_Model):
    """Input of the ``archive_timeline`` activity."""

    incident_id: str
    """The incident the entries belong to."""
    events: list[TimelineEvent]
    """Entries to archive, oldest first, each with its sequence number."""


class TimelineArchive:
    """One JSON-lines file per incident under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._locks: dict[str, asyncio.Lock] = {}

    def path(self, incident_id: str) -> Path:
        """The file holding ``incident_id``'s archived entries."""
        return self._directory / f"{_UNSAFE_NAME.sub('_', incident_id)[:200]}.jsonl"

    @activity.defn(name="archive_timeline")
    async def archive(self, batch: ArchiveInput) -> int:
        """Append the entries not archived yet; returns the highest sequence number stored."""
        lock = self._locks.setdefault(batch.incident_id, asyncio.Lock())
        async with lock:
            return await asyncio.to_thread(self._append, batch)

    def _append(self, batch: ArchiveInput) -> int:
        path = self.path(batch.incident_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_line(path)
        stored = _last_seq(path)
        fresh = [event for event in batch.events if event.seq > stored]
        if fresh:
            with path.open("a", encoding="utf-8") as file:
                for event in fresh:
                    file.write(event.model_dump_json() + "\n")
                file.flush()
        return max([stored, *(event.seq for event in fresh)])

    def read(self, incident_id: str) -> list[TimelineEvent]:
        """Every archived entry of ``incident_id``, oldest first (empty when none)."""
        path = self.path(incident_id)
        if not path.exists():
            return []
        with path.open(encoding="utf-8") as lines:
            return [TimelineEvent.model_validate_json(line) for line in lines if line.strip()]


def _drop_torn_line(path: Path) -> None:
    """Cut a last line a crash left half-written, so appending starts on a fresh line."""
    if not path.exists():
        return
    with path.open("rb+") as file:
        content_end = file.seek(0, 2)
        if content_end == 0:
            return
        file.seek(content_end - 1)
        if file.read(1) == b"\n":
            return
        file.seek(max(0, content_end - 65536))
        tail = file.read()
        cut = tail.rfind(b"\n")
        file.truncate(content_end - len(tail) + cut + 1 if cut >= 0 else 0)


def _last_seq(path: Path) -> int:
    """Sequence number of the last complete line (a torn last line is ignored)."""
    if not path.exists():
        return 0
    with path.open("rb") as file:
        file.seek(0, 2)
        size = file.tell()
        file.seek(max(0, size - 65536))
        tail = file.read().decode("utf-8", "replace").splitlines()
    for line in reversed(tail):
        try:
            return int(json.loads(line)["seq"])
        except (ValueError, KeyError, TypeError):
            continue
    return 0
