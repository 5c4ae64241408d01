"""``incident action add|done|wontdo|edit`` and ``incident actions``: follow-ups that get done.

Each action item is an ``ActionItem`` workflow whose ID is the action ID
(``INC-20261127-3A7X-A2``); commands are its validated updates, so a refusal is
printed with its reason (exit 1). ``incident actions`` reads only Temporal
visibility (the ``Action*`` search attributes and the memo), never the
workflows themselves, so it lists thousands of items across incidents in one call.
"""

from __future__ import annotations

import asyncio
import functools
import getpass
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, ParamSpec

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from domain import action_listing
from domain import search_attributes as sa
from domain.action_listing import list_query, summarize
from domain.actions import (
    ACTION_WORKFLOW_TYPE,
    MAX_TITLE,
    ActionDone,
    ActionEdit,
    ActionItemInput,
    ActionResult,
    ActionState,
    ActionStatus,
    ActionSummary,
    ActionWontdo,
    action_id,
    check_due,
    check_owner,
    check_reason,
    check_title,
    clamp,
    incident_of,
    is_incident_id,
    normalize_owner,
)
from domain.documents import ActionItemRow
from domain.durations import parse_duration
from domain.models import Phase, Severity
from domain.settings import Settings
from domain.text import escape_markdown
from starters.cli import render
from starters.cli.session import CliError, Incidents, open_client, rejection_reason
from workflows.action_item import ActionItemWorkflow, memo_of

_P = ParamSpec("_P")

MAX_NUMBER_TRIES = 50
"""Action numbers tried past the visible count before giving up (visibility lags)."""

