"""Post-mortem drafts on disk: ``<data dir>/postmortems/<ID>.md``.

The workflow hands over the incident's view (bounded: the newest timeline
entries) once the incident is resolved and owes a post-mortem; the Markdown is
rendered here, so the document never enters workflow state or history. Writing
is idempotent: the same view renders the same bytes, written to a temporary
file and renamed, so a retry or a crash midway leaves either the old draft or
the whole new one.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from pathlib import Path

from temporalio import activity

from activities.timeline_archive import TimelineArchive
from domain.documents import postmortem_draft, with_archived
from domain.incident import IncidentView
from domain.models import _Model

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


class DraftInput(_Model):
    """Input of the ``write_postmortem_draft`` activity."""

    view: IncidentView
    """The incident as its ``view`` query shows it at Resolve."""


class PostmortemDrafts:
    """Writes post-mortem drafts under ``directory`` (one file per incident).

    With the worker's ``archive``, the draft's timeline is the whole one: the
    archived entries before the ones the incident still keeps.
    """

    def __init__(self, directory: Path, *, archive: TimelineArchive | None = None) -> None:
        self._directory = directory
        self._archive = archive

    def path(self, incident_id: str) -> Path:
        """Where the draft of ``incident_id`` lives."""
        return self._directory / f"{_UNSAFE_NAME.sub('_', incident_id)[:200]}.md"

    @activity.defn(name="write_postmortem_draft")
    async def write(self, draft: DraftInput) -> str:
        """Render the draft and write it; returns the file's path."""
        path = self.path(draft.view.id)
        await asyncio.to_thread(self._write, draft, path)
        return str(path)

    def _write(self, draft: DraftInput, path: Path) -> None:
        view = draft.view
        if view.timeline_archived and self._archive is not None:
            view = with_archived(view, self._archive.read(view.id))
        _write_atomically(path, postmortem_draft(view))


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
