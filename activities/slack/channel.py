"""The Slack notification channel: the incident channel and everything posted to it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.slack.api import SlackApi
from activities.slack.directory import Person, SlackDirectory
from activities.slack.files import share_once
from activities.templates import Templates, Trusted
from domain.comms import SlackPolicy, incident_channel_name
from domain.models import Notification, NotificationKind, NotifyResult

METADATA_EVENT = "incident_notification"
"""``event_type`` of the metadata on every message we post; its payload carries the
notification key, which is how a retry finds a message it already posted."""

DIRECT_MESSAGE_KINDS = frozenset(
    {
        NotificationKind.PAGE,
        NotificationKind.NUDGE,
        NotificationKind.SLA_BREACH,
        NotificationKind.POSTMORTEM_REMINDER,
        NotificationKind.POSTMORTEM_OVERDUE,
        NotificationKind.POSTMORTEM_REVIEW,
        NotificationKind.ACTION_REMINDER,
        NotificationKind.ACTION_OVERDUE,
        NotificationKind.ACTION_ESCALATED,
        NotificationKind.ACTION_DIGEST,
    }
)
"""Messages that also reach each targeted user by direct message."""

_INVITE_TOLERATED = {"already_in_channel", "cant_invite_self"}
_INVITE_SKIPPED = {"user_not_found", "cant_invite", "user_is_restricted", "user_disabled"}
_LOOKBACK = timedelta(minutes=10)
_NOT_PEOPLE = {"", "system", "unknown"}


def _is_retry() -> bool:
    return activity.in_activity() and activity.info().attempt > 1


class SlackChannel:
    """Delivers notifications to Slack.

    The first notification of an incident creates (or reuses) ``#inc-<id>-<slug>``
    and invites the commander and responders; every notification is posted
    there, announcements also go to the ``#channel`` targets, and pages, nudges
    and reminders also reach the targeted people by direct message.

    Exactly once: the channel ID travels in ``notification.refs``; each message
    carries the notification key in its metadata, and a retried activity looks
    for it before posting again.

    Args:
        api: Slack API wrapper around an ``AsyncWebClient``.
        templates: templates with the ``slack`` medium.
        policy: the ``[comms.slack]`` policy (user and channel IDs).
    """

    name = "slack"

    def __init__(self, api: SlackApi, templates: Templates, policy: SlackPolicy) -> None:
        self._api = api
        self._client = api.client
        self._templates = templates
        self._policy = policy
        self._directory = SlackDirectory(api, policy)

    async def share_file(
        self, refs: dict[str, str], filename: str, content: bytes, comment: str
    ) -> str | None:
        """Share a document in the incident's channel, once per file name."""
        return await share_once(self._api, refs, filename, content, comment)

    async def deliver(self, notification: Notification) -> NotifyResult:
        """Post ``notification`` wherever it belongs in Slack, once."""
        result = NotifyResult()
        lookup = _is_retry()
        channel_id = await self._incident_channel(notification, result)
        people = [
            await self._directory.person(target)
            for target in notification.targets
            if not target.startswith("#")
        ]
        if notification.kind is NotificationKind.ACKNOWLEDGED and notification.incident.commander:
            await self._invite(channel_id, [notification.incident.commander], result)
        if notification.kind is NotificationKind.PAGE:
            await self._invite(channel_id, [p.name for p in people if p.user_id], result)
        text = await self._render(notification, channel_id, people)
        ts = await self._post(channel_id, text, notification, lookup=lookup)
        if notification.kind is NotificationKind.DECLARED:
            result.refs["slack.declared_ts"] = ts
        for target in notification.targets:
            if target.startswith("#"):
                await self._announce(target, channel_id, text, notification, result, lookup)
        if notification.kind in DIRECT_MESSAGE_KINDS:
            for person in people:
                if person.user_id:
                    await self._direct(person, text, notification, lookup)
        return result

    async def _incident_channel(self, notification: Notification, result: NotifyResult) -> str:
        known = notification.refs.get("slack.channel")
        if known:
            return known
        name = incident_channel_name(notification.incident)
        data = await self._api.call(
            "conversations.create",
            self._client.conversations_create(name=name, is_private=False),
            tolerate={"name_taken"},
        )
        if data.get("ok"):
            channel_id = str(data["channel"]["id"])
        else:
            found = await self._directory.channel_id(name)
            if found is None:
                raise ApplicationError(
                    f"Slack channel #{name} exists but the bot cannot see it "
                    "(private or archived); rename it or add it to the bot",
                    type="SlackPermanentError",
                    non_retryable=True,
                )
            channel_id = found
            await self._directory.join(channel_id)
        self._directory.remember_channel(name, channel_id)
        result.refs["slack.channel"] = channel_id
        result.refs["slack.channel_name"] = name
        invitees = [notification.incident.commander or "", *self._policy.invite]
        if notification.kind is NotificationKind.DECLARED:
            invitees.append(notification.actor or "")
        await self._invite(channel_id, invitees, result)
        return channel_id

    async def _invite(self, channel_id: str, names: list[str], result: NotifyResult) -> None:
        user_ids: list[str] = []
        for name in names:
            if name.lstrip("@").lower() in _NOT_PEOPLE:
                continue
            person = await self._directory.person(name)
            if person.user_id and person.user_id not in user_ids:
                user_ids.append(person.user_id)
        for user_id in user_ids:
            data = await self._api.call(
                "conversations.invite",
                self._client.conversations_invite(channel=channel_id, users=user_id),
                tolerate=_INVITE_TOLERATED | _INVITE_SKIPPED,
            )
            if not data.get("ok") and data.get("error") in _INVITE_SKIPPED:
                result.failures.append(f"could not invite <@{user_id}>: {data.get('error')}")

    async def _render(
        self, notification: Notification, channel_id: str, people: list[Person]
    ) -> str:
        commander = notification.incident.commander
        ic = (await self._directory.person(commander)).mention if commander else Trusted("")
        mentions = Trusted(" ".join(person.mention for person in people)) if people else ic
        extra = slack_context(
            channel=Trusted(f"<#{channel_id}>"),
            ic=ic,
            mentions=mentions,
            actor=notification.actor,
        )
        return self._templates.render("slack", notification, **extra)

    async def _announce(
        self,
        target: str,
        incident_channel: str,
        text: str,
        notification: Notification,
        result: NotifyResult,
        lookup: bool,
    ) -> None:
        channel_id = await self._directory.channel_id(target)
        if channel_id is None:
            result.failures.append(
                f"announcement channel {target} not found; create it or map it in "
                "[comms.slack.channels]"
            )
            return
        if channel_id == incident_channel:
            return
        await self._directory.join(channel_id)
        await self._post(channel_id, text, notification, lookup=lookup)

    async def _direct(
        self, person: Person, text: str, notification: Notification, lookup: bool
    ) -> None:
        data = await self._api.call(
            "conversations.open", self._client.conversations_open(users=person.user_id)
        )
        await self._post(str(data["channel"]["id"]), text, notification, lookup=lookup)

    async def _post(
        self, channel_id: str, text: str, notification: Notification, *, lookup: bool
    ) -> str:
        if lookup:
            earlier = await find_post(self._api, channel_id, notification)
            if earlier is not None:
                return earlier
        data = await self._api.call(
            "chat.postMessage",
            self._client.chat_postMessage(
                channel=channel_id,
                text=text,
                metadata={
                    "event_type": METADATA_EVENT,
                    "event_payload": {
                        "key": notification.key,
                        "incident": notification.incident.id,
                        "kind": notification.kind.value,
                    },
                },
                unfurl_links=False,
                unfurl_media=False,
                link_names=False,
            ),
        )
        return str(data.get("ts", ""))


