"""``incident ui``: where an incident, or the list of open incidents, is in the Temporal Web UI.

The URLs are built here without asking Temporal anything, so they print at once
and from anywhere: ``TEMPORAL_UI_URL`` (default: the embedded dev server's UI)
and the namespace of the connection settings (``TEMPORAL_NAMESPACE``).
"""

from __future__ import annotations

import re
import webbrowser
from collections.abc import Sequence
from typing import Annotated
from urllib.parse import quote

import typer

from domain import search_attributes as sa
from domain.connection import connect_config
from domain.models import Phase, Severity
from domain.settings import Settings
from starters.cli import render

RUNNING_PHASES = (Phase.DETECT, Phase.INVESTIGATE, Phase.FIX, Phase.MONITOR, Phase.RESOLVE)
"""Phases of a running incident (Resolve: waiting for its post-mortem)."""
OPEN_PHASES = tuple(phase for phase in RUNNING_PHASES if phase.is_open)
"""What "open" means without ``--phase``: responders are still working on it."""

_PLAIN_NAME = re.compile(r"[\w@.\-]+")
"""A commander name the query can quote as is (no quote or backslash to escape)."""


def _in(attribute: str, values: Sequence[str]) -> str:
    quoted = [f"'{value}'" for value in values]
    if len(quoted) == 1:
        return f"{attribute} = {quoted[0]}"
    return f"{attribute} IN ({', '.join(quoted)})"


def incidents_query(
    *,
    phases: Sequence[Phase] = (),
    severities: Sequence[Severity] = (),
    breached: bool = False,
    commander: str | None = None,
) -> str:
    """The visibility query of running incidents, open ones unless ``phases`` says otherwise.

    Only incidents set ``IncidentPhase``, so no workflow-type clause is needed: the
    query stays short enough to read in the UI's filter box.

    Raises:
        ValueError: for Dismissed (a dismissed incident is closed) or a commander
            name the query cannot quote.
    """
    if Phase.DISMISSED in phases:
        raise ValueError("a dismissed incident is closed; only running phases can be listed")
    if commander is not None and not _PLAIN_NAME.fullmatch(commander):
        raise ValueError(f"{commander!r} is not a plain name (letters, digits, @ . _ -)")
    chosen = list(dict.fromkeys(phases)) or list(OPEN_PHASES)
    clauses = [
        "ExecutionStatus = 'Running'",
        _in(sa.PHASE.name, [phase.value for phase in chosen]),
    ]
    if severities:
        clauses.append(_in(sa.SEVERITY.name, [s.value for s in dict.fromkeys(severities)]))
    if breached:
        clauses.append(f"{sa.SLA_BREACHED.name} = true")
    if commander is not None:
        clauses.append(f"{sa.COMMANDER.name} = '{commander}'")
    return " AND ".join(clauses)


def list_url(base: str, namespace: str, query: str) -> str:
    """The Web UI's workflow list filtered by ``query``."""
    return f"{base}/namespaces/{quote(namespace, safe='')}/workflows?query={quote(query, safe='')}"


def incident_url(base: str, namespace: str, incident_id: str) -> str:
    """The Web UI's page of one incident (its latest run)."""
    return f"{base}/namespaces/{quote(namespace, safe='')}/workflows/{quote(incident_id, safe='')}"


def _incident_id(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise typer.BadParameter("the incident ID is empty")
    return value.upper() if value.upper().startswith("INC-") else value


def ui(
    incident_id: Annotated[
        str | None,
        typer.Argument(metavar="[ID]", help="An incident; without one, the list of open ones."),
    ] = None,
    phase: Annotated[
        list[Phase] | None,
        typer.Option("--phase", case_sensitive=False, help="Only this phase (repeat for several)."),
    ] = None,
    severity: Annotated[
        list[Severity] | None,
        typer.Option("--severity", case_sensitive=False, help="Only this severity (repeatable)."),
    ] = None,
    breached: Annotated[
        bool, typer.Option("--breached", help="Only incidents past their resolve SLA.")
    ] = False,
    commander: Annotated[
        str | None, typer.Option("--commander", metavar="NAME", help="Only this IC's incidents.")
    ] = None,
    open_: Annotated[
        bool, typer.Option("--open", help="Also open the URL in a browser, if there is one.")
    ] = False,
) -> None:
    """Print the Temporal Web UI URL of an incident, or of the open incidents."""
    try:
        namespace = str(connect_config()["namespace"])
    except (RuntimeError, OSError, ValueError) as error:
        render.print_error(f"invalid Temporal connection settings: {error}")
        raise typer.Exit(2) from None
    base = Settings().ui_url
    if incident_id is not None:
        if phase or severity or breached or commander:
            raise typer.BadParameter("filters apply to the list, not to one incident")
        url = incident_url(base, namespace, _incident_id(incident_id))
    else:
        try:
            query = incidents_query(
                phases=phase or (),
                severities=severity or (),
                breached=breached,
                commander=commander,
            )
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None
        url = list_url(base, namespace, query)
    print(url)
    if open_ and not webbrowser.open(url):
        render.print_warning("no browser found here: open the URL above in yours")


def register(app: typer.Typer) -> None:
    """Add ``incident ui`` to the root CLI."""
    app.command("ui")(ui)
