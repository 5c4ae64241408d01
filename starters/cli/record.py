"""``incident set`` and ``incident doc``: the incident record and the process's documents.

``set`` is one Workflow Update (``set_record``): the workflow checks every value
and refuses a bad one with its reason (exit 1), writing nothing. ``doc`` and
``postmortem --draft`` render the process's templates from the incident's view
with the pure functions of :mod:`domain.documents`.
"""

from __future__ import annotations

import asyncio
import getpass
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Protocol

import typer
from pydantic import ValidationError

from activities.timeline_archive import TimelineArchive
from domain.documents import ActionItemRow, incident_document, postmortem_draft, with_archived
from domain.incident import IncidentView
from domain.models import FixStrategy, RecordInput
from domain.settings import Settings
from starters.cli import render
from starters.cli.actions import incident_action_items
from starters.cli.session import CliError, Incidents, open_client
from workflows.incident import IncidentWorkflow


def _default_timeout() -> float:
    return 30.0


_timeout: Callable[[], float] = _default_timeout
"""How long to wait for Temporal (the root CLI's ``--timeout``, set by :func:`register`)."""

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
IncidentId = Annotated[str, typer.Argument(metavar="ID", help="Incident ID.")]


def register(app: typer.Typer, *, timeout: Callable[[], float]) -> None:
    """Add ``incident set`` and ``incident doc`` to the root CLI."""
    global _timeout
    _timeout = timeout
    app.command("set")(set_record)
    app.command("doc")(doc)


# ------------------------------------------------------------------- plumbing


def _run(action: Callable[[Incidents], Awaitable[None]]) -> None:
    async def main() -> None:
        client = await open_client()
        await action(Incidents(client, timeout=_timeout()))

    try:
        asyncio.run(main())
    except CliError as error:
        render.print_error(error.message)
        raise typer.Exit(error.exit_code) from None


def _incident_id(raw: str) -> str:
    value = raw.strip()
    if not value:
        raise CliError("the incident ID is empty")
    return value.upper() if value.upper().startswith("INC-") else value


def _responder(as_: str | None) -> str:
    if as_ is not None:
        return as_
    try:
        user = Settings().user
    except ValidationError as error:
        raise CliError(f"invalid INCIDENT_* setting: {error}") from None
    if user:
        return user
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        raise CliError("cannot tell who you are: pass --as NAME or set INCIDENT_USER") from None


def parse_moment(raw: str, param_hint: str = "--impact-started") -> datetime:
    """``2026-11-27 09:58`` (UTC unless an offset is given) as an aware datetime."""
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{raw!r} is not a time; use YYYY-MM-DD HH:MM (UTC) or ISO 8601 with an offset",
            param_hint=param_hint,
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_yes_no(raw: str) -> bool:
    """yes/no (also true/false, y/n)."""
    value = raw.strip().lower()
    if value in ("yes", "y", "true"):
        return True
    if value in ("no", "n", "false"):
        return False
    raise typer.BadParameter(f"{raw!r}: answer yes or no", param_hint="--data-loss")


def normalise_key(raw: str) -> str:
    """A root-cause key as typed, normalised: lower case, spaces as ``-``, no outer ``/``."""
    return "-".join(raw.strip().lower().split()).strip("/")


def _whole_timeline(view: IncidentView) -> IncidentView:
    """The view with archived entries joined, when the worker's archive is readable here."""
    if not view.timeline_archived:
        return view
    try:
        archive = TimelineArchive(Settings().data_dir / "timelines")
        return with_archived(view, archive.read(view.id))
    except (OSError, ValueError):
        return view  # the documents then say how many entries are in the archive


def _services(raw: str) -> list[str]:
    return [name.strip() for name in raw.split(",") if name.strip()]


# ------------------------------------------------------------------- commands


def set_record(
    incident_id: IncidentId,
    users_affected: Annotated[
        str | None, typer.Option(help='Users affected: "12%", "3000".', show_default=False)
    ] = None,
    services_down: Annotated[
        str | None,
        typer.Option(help="Services down, comma-separated (empty: none).", show_default=False),
    ] = None,
    data_loss: Annotated[
        str | None, typer.Option(metavar="yes|no", help="Was data lost?", show_default=False)
    ] = None,
    revenue_impact: Annotated[
        float | None, typer.Option(help="Revenue lost, in dollars (>= 0).", show_default=False)
    ] = None,
    customer_complaints: Annotated[
        int | None, typer.Option(help="Customer complaints received (>= 0).", show_default=False)
    ] = None,
    root_cause: Annotated[
        str | None, typer.Option(help="What went wrong.", show_default=False)
    ] = None,
    root_cause_key: Annotated[
        str | None,
        typer.Option(
            help="Short tag recognising the same root cause across incidents, "
            "e.g. deploy/bad-config.",
            show_default=False,
        ),
    ] = None,
    resolution: Annotated[
        str | None, typer.Option(help="What was done to fix it.", show_default=False)
    ] = None,
    fix_strategy: Annotated[
        str | None,
        typer.Option(
            metavar="|".join(strategy.value for strategy in FixStrategy),
            help="The fix strategy used.",
            show_default=False,
        ),
    ] = None,
    impact_started: Annotated[
        str | None,
        typer.Option(
            metavar="TIME",
            help='When users were first hurt: "2026-11-27 09:58" (UTC) or ISO 8601.',
            show_default=False,
        ),
    ] = None,
    as_: Annotated[
        str | None,
        typer.Option("--as", metavar="NAME", help="Who is acting.", show_default=False),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Fill in or correct the incident record (impact, root cause, resolution…)."""
    command = RecordInput(
        responder=_responder(as_),
        users_affected=users_affected,
        services_down=_services(services_down) if services_down is not None else None,
        data_loss=parse_yes_no(data_loss) if data_loss is not None else None,
        revenue_impact=revenue_impact,
        customer_complaints=customer_complaints,
        root_cause=root_cause,
        root_cause_key=normalise_key(root_cause_key) if root_cause_key is not None else None,
        resolution=resolution,
        fix_strategy=fix_strategy,
        impact_started=parse_moment(impact_started) if impact_started is not None else None,
    )

    async def action(incidents: Incidents) -> None:
        result = await incidents.command(
            _incident_id(incident_id), IncidentWorkflow.set_record, command
        )
        if as_json:
            render.print_json(result)
        else:
            render.print_result(result)

    _run(action)


def doc(incident_id: IncidentId, as_json: JsonFlag = False) -> None:
    """Print the incident document (the process's template) in Markdown."""
    _print_document(incident_id, incident_document, as_json=as_json)


def print_draft(incident_id: str, *, as_json: bool) -> None:
    """``incident postmortem ID --draft``: the post-mortem draft in Markdown."""
    _print_document(incident_id, postmortem_draft, as_json=as_json)


class _Document(Protocol):
    def __call__(
        self, view: IncidentView, *, action_items: Sequence[ActionItemRow] = ()
    ) -> str: ...


def _print_document(incident_id: str, render_document: _Document, *, as_json: bool) -> None:
    async def action(incidents: Incidents) -> None:
        view = await incidents.view(_incident_id(incident_id))
        items = await incident_action_items(incidents.client, view.id)
        markdown = render_document(_whole_timeline(view), action_items=items)
        if as_json:
            typer.echo(json.dumps({"incident_id": view.id, "markdown": markdown}, indent=2))
        else:
            typer.echo(markdown, nl=False)

    _run(action)