async def find_post(api: SlackApi, channel_id: str, notification: Notification) -> str | None:
    """The ``ts`` of ``notification``'s earlier post in ``channel_id`` (found by the key in
    its metadata, among the posts of the last 10 minutes before it), if any."""
    oldest = f"{(notification.at - _LOOKBACK).timestamp():.6f}"
    cursor: str | None = None
    while True:
        data = await api.call(
            "conversations.history",
            api.client.conversations_history(
                channel=channel_id,
                oldest=oldest,
                include_all_metadata=True,
                limit=200,
                cursor=cursor,
            ),
        )
        for message in data.get("messages") or []:
            if _posted_for(message, notification.key):
                return str(message.get("ts", ""))
        cursor = (data.get("response_metadata") or {}).get("next_cursor") or None
        if not cursor:
            return None


def slack_context(
    *, channel: Trusted, ic: Trusted, mentions: Trusted, actor: str | None
) -> dict[str, Any]:
    """Variables the ``slack`` templates get besides the standard ones."""
    return {
        "channel": channel,
        "ic": ic,
        "mentions": mentions or Trusted("responders"),
        "actor": actor or "system",
    }


def _posted_for(message: dict[str, Any], key: str) -> bool:
    metadata = message.get("metadata") or {}
    payload = metadata.get("event_payload") or {}
    return bool(metadata.get("event_type") == METADATA_EVENT and payload.get("key") == key)
