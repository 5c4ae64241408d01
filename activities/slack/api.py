"""A thin layer over slack-sdk that turns Slack's answers into Temporal's retry semantics."""

from __future__ import annotations

from collections.abc import Awaitable, Collection
from datetime import timedelta
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from temporalio.exceptions import ApplicationError

from domain.comms import SlackSettings

PERMANENT_ERRORS: dict[str, str] = {
    "invalid_auth": "the bot token is invalid",
    "not_authed": "no bot token was sent",
    "account_inactive": "the bot's account or workspace is deactivated",
    "token_revoked": "the bot token was revoked",
    "token_expired": "the bot token expired",
    "no_permission": "the bot lacks permission",
    "missing_scope": "the Slack app lacks an OAuth scope",
    "not_allowed_token_type": "this call needs a bot token (xoxb-)",
    "channel_not_found": "the channel does not exist or the bot cannot see it",
    "is_archived": "the channel is archived",
    "not_in_channel": "the bot is not a member of the channel",
    "restricted_action": "a workspace setting forbids this",
    "invalid_name": "the channel name is not valid",
    "invalid_name_specials": "the channel name is not valid",
    "invalid_arguments": "Slack rejected the request's arguments",
    "invalid_metadata_format": "Slack rejected the message metadata",
    "invalid_metadata_schema": "Slack rejected the message metadata",
    "msg_too_long": "the message is too long",
    "team_access_not_granted": "the token has no access to this workspace",
    "user_not_found": "the user does not exist",
    "user_is_bot": "the user is a bot",
    "cannot_dm_bot": "bots cannot receive direct messages",
}
"""Slack errors that no retry can fix, with what they mean for an operator."""


def new_slack_client(settings: SlackSettings) -> AsyncWebClient:
    """An ``AsyncWebClient`` with its own retries off: Temporal owns retries."""
    token = settings.bot_token.get_secret_value() if settings.bot_token else None
    return AsyncWebClient(
        token=token,
        base_url=settings.api_url,
        timeout=int(settings.timeout),
        retry_handlers=[],
    )


class SlackApi:
    """Calls Slack and maps failures: 429 → retry after ``Retry-After``; permanent
    errors → non-retryable; anything else → retryable.

    Args:
        client: the slack-sdk client (tests point its ``base_url`` at a local server).
    """

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    async def call(
        self,
        method: str,
        request: Awaitable[AsyncSlackResponse],
        *,
        tolerate: Collection[str] = (),
    ) -> dict[str, Any]:
        """Await ``request`` (a pending ``client.<method>(...)`` call) and return its data.

        Errors named in ``tolerate`` are returned as ``{"ok": False, "error": ...}``
        instead of raising.

        Raises:
            ApplicationError: retryable (with ``next_retry_delay`` on 429) or not.
        """
        try:
            response = await request
        except SlackApiError as error:
            data = error.response.data if isinstance(error.response.data, dict) else {}
            code = str(data.get("error", ""))
            if code and code in tolerate:
                return dict(data)
            raise _application_error(method, error.response, code) from None
        return dict(response.data) if isinstance(response.data, dict) else {}


def _application_error(method: str, response: AsyncSlackResponse, code: str) -> ApplicationError:
    status = response.status_code
    if status == 429 or code == "ratelimited":
        delay = _retry_after(response.headers)
        return ApplicationError(
            f"Slack {method} rate limited; retry after {delay.total_seconds():g}s",
            type="SlackRateLimited",
            next_retry_delay=delay,
        )
    if code in PERMANENT_ERRORS:
        return ApplicationError(
            f"Slack {method} failed: {code} ({PERMANENT_ERRORS[code]})",
            type="SlackPermanentError",
            non_retryable=True,
        )
    return ApplicationError(
        f"Slack {method} failed: {code or 'HTTP ' + str(status)}", type="SlackError"
    )


def _retry_after(headers: Any) -> timedelta:
    value = None
    if headers is not None:
        value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        seconds = float(value) if value is not None else 1.0
    except (TypeError, ValueError):
        seconds = 1.0
    return timedelta(seconds=max(seconds, 1.0))
