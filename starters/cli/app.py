"""``incident``: the responder CLI. Declare, list, show and drive incidents.

Every command that changes an incident is a Workflow Update: the workflow
validates it and, when it refuses, its reason is printed and the exit code is 1.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from typer.core import TyperGroup

from domain.connection import exit_process
from domain.models import (
    AcknowledgeInput,
    CheckInput,
    CommandResult,
    Declaration,
    DismissInput,
    NoteInput,
    Phase,
    PhaseInput,
    PostmortemInput,
    ReviewInput,
    Severity,
    SeverityInput,
    StatusUpdateInput,
    cap_text,
)
from domain.settings import Settings
from starters.cli import render
from starters.cli.actions import register as register_actions
from starters.cli.documents_store import DocumentError, keep_document
from starters.cli.metrics import register as register_metrics
from starters.cli.record import parse_moment, print_draft
from starters.cli.record import register as register_record
from starters.cli.report import register as register_report
from starters.cli.session import CliError, Incidents, open_client
from starters.cli.storms import dismiss_storm
from starters.cli.timeline import with_archived_timeline
from starters.cli.ui import register as register_ui
from workflows.incident import IncidentWorkflow

DEFAULT_TIMEOUT = 30.0


class _OneLineErrors(TyperGroup):
    """Usage errors as one line on stderr (exit 2), instead of Typer's multi-line box."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the CLI like :meth:`click.Command.main`, reporting errors in one line."""
        try:
            code = super().main(
                args,
                prog_name,
                complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
        except typer.TyperException as error:  # typer's click exceptions: usage errors...
            if not standalone_mode:
                raise
            # ...and the help shown for a bare `incident` (already printed; cf. typer#1278).
            if type(error).__name__ != "NoArgsIsHelpError":
                render.print_error(_one_line(error))
            code = error.exit_code
        except typer.Abort:
            if not standalone_mode:
                raise
            render.print_error("aborted")
            code = 1
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


def _one_line(error: typer.TyperException) -> str:
    message = " ".join(error.format_message().split())
    ctx = getattr(error, "ctx", None)
    if ctx is not None:  # a usage error
        message += f" (see: {ctx.command_path} --help)"
    return message


def _not_empty(value: str) -> str:
    if not value.strip():
        raise typer.BadParameter("must not be empty")
    return value


app = typer.Typer(
    cls=_OneLineErrors,
    name="incident",
    help=(
        "Declare and drive incidents running on Temporal.\n\n"
        "Exit codes: 0 ok · 1 refused by the incident (reason printed), unknown or closed "
        "incident · 2 Temporal or the worker unreachable, or a usage error."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


_timeout: ContextVar[float] = ContextVar("timeout", default=DEFAULT_TIMEOUT)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
AsOption = Annotated[
    str | None,
    typer.Option(
        "--as",
        metavar="NAME",
        show_default=False,
        help="Who is acting. Default: $INCIDENT_USER, else your login name.",
    ),
]
IncidentId = Annotated[
    str,
    typer.Argument(metavar="ID", help="Incident ID, e.g. INC-20261126-7QK3.", callback=_not_empty),
]


@app.callback()
def _global_options(
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            envvar="INCIDENT_CLI_TIMEOUT",
            min=1.0,
            metavar="SECONDS",
            help="How long to wait for Temporal and the incident worker to answer.",
        ),
    ] = DEFAULT_TIMEOUT,
) -> None:
    """Declare and drive incidents running on Temporal."""
    _timeout.set(timeout)


# ------------------------------------------------------------------- plumbing


def _run(action: Callable[[Incidents], Awaitable[None]]) -> None:
    """Connect, run ``action``, and turn a :class:`CliError` into a message and exit code."""
    timeout = _timeout.get()

    async def main() -> None:
        client = await open_client()
        await action(Incidents(client, timeout=timeout))

    try:
        asyncio.run(main())
    except CliError as error:
        render.print_error(error.message)
        raise typer.Exit(error.exit_code) from None


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        raise CliError(f"invalid INCIDENT_* setting: {error}") from None


def _responder(as_: str | None) -> str:
    """``--as``, else ``INCIDENT_USER``, else the login name."""
    if as_ is not None:
        return as_
    user = _settings().user
    if user:
        return user
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        raise CliError("cannot tell who you are: pass --as NAME or set INCIDENT_USER") from None


def _incident_id(raw: str) -> str:
    """Accept ``inc-…`` for ``INC-…``: incident IDs are upper case."""
    value = raw.strip()
    return value.upper() if value.upper().startswith("INC-") else value


def _report(result: CommandResult, as_json: bool) -> None:
    if as_json:
        render.print_json(result)
    else:
        render.print_result(result)


def _act(
    incident_id: str,
    as_json: bool,
    send: Callable[[Incidents, str], Awaitable[CommandResult]],
) -> None:
    """Run one responder command on an incident and print its result."""
    target = _incident_id(incident_id)

    async def action(incidents: Incidents) -> None:
        _report(await send(incidents, target), as_json)

    _run(action)


def _dismiss_storm(storm_id: str, responder: str, reason: str, as_json: bool) -> None:
    async def action(incidents: Incidents) -> None:
        outcomes = await dismiss_storm(incidents, storm_id, responder=responder, reason=reason)
        if as_json:
            render.print_json(outcomes)
        else:
            for outcome in outcomes:
                render.print_line(f"{outcome.incident_id}: {outcome.message}", ok=outcome.dismissed)
        if not outcomes[-1].dismissed:
            raise CliError(f"the storm incident {storm_id} was not dismissed")

    _run(action)


# ------------------------------------------------------------------ commands


@app.command()
def declare(
    title: Annotated[
        str,
        typer.Argument(
            metavar="TITLE", help="What is broken, in a few words.", callback=_not_empty
        ),
    ],
    severity: Annotated[
        Severity,
        typer.Option("--severity", "-s", case_sensitive=False, help="P0 (worst) to P3."),
    ],
    service: Annotated[str, typer.Option(help="Affected service.")] = "",
    commander: Annotated[
        str | None, typer.Option(metavar="NAME", help="Proposed incident commander.")
    ] = None,
    impact: Annotated[str, typer.Option(help="Customer impact as understood now.")] = "",
    description: Annotated[str, typer.Option(help="Longer context.")] = "",
    link: Annotated[
        list[str] | None, typer.Option(metavar="URL", help="Dashboard or runbook (repeatable).")
    ] = None,
    as_: AsOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Declare a new incident and print its ID."""

    async def action(incidents: Incidents) -> None:
        declaration = Declaration(
            title=cap_text(title.strip(), 300),
            severity=severity,
            service=service.strip(),
            commander=commander,
            impact=impact,
            description=description,
            links=list(link or []),
            declared_by=_responder(as_),
            source="cli",
        )
        task_queue = _settings().task_queue
        incident_id = await incidents.declare(declaration, task_queue=task_queue)
        if not await incidents.has_worker(task_queue, incident_id):
            render.print_warning(
                f"no worker is polling task queue {task_queue!r} on {incidents.target}; "
                f"{incident_id} starts when one does (make run, or incident-worker "
                "with the same INCIDENT_TASK_QUEUE)"
            )
        if as_json:
            message = f"{incident_id} declared ({severity.value}: {declaration.title})"
            render.print_json(
                CommandResult(incident_id=incident_id, phase=Phase.DETECT, message=message)
            )
        else:
            render.print_declared(incident_id, severity=severity, title=declaration.title)

    _run(action)


@app.command("list")
def list_(
    all_: Annotated[bool, typer.Option("--all", "-a", help="Include closed incidents.")] = False,
    phase: Annotated[
        Phase | None, typer.Option(case_sensitive=False, help="Only incidents in this phase.")
    ] = None,
    severity: Annotated[
        Severity | None, typer.Option(case_sensitive=False, help="Only this severity.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 100,
    as_json: JsonFlag = False,
) -> None:
    """List open incidents (all with --all), newest first."""

    async def action(incidents: Incidents) -> None:
        rows = await incidents.list(
            include_closed=all_, phase=phase, severity=severity, limit=limit
        )
        if as_json:
            render.print_json(rows)
        else:
            render.print_list(rows, include_closed=all_, now=datetime.now(UTC))

    _run(action)


@app.command()
def show(
    incident_id: IncidentId,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Whole timeline: older entries from the timeline archive "
            "(INCIDENT_DATA_DIR/timelines, shared with the worker) before the newest.",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Show an incident: state, SLA deadlines, next update and timeline."""

    async def action(incidents: Incidents) -> None:
        view = await incidents.view(_incident_id(incident_id))
        if full:
            view = with_archived_timeline(view, _settings().data_dir / "timelines")
        if as_json:
            render.print_json(view)
        else:
            render.print_view(view, now=datetime.now(UTC))

    _run(action)


@app.command()
def ack(
    incident_id: IncidentId,
    commander: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="Incident commander, if not you.", show_default=False),
    ] = None,
    as_: AsOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Acknowledge: become (or name) the incident commander; stops escalation."""
    _act(
        incident_id,
        as_json,
        lambda incidents, ref: incidents.command(
            ref,
            IncidentWorkflow.acknowledge,
            AcknowledgeInput(responder=_responder(as_), commander=commander),
        ),
    )


@app.command()
def phase(
    incident_id: IncidentId,
    target: Annotated[
        str,
        typer.Argument(metavar="PHASE", help="investigate, fix, monitor or resolve."),
    ],
    note: Annotated[str, typer.Option(help="Why (recorded in the timeline).")] = "",
    as_: AsOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Move an incident to another phase."""
    _act(
        incident_id,
        as_json,
        lambda incidents, ref: incidents.command(
            ref,
            IncidentWorkflow.set_phase,
            PhaseInput(responder=_responder(as_), phase=target, note=note),
        ),
    )


@app.command()
def resolve(
    incident_id: IncidentId,
    note: Annotated[str, typer.Option(help="How it was resolved (internal).")] = "",
    public_note: Annotated[
        str | None,
        typer.Option(
            help="What customers may read about the resolution (status page, customer "
            "e-mail); the internal note never reaches them.",
            show_default=False,
        ),
    ] = None,
    as_: AsOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Resolve an incident (same as `phase ID resolve`)."""
    _act(
        incident_id,
        as_json,
        lambda incidents, ref: incidents.command(
            ref,
            IncidentWorkflow.set_phase,
            PhaseInput(
                responder=_responder(as_),
                phase=Phase.RESOLVE.value,
                note=note,
                public_note=public_note,
            ),
        ),
    )


@app.command()
def dismiss(
    incident_id: IncidentId,
    reason: Annotated[str, typer.Option(help="Why this is not an incident.")],
    all_from_storm: Annotated[
        bool,
        typer.Option(
            "--all-from-storm",
            help="INCIDENT_ID is an alert-storm incident: dismiss it and every incident "
            "opened in the minute before it, in one step.",
        ),
    ] = False,
    as_: AsOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Dismiss a false alarm (from Detect or Investigate)."""
    if all_from_storm:
        _dismiss_storm(_incident_id(incident_id), _responder(as_), reason, as_json)
        return
    _act(
        incident_id,
        as_json,
        lambda incidents, ref: incidents.command(
            ref, IncidentWorkflow.dismiss, DismissInput(responder=_responder(as_), reason=reason)
        ),
    )


@app.command()
def severity(
    incident_id: IncidentId,
    level: Annotated[str, typer.Argument(metavar="SEVERITY", help="P0 (worst), P1, P2 or P3.")],
    reason: Annotated[str, typer.Option(help="Why it changed.")] = "",
    as_: AsOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Change severity; SLA deadlines are recomputed from the declaration time."""
    _act(
        incident_id,
        as_json,
        lambda incidents, ref: incidents.command(
            ref,
            IncidentWorkflow.change_severity,
            SeverityInput(responder=_responder(as_), severity=level, reason=reason),
        ),
    )


@app.command()
def update(
    incident_id: IncidentId,
    text: Annotated[str, typer.Argument(help="What is going on.")],
    impact: Annotated[
        str | None, typer.Option(help="Current customer impact.", show_default=False)
    ] = None,
    eta: Annotated[
        str | None, typer.Option(help='Expected resolution, e.g. "~30 min".', show_default=False)
    ] = None,
    public_title: Annotated[
        str | None,
        typer.Option(
            help="The title the status page and customers see from now on (alert-opened "
            "incidents show a neutral one until acknowledged).",
            show_default=False,
        ),
    ] = None,
    as_: AsOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Post a stakeholder update now (restarts the update interval)."""
    _act(
        incident_id,
        as_json,
        lambda incidents, ref: incidents.command(
            ref,
            IncidentWorkflow.post_update,
            StatusUpdateInput(
                responder=_responder(as_),
                text=text,
                impact=impact,
                eta=eta,
                public_title=public_title,
            ),
        ),
    )


@app.command()
def note(
    incident_id: IncidentId,
    text: Annotated[str, typer.Argument(help="The note.")],
    as_: AsOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Add a note to the timeline (no one is notified)."""
    _act(
        incident_id,
        as_json,
        lambda incidents, ref: incidents.command(
            ref, IncidentWorkflow.add_note, NoteInput(responder=_responder(as_), text=text)
        ),
    )


@app.command()
def check(
    incident_id: IncidentId,
    item: Annotated[
        str, typer.Argument(metavar="ITEM", help="The item's number, or its text (or part).")
    ],
    phase: Annotated[
        str | None,
        typer.Option(help="The phase whose checklist it is on (default: the current one)."),
    ] = None,
    as_: AsOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Tick a phase checklist item (`incident show` lists the open ones)."""
    _act(
        incident_id,
        as_json,
        lambda incidents, ref: incidents.command(
            ref,
            IncidentWorkflow.check,
            CheckInput(responder=_responder(as_), item=item, phase=phase),
        ),
    )


@app.command()
def postmortem(
    incident_id: IncidentId,
    done: Annotated[bool, typer.Option("--done", help="Record the post-mortem as done.")] = False,
    url: Annotated[
        str | None, typer.Option(help="Where the post-mortem lives.", show_default=False)
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            help="The final document as a file: kept under the data directory "
            "(the incident records its path and SHA-256).",
            show_default=False,
        ),
    ] = None,
    draft: Annotated[
        bool, typer.Option("--draft", help="Print the post-mortem draft (Markdown).")
    ] = False,
    schedule: Annotated[
        str | None,
        typer.Option(
            metavar="TIME",
            help='Schedule the review meeting: "2026-11-28 14:00" (UTC) or ISO 8601.',
            show_default=False,
        ),
    ] = None,
    attendees: Annotated[
        str | None,
        typer.Option(help="Review attendees, comma-separated (@name).", show_default=False),
    ] = None,
    as_: AsOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Record the post-mortem with --done (closes the incident), schedule its review with
    --schedule, print the draft with --draft; without options, show its status."""
    if draft and not done:
        print_draft(incident_id, as_json=as_json)
        return
    if (url is not None or file is not None) and not done:
        raise typer.BadParameter("--url and --file are recorded with --done", param_hint="--done")
    if attendees is not None and schedule is None:
        raise typer.BadParameter("--attendees go with --schedule", param_hint="--attendees")
    if schedule is not None:
        if done:
            raise typer.BadParameter("schedule the review before --done", param_hint="--schedule")
        review = ReviewInput(
            responder=_responder(as_),
            at=parse_moment(schedule, "--schedule"),
            attendees=[a.strip() for a in (attendees or "").split(",") if a.strip()],
        )
        _act(
            incident_id,
            as_json,
            lambda incidents, ref: incidents.command(ref, IncidentWorkflow.schedule_review, review),
        )
        return
    if done:
        document = None
        if file is not None:
            try:
                document = keep_document(file, _incident_id(incident_id), Settings().data_dir)
            except DocumentError as error:
                render.print_error(str(error))
                raise typer.Exit(1) from None
        _act(
            incident_id,
            as_json,
            lambda incidents, ref: incidents.command(
                ref,
                IncidentWorkflow.record_postmortem,
                PostmortemInput(responder=_responder(as_), url=url, document=document),
            ),
        )
        return

    async def action(incidents: Incidents) -> None:
        view = await incidents.view(_incident_id(incident_id))
        if as_json:
            render.print_json(view)
        else:
            render.print_postmortem_status(view, now=datetime.now(UTC))

    _run(action)


register_actions(app, timeout=_timeout.get)
register_record(app, timeout=_timeout.get)
register_report(app, timeout=_timeout.get)
register_metrics(app, timeout=_timeout.get)
register_ui(app)


def main() -> None:
    """Console entry point (``incident``); see :func:`domain.connection.exit_process`."""
    try:
        app()
        code = 0
    except SystemExit as done:
        if isinstance(done.code, str):
            print(done.code, file=sys.stderr)
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    exit_process(code)
