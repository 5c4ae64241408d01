"""The monthly report in Slack: one post in the announcement channel, the charts in its thread.

:class:`ReportingSlackChannel` is the worker's ``slack`` channel: a monthly report it
delivers itself, anything else goes to the incident :class:`SlackChannel` it wraps.
A report is no incident, so it gets no incident channel: it is posted to the
channels the notification targets (the policy's incidents channel) with the
notification key in its metadata, and the PNG charts are uploaded into that post's
thread with ``files_upload_v2``.

Exactly once: a retried delivery finds its post by the key and the charts already in
the thread by file name, and posts or uploads only what is missing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.channels import Channel
from activities.reports import charts_of
from activities.slack.api import SlackApi
from activities.slack.channel import METADATA_EVENT, find_post, slack_context
from activities.slack.directory import SlackDirectory
from activities.slack.files import share_once
from activities.templates import Templates, Trusted
from domain.comms import SlackPolicy
from domain.models import Notification, NotificationKind, NotifyResult


class ReportingSlackChannel:
    """Slack with monthly reports: reports here, everything else to ``incidents``.

    Args:
        incidents: the incident channel (:class:`activities.slack.SlackChannel`).
        api: the same Slack API wrapper the incident channel uses.
        templates: templates with the ``slack`` medium.
        policy: the ``[comms.slack]`` policy (channel IDs).
    """

    name = "slack"

    def __init__(
        self, incidents: Channel, api: SlackApi, templates: Templates, policy: SlackPolicy
    ) -> None:
        self._incidents = incidents
        self._api = api
        self._client = api.client
        self._templates = templates
        self._directory = SlackDirectory(api, policy)

    async def share_file(
        self, refs: dict[str, str], filename: str, content: bytes, comment: str
    ) -> str | None:
        """Share a document in the incident's channel, once per file name."""
        return await share_once(self._api, refs, filename, content, comment)

    async def deliver(self, notification: Notification) -> NotifyResult:
        """Post a monthly report once; hand anything else to the incident channel."""
        if notification.kind is not NotificationKind.MONTHLY_REPORT:
            return await self._incidents.deliver(notification)
        result = NotifyResult()
        lookup = activity.in_activity() and activity.info().attempt > 1
        for target in notification.targets:  # channels, with or without their #
            channel_id = await self._directory.channel_id(target)
            if channel_id is None:
                result.failures.append(
                    f"announcement channel {target} not found; create it or map it in "
                    "[comms.slack.channels]"
                )
                continue
            await self._directory.join(channel_id)
            ts = await find_post(self._api, channel_id, notification) if lookup else None
            if ts is None:
                ts = await self._post(channel_id, notification)
            await self._attach(channel_id, ts, charts_of(notification.refs), result, lookup)
        return result

    async def _post(self, channel_id: str, notification: Notification) -> str:
        extra = slack_context(
            channel=Trusted(f"<#{channel_id}>"),
            ic=Trusted(""),
            mentions=Trusted(""),
            actor=notification.actor,
        )
        data = await self._api.call(
            "chat.postMessage",
            self._client.chat_postMessage(
                channel=channel_id,
                text=self._templates.render("slack", notification, **extra),
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

    async def _attach(
        self, channel_id: str, ts: str, charts: list[Path], result: NotifyResult, lookup: bool
    ) -> None:
        """Upload the charts the thread does not have yet."""
        there = await self._attached(channel_id, ts) if lookup else set()
        uploads: list[dict[str, Any]] = []
        for path in charts:
            if path.name in there:
                continue
            try:
                content = await asyncio.to_thread(path.read_bytes)
            except FileNotFoundError:
                result.failures.append(
                    f"chart {path.name} not found on this worker (is the data directory shared?)"
                )
                continue
            uploads.append({"content": content, "filename": path.name, "title": path.stem})
        if not uploads:
            return
        try:
            await self._api.call(
                "files.upload",
                self._client.files_upload_v2(
                    channel=channel_id, thread_ts=ts, file_uploads=uploads
                ),
            )
        except ApplicationError as error:
            if not error.non_retryable:
                raise
            result.failures.append(f"charts not attached: {error.message}")

    async def _attached(self, channel_id: str, ts: str) -> set[str]:
        data = await self._api.call(
            "conversations.replies",
            self._client.conversations_replies(channel=channel_id, ts=ts, limit=200),
        )
        return {
            str(file.get("name", ""))
            for message in data.get("messages") or []
            for file in message.get("files") or []
        }
