"""Sharing a file in an incident's Slack channel, once per file name."""

from __future__ import annotations

from activities.slack.api import SlackApi


async def share_once(
    api: SlackApi, refs: dict[str, str], filename: str, content: bytes, comment: str
) -> str | None:
    """Upload ``content`` as ``filename`` into the incident's channel unless a recent
    message there already carries a file of that name; returns why nothing was shared.

    File names carry a content hash, so a retry finds its upload and a changed
    document is shared again.
    """
    channel_id = refs.get("slack.channel")
    if not channel_id:
        return "the incident has no Slack channel"
    history = await api.call(
        "conversations.history", api.client.conversations_history(channel=channel_id, limit=200)
    )
    for message in history.get("messages") or []:
        if any(file.get("name") == filename for file in message.get("files") or []):
            return None
    await api.call(
        "files.upload",
        api.client.files_upload_v2(
            channel=channel_id,
            content=content,
            filename=filename,
            title=filename,
            initial_comment=comment,
        ),
    )
    return None
