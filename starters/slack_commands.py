"""``POST /slack/commands``: the ``/incident`` slash command, verified with Slack's signing secret.

``/incident ack|update|phase|resolve|rootcause|resolution|check`` map to the same
workflow updates as the CLI, so the workflow validates them and records who acted.
Inside an incident channel (``#inc-<id>-…``) the incident ID may be left out.

Before anything is read the request must carry Slack's timestamp and
signature headers and a fresh timestamp; the body is then streamed within
:data:`MAX_BODY` and its signature checked. A signature is accepted once. The
acting responder is the Slack user's ID (mapped to a name by
``[comms.slack.users]``), never the user name the request claims, and
``[routing.slack_commands]`` can restrict commands to some users and user groups.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from slack_sdk.web.async_client import AsyncWebClient
from temporalio.client import Client

from domain.comms import SlackPolicy, escape_mrkdwn
from domain.models import (
    AcknowledgeInput,
    CheckInput,
    CommandResult,
    PhaseInput,
    RecordInput,
    StatusUpdateInput,
)
from domain.routing import SlackCommandAccess
from starters.cli.session import CliError, Incidents
from starters.webhooks.auth import MAX_CLOCK_SKEW_SECONDS, ReplayCache
from starters.webhooks.body import CLOSE, read_body
from starters.webhooks.errors import WebhookError
from workflows.incident import IncidentWorkflow

log = logging.getLogger("incidents.slack_commands")

MAX_BODY = 16_384
"""Slash-command payloads are small; anything larger is not from Slack."""
TIMESTAMP_HEADER = "x-slack-request-timestamp"
SIGNATURE_HEADER = "x-slack-signature"
GROUP_CACHE_SECONDS = 60.0
"""How long user-group members looked up in Slack are trusted."""
_FORM_FIELDS = 30
USAGE = (
    "Usage: `/incident ack [ID]` · `/incident update [ID] <text>` · "
    "`/incident phase [ID] <investigate|fix|monitor|resolve> [note]` · "
    "`/incident resolve [ID] [note]` · `/incident rootcause [ID] <text>` · "
    "`/incident resolution [ID] <text>` · `/incident check [ID] <item number or text>` "
    "(the ID may be left out in the incident's channel)"
)
VERBS = ("ack", "update", "phase", "resolve", "rootcause", "resolution", "check")
"""The subcommands, in the order the usage lists them."""
_NEEDS_TEXT = ("update", "phase", "rootcause", "resolution", "check")
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
    if not words or words[0].lower() not in VERBS:
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
    if verb in _NEEDS_TEXT and not rest:
        raise CommandError(USAGE)
    return SlashCommand(verb=verb, incident_id=incident_id, rest=rest.strip())


def _reply(text: str, status: int = 200, *, unread: bool = False) -> JSONResponse:
    headers = CLOSE if unread else None  # hang up rather than drain a body we refused
    return JSONResponse(
        {"response_type": "ephemeral", "text": text}, status_code=status, headers=headers
    )


GroupMembers = Callable[[str], Awaitable[frozenset[str]]]
"""Looks up the user IDs of a Slack user group."""


class SlackGroups:
    """User-group members from Slack's ``usergroups.users.list``, cached for a minute.

    Args:
        token: bot token with the ``usergroups:read`` scope.
        api_url: Web API base URL.
        timeout: seconds per call (Slack wants the command answered within 3).
    """

    def __init__(self, *, token: str, api_url: str, timeout: float = 1.5) -> None:
        self._client = AsyncWebClient(token=token, base_url=api_url, timeout=int(timeout) or 1)
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}

    async def __call__(self, group: str) -> frozenset[str]:
        """The members of ``group``.

        Raises:
            Exception: Slack could not be asked (the caller refuses the command).
        """
        cached = self._cache.get(group)
        now = time.monotonic()
        if cached is not None and now - cached[0] < GROUP_CACHE_SECONDS:
            return cached[1]
        response = await self._client.usergroups_users_list(usergroup=group)
        users = response.get("users") or []
        members = frozenset(user for user in users if isinstance(user, str))
        self._cache[group] = (now, members)
        return members


def _sign(secret: bytes, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret, b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    return "v0=" + digest.hexdigest()


def _fresh(timestamp: str | None, now: float) -> bool:
    if timestamp is None or not timestamp.isascii() or not timestamp.isdigit():
        return False
    return len(timestamp) <= 12 and abs(now - int(timestamp)) <= MAX_CLOCK_SKEW_SECONDS


def _form(body: bytes) -> dict[str, str] | None:
    try:
        fields = parse_qs(body.decode("utf-8"), errors="strict", max_num_fields=_FORM_FIELDS)
    except ValueError:  # UnicodeDecodeError too
        return None
    return {key: values[0] for key, values in fields.items()}


def slack_command_router(
    client: Callable[[], Awaitable[Client]],
    *,
    signing_secret: str,
    policy: SlackPolicy,
    access: SlackCommandAccess | None = None,
    group_members: GroupMembers | None = None,
    timeout: float = 2.5,
    replays: ReplayCache | None = None,
) -> APIRouter:
    """The slash-command endpoint.

    Args:
        client: returns the Temporal client, e.g. ``app.state.gateway.client``.
        signing_secret: the Slack app's signing secret (``SLACK_SIGNING_SECRET``).
        policy: ``[comms.slack]``; its ``users`` map Slack user IDs back to responder names.
        access: ``[routing.slack_commands]``: who may run commands (default: everyone).
        group_members: looks up user-group members, needed when ``access`` names groups.
        timeout: seconds to wait for the workflow (Slack gives up after 3).
        replays: remembers accepted signatures (default: a cache of this router's own).
    """
    secret = signing_secret.encode()
    names = {user_id: name for name, user_id in policy.users.items()}
    allowed = access or SlackCommandAccess()
    seen = replays or ReplayCache()
    router = APIRouter(tags=["slack"])

    async def permitted(user_id: str) -> str | None:
        """None when ``user_id`` may run commands, else the refusal."""
        if not allowed.restricted or user_id in allowed.users:
            return None
        refusal = "⛔ You are not allowed to run incident commands; ask an incident lead."
        if not allowed.groups:
            return refusal
        if group_members is None:
            log.warning("slash command: user groups are allowed but SLACK_BOT_TOKEN is not set")
            return refusal
        try:
            for group in allowed.groups:
                if user_id in await asyncio.wait_for(group_members(group), 1.5):
                    return None
        except Exception as error:  # Slack unreachable: refuse, never guess
            log.warning("slash command: cannot look up user groups: %s", error)
            return "⚠️ Cannot check your user groups with Slack right now; use the CLI."
        return refusal

    @router.post("/slack/commands", summary="Slack /incident slash command")
    async def slash_command(request: Request) -> JSONResponse:
        """Verify Slack's signature, then apply the command to the incident."""
        timestamp = request.headers.get(TIMESTAMP_HEADER)
        signature = request.headers.get(SIGNATURE_HEADER)
        if timestamp is None or signature is None:
            return _reply("missing Slack signature headers", 401, unread=True)
        if not _fresh(timestamp, time.time()):
            return _reply("stale or invalid Slack request timestamp", 401, unread=True)
        try:
            body = await asyncio.wait_for(read_body(request, MAX_BODY), timeout)
        except WebhookError as error:
            return _reply(error.body.error, error.status, unread=True)
        except TimeoutError:
            return _reply("request body not received in time", 408, unread=True)
        expected = _sign(secret, timestamp, body)
        if not hmac.compare_digest(signature.encode("utf-8", "replace"), expected.encode()):
            return _reply("invalid Slack signature", 401)
        if not seen.claim("slack:" + expected):
            log.warning("slash command: replayed signature refused")
            return _reply("this request was already handled", 409)
        form = _form(body)
        if form is None:
            return _reply("malformed form body: expected UTF-8 x-www-form-urlencoded", 400)
        if form.get("ssl_check") == "1":  # Slack checking the certificate: nothing to do
            return JSONResponse({})
        user_id = form.get("user_id", "")
        if not user_id:
            return _reply("missing user_id", 400)
        refusal = await permitted(user_id)
        if refusal is not None:
            log.info("slash command refused for Slack user %r", user_id[:40])
            return _reply(refusal)
        try:
            command = parse(form.get("text", ""), form.get("channel_name", ""))
        except CommandError as error:
            return _reply(str(error))
        responder = names.get(user_id) or user_id[:40]
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
    elif command.verb == "rootcause":
        result = await incidents.command(
            target,
            IncidentWorkflow.set_record,
            RecordInput(responder=responder, root_cause=command.rest),
        )
    elif command.verb == "resolution":
        result = await incidents.command(
            target,
            IncidentWorkflow.set_record,
            RecordInput(responder=responder, resolution=command.rest),
        )
    elif command.verb == "check":
        result = await incidents.command(
            target, IncidentWorkflow.check, CheckInput(responder=responder, item=command.rest)
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
