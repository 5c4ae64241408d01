"""``incident show --full``: the kept timeline joined with the archived one."""

from __future__ import annotations

from pathlib import Path

from activities.timeline_archive import TimelineArchive
from domain.incident import IncidentView
from starters.cli.session import CliError


def with_archived_timeline(view: IncidentView, archive_dir: Path) -> IncidentView:
    """``view`` with every archived entry before the kept ones (each entry once).

    Raises:
        CliError: when entries were archived but the archive is not readable here.
    """
    if view.timeline_archived == 0:
        return view
    archived = TimelineArchive(archive_dir).read(view.id)
    if not archived:
        raise CliError(
            f"{view.id} has {view.timeline_archived} older timeline entries in the timeline "
            f"archive, but {archive_dir} holds none: run this where the worker's "
            "INCIDENT_DATA_DIR is (or mount it)"
        )
    kept_from = view.timeline[0].seq if view.timeline else None
    older = [event for event in archived if kept_from is None or event.seq < kept_from]
    return view.model_copy(update={"timeline": [*older, *view.timeline]})
