"""``POST /slack/commands``: the ``/incident`` slash command, verified with Slack's signing secret.

``/incident ack|update|phase|resolve`` map to the same workflow updates as the
CLI, so the workflow validates them and records who acted. Inside an incident
channel (``#inc-<id>-…``) the incident ID may be left out.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from slack_sdk.signature import SignatureVerifier
from temporalio.client import Client

from domain.comms import SlackPolicy, escape_mrkdwn
from domain.models import AcknowledgeInput, CommandResult, PhaseInput, StatusUpdateInput
from starters.cli.session import CliError, Incidents
from workflows.incident import IncidentWorkflow

log = logging.getLogger("incidents.slack_commands")

MAX_BODY = 16_384
"""Slash-command payloads are small; anything larger is not from Slack."""
USAGE = (
    "Usage: `/incident ack [ID]` · `/incident update [ID] <text>` · "
    "`/incident phase [ID] <investigate|fix|monitor|resolve> [note]` · "
    "`/incident resolve [ID] [note]` (the ID may be left out in the incident's channel)"
)
_ID = re.compile(r"^inc-\d{8}-[a-z0-9]{4}$", re.IGNORECASE)
_CHANNEL_ID = re.compile(r"^(inc-\d{8}-[a-z0-9]{4})(?:-|$)", re.IGNORECASE)


@dataclass(frozen=True)
class SlashCommand:
    """A parsed ``/incident`` command."""

    verb: str
    incident_id: str
    rest: str


class CommandError(ValueError):
    """The command text cannot be understood; the message says how to fix it."""


def parse(text: str, channel_name: str) -> SlashCommand:
    """Parse ``/incident`` text; the incident ID defaults to the incident channel's.

    Raises:
        CommandError: unknown verb, missing ID or missing text.
    """
    words = text.strip().split(maxsplit=1)
    if not words or words[0].lower() not in ("ack", "update", "phase", "resolve"):
        raise CommandError(USAGE)
    verb, rest = words[0].lower(), words[1] if len(words) > 1 else ""
    first, _, after = rest.partition(" ")
    if _ID.match(first):
        incident_id, rest = first.upper(), after.strip()
    else:
        from_channel = _CHANNEL_ID.match(channel_name)
        if from_channel is None:
            raise CommandError(f"Which incident? Add its ID, e.g. `/incident {verb} INC-…`")
        incident_id = from_channel.group(1).upper()
    if verb in ("update", "phase") and not rest:
        raise CommandError(USAGE)
    return SlashCommand(verb=verb, incident_id=incident_id, rest=rest.strip())


def _reply(text: str, status: int = 200) -> JSONResponse:
    return JSONResponse({"response_type": "ephemeral", "text": text}, status_code=status)


def slack_command_router(
    client: Callable[[], Awaitable[Client]],
    *,
    signing_secret: str,
    policy: SlackPolicy,
    timeout: float = 2.5,
) -> APIRouter:
    """The slash-command endpoint.

    Args:
        client: returns the Temporal client, e.g. ``app.state.gateway.client``.
        signing_secret: the Slack app's signing secret (``SLACK_SIGNING_SECRET``).
        policy: ``[comms.slack]``; its ``users`` map Slack users back to responder names.
        timeout: seconds to wait for the workflow (Slack gives up after 3).
    """
    verifier = SignatureVerifier(signing_secret)
    names = {user_id: name for name, user_id in policy.users.items()}
    router = APIRouter(tags=["slack"])

    @router.post("/slack/commands", summary="Slack /incident slash command")
    async def slash_command(request: Request) -> JSONResponse:
        """Verify Slack's signature, then apply the command to the incident."""
        body = await request.body()
        if len(body) > MAX_BODY:
            return _reply("request too large", 413)
        try:
            valid = verifier.is_valid_request(body, dict(request.headers))
        except ValueError:
            valid = False
        if not valid:
            return _reply("invalid Slack signature", 401)
        form = {key: values[0] for key, values in parse_qs(body.decode()).items()}
        try:
            command = parse(form.get("text", ""), form.get("channel_name", ""))
        except CommandError as error:
            return _reply(str(error))
        responder = names.get(form.get("user_id", "")) or form.get("user_name", "") or "slack"
        try:
            incidents = Incidents(await client(), timeout=timeout)
            result = await _apply(incidents, command, responder)
        except CliError as error:
            return _reply(f"⚠️ {escape_mrkdwn(error.message)}")
        except Exception as error:  # Temporal unreachable: tell the responder, not Slack
            log.warning("slash command failed: %s", error)
            return _reply("⚠️ The incident service cannot reach Temporal; use the CLI.")
        return _reply(f"✅ {escape_mrkdwn(result)}")

    return router


async def _apply(incidents: Incidents, command: SlashCommand, responder: str) -> str:
    target = command.incident_id
    result: CommandResult
    if command.verb == "ack":
        result = await incidents.command(
            target, IncidentWorkflow.acknowledge, AcknowledgeInput(responder=responder)
        )
    elif command.verb == "update":
        result = await incidents.command(
            target,
            IncidentWorkflow.post_update,
            StatusUpdateInput(responder=responder, text=command.rest),
        )
    else:
        if command.verb == "resolve":
            phase, note = "resolve", command.rest
        else:
            phase, _, note = command.rest.partition(" ")
        result = await incidents.command(
            target,
            IncidentWorkflow.set_phase,
            PhaseInput(responder=responder, phase=phase, note=note.strip()),
        )
    return result.message
