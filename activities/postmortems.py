"""Post-mortem drafts on disk: ``<data dir>/postmortems/<ID>.md``.

The workflow hands over the incident's view (bounded: the newest timeline
entries) once the incident is resolved and owes a post-mortem; the Markdown is
rendered here, so the document never enters workflow state or history. Writing
is idempotent: the same view renders the same bytes, written to a temporary
file and renamed, so a retry or a crash midway leaves either the old draft or
the whole new one.

The action-item table is read from visibility (the incident's ``ActionItem``
workflows); with a channel that shares files (Slack), the draft is also
uploaded to the incident's channel, once per version (its file name carries a
hash of the content).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from activities.channels import FileSharer
from activities.timeline_archive import TimelineArchive
from domain.action_listing import incident_action_items
from domain.documents import ActionItemRow, postmortem_draft, with_archived
from domain.incident import IncidentView
from domain.models import _Model

log = logging.getLogger("incidents.postmortems")

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

    def __init__(
        self,
        directory: Path,
        *,
        archive: TimelineArchive | None = None,
        sharer: FileSharer | None = None,
    ) -> None:
        self._directory = directory
        self._archive = archive
        self._sharer = sharer

    def path(self, incident_id: str) -> Path:
        """Where the draft of ``incident_id`` lives."""
        return self._directory / f"{_UNSAFE_NAME.sub('_', incident_id)[:200]}.md"

    @activity.defn(name="write_postmortem_draft")
    async def write(self, draft: DraftInput) -> str:
        """Render the draft, write it and share it; returns the file's path."""
        view = draft.view
        path = self.path(view.id)
        items, unlisted = await _action_items(view.id)
        text = await asyncio.to_thread(self._write, view, items, unlisted, path)
        if self._sharer is not None:
            await self._share(view, text)
        return str(path)

    def _write(
        self, view: IncidentView, items: list[ActionItemRow], unlisted: str | None, path: Path
    ) -> str:
        if view.timeline_archived and self._archive is not None:
            view = with_archived(view, self._archive.read(view.id))
        text = postmortem_draft(view, action_items=items, action_items_unlisted=unlisted)
        _write_atomically(path, text)
        return text

    async def _share(self, view: IncidentView, text: str) -> None:
        assert self._sharer is not None
        content = text.encode("utf-8")
        version = hashlib.sha256(content).hexdigest()[:12]
        filename = f"{_UNSAFE_NAME.sub('_', view.id)[:200]}-postmortem-draft-{version}.md"
        comment = (
            f"📝 Post-mortem draft for {view.id}: check every figure and fill in the marked "
            f"sections (`incident postmortem {view.id} --draft` prints the latest)."
        )
        try:
            why_not = await self._sharer.share_file(view.refs, filename, content, comment)
        except ApplicationError as error:
            if not error.non_retryable:
                raise
            why_not = error.message
        if why_not:
            log.info("post-mortem draft of %s not shared: %s", view.id, why_not)


async def _action_items(incident_id: str) -> tuple[list[ActionItemRow], str | None]:
    """The incident's action items from visibility, or why they could not be listed."""
    try:
        client = activity.client()
    except RuntimeError:
        return [], "no Temporal client in this process"
    try:
        return await incident_action_items(client, incident_id), None
    except RPCError as error:
        return [], f"visibility answered: {error.message}"


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
