"""Who and where in Slack: responder names to user IDs, channel names to channel IDs."""

from __future__ import annotations

import time
from dataclasses import dataclass

from activities.slack.api import SlackApi
from activities.templates import Trusted
from domain.comms import SlackPolicy, escape_mrkdwn


@dataclass(frozen=True)
class Person:
    """A notification target as Slack knows it."""

    name: str
    """The name used by the CLI and the policy, without ``@``."""
    user_id: str | None = None
    """Slack user ID, when the target is a known user."""
    group_id: str | None = None
    """Slack user-group ID, when the target is a known group."""

    @property
    def mention(self) -> Trusted:
        """``<@U…>``, ``<!subteam^S…>``, or the escaped name (which pings nobody)."""
        if self.user_id:
            return Trusted(f"<@{self.user_id}>")
        if self.group_id:
            return Trusted(f"<!subteam^{self.group_id}>")
        return Trusted(escape_mrkdwn(f"@{self.name}"))


MISSING_CHANNEL_TTL = 300.0
"""Seconds a channel name that Slack did not list is taken as missing without asking again."""


class SlackDirectory:
    """Resolves names through the policy first, then Slack (cached for the worker's life).

    Args:
        api: the Slack API wrapper.
        policy: the ``[comms.slack]`` policy.
    """

    def __init__(self, api: SlackApi, policy: SlackPolicy) -> None:
        self._api = api
        self._policy = policy
        self._people: dict[str, Person] = {}
        self._channels: dict[str, str] = dict(policy.channels)
        self._joined: set[str] = set()
        self._missing: dict[str, float] = {}

    async def person(self, target: str) -> Person:
        """The Slack identity of ``target`` (``@alice``, ``alice`` or ``@oncall-sre``)."""
        name = target.strip().lstrip("@")
        key = name.lower()
        known = self._people.get(key)
        if known is not None:
            return known
        person = Person(name=name)
        if key in self._policy.users:
            person = Person(name=name, user_id=self._policy.users[key])
        elif key in self._policy.groups:
            person = Person(name=name, group_id=self._policy.groups[key])
        elif self._policy.email_domain and key:
            data = await self._api.call(
                "users.lookupByEmail",
                self._api.client.users_lookupByEmail(email=f"{key}@{self._policy.email_domain}"),
                tolerate={"users_not_found", "user_not_found"},
            )
            user_id = (data.get("user") or {}).get("id") if data.get("ok") else None
            person = Person(name=name, user_id=user_id)
        self._people[key] = person
        return person

    async def channel_id(self, name: str) -> str | None:
        """The ID of public channel ``#name``: from the policy, else ``conversations.list``.

        Every channel a listing shows is remembered, and so is a name it did not show
        (for :data:`MISSING_CHANNEL_TTL`), so an alert storm naming a channel that does
        not exist lists the workspace once, not once per message.
        """
        key = "#" + name.lstrip("#").lower()
        if key in self._channels:
            return self._channels[key]
        missed = self._missing.get(key)
        if missed is not None and time.monotonic() - missed < MISSING_CHANNEL_TTL:
            return None
        cursor: str | None = None
        while True:
            data = await self._api.call(
                "conversations.list",
                self._api.client.conversations_list(
                    types="public_channel", exclude_archived=True, limit=1000, cursor=cursor
                ),
            )
            for channel in data.get("channels") or []:
                self._channels["#" + str(channel.get("name", "")).lower()] = str(channel["id"])
            if key in self._channels:
                return self._channels[key]
            cursor = (data.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                self._missing[key] = time.monotonic()
                return None

    def remember_channel(self, name: str, channel_id: str) -> None:
        """Cache a channel ID learned elsewhere (e.g. from ``conversations.create``)."""
        key = "#" + name.lstrip("#").lower()
        self._channels[key] = channel_id
        self._missing.pop(key, None)

    async def join(self, channel_id: str) -> None:
        """Make sure the bot is a member of a public channel (needed to read its history)."""
        if channel_id in self._joined:
            return
        await self._api.call(
            "conversations.join",
            self._api.client.conversations_join(channel=channel_id),
            tolerate={"already_in_channel", "method_not_supported_for_channel_type"},
        )
        self._joined.add(channel_id)