action_app = typer.Typer(
    name="action",
    help="Add and close an incident's action items (follow-ups with an owner and a due date).",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
AsOption = Annotated[
    str | None,
    typer.Option("--as", metavar="NAME", show_default=False, help="Who is acting."),
]
ActionId = Annotated[
    str, typer.Argument(metavar="AID", help="Action ID, e.g. INC-20261127-3A7X-A2.")
]
_timeout: Callable[[], float] = lambda: 30.0  # noqa: E731 - replaced by register()


def register(app: typer.Typer, *, timeout: Callable[[], float]) -> None:
    """Add ``incident action …`` and ``incident actions`` to the root CLI."""
    global _timeout
    _timeout = timeout
    app.add_typer(action_app)
    app.command("actions")(list_actions)


# ------------------------------------------------------------------- plumbing


def _run(action: Callable[[Client], Awaitable[None]]) -> None:
    async def main() -> None:
        client = await open_client()
        try:
            await asyncio.wait_for(action(client), _timeout())
        except TimeoutError:
            raise CliError(
                f"no answer within {_timeout():g}s from Temporal; is the worker running?",
                exit_code=2,
            ) from None

    try:
        asyncio.run(main())
    except CliError as error:
        render.print_error(error.message)
        raise typer.Exit(error.exit_code) from None


def _reports(command: Callable[_P, None]) -> Callable[_P, None]:
    """Checks made before connecting fail like the rest: one line on stderr, exit 1."""

    @functools.wraps(command)
    def checked(*args: _P.args, **kwargs: _P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except CliError as error:
            render.print_error(error.message)
            raise typer.Exit(error.exit_code) from None

    return checked


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        raise CliError(f"invalid INCIDENT_* setting: {error}") from None


def _responder(as_: str | None) -> str:
    if as_ is not None:
        return as_
    user = _settings().user
    if user:
        return user
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        raise CliError("cannot tell who you are: pass --as NAME or set INCIDENT_USER") from None


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_due(text: str, now: datetime) -> datetime:
    """``2026-12-03`` (the end of that day, UTC), ``2026-12-03 14:00`` (UTC) or ``7d``/``90s``.

    Raises:
        CliError: for anything else, or a due date that is not in the future.
    """
    value = text.strip()
    due: datetime
    try:
        if _DAY.fullmatch(value):
            due = datetime.combine(date.fromisoformat(value), time(23, 59, 59), UTC)
        elif value[:1].isdigit() and "-" in value:
            parsed = datetime.fromisoformat(value)
            due = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        else:
            due = now + parse_duration(value)
    except ValueError:
        raise CliError(
            f"invalid due date {value!r}: use 2026-12-03, '2026-12-03 14:00' (UTC) or 7d, 36h, 90s"
        ) from None
    _refuse(check_due(due, now))
    return due


def _refuse(reason: str | None) -> None:
    if reason is not None:
        raise CliError(reason)


def _action_id(raw: str) -> str:
    value = raw.strip().upper()
    if incident_of(value) is None:
        raise CliError(f"{raw!r} is not an action ID (like INC-20261127-3A7X-A2)")
    return value


def _report(result: ActionResult, as_json: bool) -> None:
    if as_json:
        render.print_json(result)
    else:
        render.print_line(result.message, ok=True)


async def _command(client: Client, aid: str, send: Callable[[Any], Awaitable[Any]]) -> Any:
    """Send one update to an action item, turning every failure into a clear CliError."""
    handle: WorkflowHandle[ActionItemWorkflow, ActionState] = client.get_workflow_handle_for(
        ActionItemWorkflow.run, aid
    )
    try:
        return await send(handle)
    except WorkflowUpdateFailedError as error:
        raise CliError(rejection_reason(error)) from None
    except RPCError as error:
        if error.status is not RPCStatusCode.NOT_FOUND:
            raise CliError(f"Temporal: {error.message}", exit_code=2) from None
    try:
        description = await handle.describe()
    except RPCError:
        raise CliError(f"action item {aid} not found") from None
    if description.workflow_type != ACTION_WORKFLOW_TYPE:
        raise CliError(f"{aid} is not an action item ({description.workflow_type})")
    status = description.typed_search_attributes.get(sa.ACTION_STATUS) or "closed"
    raise CliError(f"action item {aid} is closed ({status})")


# ------------------------------------------------------------------- commands


@action_app.command("add")
@_reports
def add(
    incident_id: Annotated[str, typer.Argument(metavar="INCIDENT", help="Incident ID.")],
    title: Annotated[str, typer.Argument(metavar="TITLE", help="What must be done.")],
    owner: Annotated[str, typer.Option("--owner", metavar="NAME", help="@name or name.")],
    due: Annotated[
        str,
        typer.Option(
            "--due", metavar="WHEN", help="2026-12-03 (end of day UTC), '2026-12-03 14:00', or 7d."
        ),
    ],
    as_: AsOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Add an action item to an incident and print its action ID."""
    incident = incident_id.strip().upper()
    _refuse(None if is_incident_id(incident) else f"{incident_id!r} is not an incident ID")
    _refuse(check_title(title) or check_owner(owner))
    when = parse_due(due, datetime.now(UTC))
    who = _responder(as_)

    async def action(client: Client) -> None:
        description = await Incidents(client, timeout=_timeout()).describe(incident)
        attributes = description.typed_search_attributes
        phase = attributes.get(sa.PHASE) or ""
        item = ActionItemInput(
            incident_id=incident,
            title=clamp(title, MAX_TITLE),
            owner=normalize_owner(owner),
            due=when,
            added_by=who,
            commander=attributes.get(sa.COMMANDER) or None,
            severity=Severity(attributes.get(sa.SEVERITY) or "P2"),
            incident_title=await description.memo_value("title", "", type_hint=str),
            incident_phase=Phase(phase) if phase in Phase._value2member_map_ else Phase.RESOLVE,
            incident_declared_at=attributes.get(sa.DETECTED_AT) or description.start_time,
        )
        new_id = await _start(client, item)
        if as_json:
            render.print_json(
                ActionResult(action_id=new_id, status=ActionStatus.OPEN, message="added")
            )
        else:
            print(new_id)
            render.print_note(f"added to {incident}: {item.owner}, due {when:%Y-%m-%d %H:%M} UTC")

    _run(action)


async def _start(client: Client, item: ActionItemInput) -> str:
    """Start the item under the next free ``-A<n>`` of its incident; returns the action ID."""
    count = await client.count_workflows(
        f"{sa.ACTION_INCIDENT.name} = '{item.incident_id}' AND WorkflowType = "
        f"'{ACTION_WORKFLOW_TYPE}' AND ExecutionStatus != 'ContinuedAsNew'"
    )
    memo = memo_of(
        ActionState(
            id="",
            incident_id=item.incident_id,
            title=item.title,
            owner=item.owner,
            due=item.due,
            added_by=item.added_by,
            added_at=datetime.now(UTC),
            commander=item.commander,
            incident_title=item.incident_title,
        )
    )
    attributes = TypedSearchAttributes(
        [
            SearchAttributePair(sa.ACTION_INCIDENT, item.incident_id),
            SearchAttributePair(sa.ACTION_OWNER, sa.keyword(item.owner)),
            SearchAttributePair(sa.ACTION_STATUS, ActionStatus.OPEN.value),
            SearchAttributePair(sa.ACTION_DUE_AT, int(item.due.timestamp())),
        ]
    )
    for number in range(count.count + 1, count.count + 1 + MAX_NUMBER_TRIES):
        try:
            handle = await client.start_workflow(
                ActionItemWorkflow.run,
                item,
                id=action_id(item.incident_id, number),
                task_queue=_settings().task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=attributes,
                memo=memo,
                static_summary=f"{item.owner} · {escape_markdown(clamp(item.title, 150))}",
            )
        except WorkflowAlreadyStartedError:
            continue  # taken (also by a closed item: IDs are never reused)
        return handle.id
    raise CliError(f"no free action number for {item.incident_id}; try again")


@action_app.command("done")
@_reports
def done(
    aid: ActionId,
    note: Annotated[str, typer.Option("--note", help="What was done.")] = "",
    as_: AsOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Mark an action item done (records whether it was on time)."""
    target, command = _action_id(aid), ActionDone(responder=_responder(as_), note=note)

    async def action(client: Client) -> None:
        result = await _command(
            client, target, lambda h: h.execute_update(ActionItemWorkflow.done, command)
        )
        _report(result, as_json)

    _run(action)


@action_app.command("wontdo")
@_reports
def wontdo(
    aid: ActionId,
    reason: Annotated[str, typer.Option("--reason", help="Why it will not be done.")],
    as_: AsOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Drop an action item, with a reason."""
    _refuse(check_reason(reason))
    target, command = _action_id(aid), ActionWontdo(responder=_responder(as_), reason=reason)

    async def action(client: Client) -> None:
        result = await _command(
            client, target, lambda h: h.execute_update(ActionItemWorkflow.wontdo, command)
        )
        _report(result, as_json)

    _run(action)


@action_app.command("edit")
@_reports
def edit(
    aid: ActionId,
    title: Annotated[str | None, typer.Option("--title", help="New title.")] = None,
    owner: Annotated[str | None, typer.Option("--owner", metavar="NAME")] = None,
    due: Annotated[str | None, typer.Option("--due", metavar="WHEN")] = None,
    as_: AsOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Change an action item's title, owner or due date."""
    target = _action_id(aid)
    when = parse_due(due, datetime.now(UTC)) if due is not None else None
    command = ActionEdit(responder=_responder(as_), title=title, owner=owner, due=when)

    async def action(client: Client) -> None:
        result = await _command(
            client, target, lambda h: h.execute_update(ActionItemWorkflow.edit, command)
        )
        _report(result, as_json)

    _run(action)


@_reports
def list_actions(
    owner: Annotated[str | None, typer.Option("--owner", metavar="NAME")] = None,
    incident: Annotated[str | None, typer.Option("--incident", metavar="ID")] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only open items past due.")] = False,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Include done and dropped.")] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 500,
    as_json: JsonFlag = False,
) -> None:
    """List action items across incidents (open ones unless --all), soonest due first."""
    if owner is not None:
        _refuse(check_owner(owner))
    if incident is not None:
        incident = incident.strip().upper()
        _refuse(None if is_incident_id(incident) else f"{incident!r} is not an incident ID")
    now = datetime.now(UTC)
    query = list_query(
        owner=owner, incident=incident, overdue=overdue, include_closed=all_, now=now
    )

    async def action(client: Client) -> None:
        try:
            rows = [
                await summarize(execution, now)
                async for execution in client.list_workflows(query, limit=limit)
            ]
        except RPCError as error:
            raise CliError(f"Temporal: {error.message}", exit_code=2) from None
        far = now + timedelta(days=36500)
        rows.sort(key=lambda row: (row.due or far, row.id))
        if as_json:
            render.print_json(rows)
        else:
            _print_table(rows)

    _run(action)


def _print_table(rows: list[ActionSummary]) -> None:
    if not rows:
        render.print_warning("no action items match")
        return
    table = Table(box=None, pad_edge=False)
    jira = any(row.jira_key for row in rows)
    for column in ("ACTION", "OWNER", "DUE", "STATUS", *(["JIRA"] if jira else []), "TITLE"):
        table.add_column(column)
    for row in rows:
        due = f"{row.due:%Y-%m-%d %H:%M}" if row.due else "—"
        status = "OVERDUE" if row.overdue else row.status
        if row.status == ActionStatus.DONE.value and row.on_time is not None:
            status += " (on time)" if row.on_time else " (late)"
        table.add_row(
            row.id,
            render.safe(row.owner),
            due,
            status,
            *([render.safe(row.jira_key or "—")] if jira else []),
            render.safe(row.title, single_line=True),
        )
    Console(soft_wrap=True).print(table)


async def incident_action_items(client: Client, incident_id: str) -> list[ActionItemRow]:
    """Every action item of ``incident_id`` (from visibility), as document table rows."""
    try:
        return await action_listing.incident_action_items(client, incident_id)
    except RPCError as error:
        raise CliError(f"Temporal: {error.message}", exit_code=2) from None
