"""The single notify activity: every outgoing message goes through here."""

from __future__ import annotations

from collections.abc import Sequence

from temporalio import activity

from activities.channels import Channel
from domain.models import Notification, NotifyResult


class Notifier:
    """Fans a notification out to the configured channels.

    Channels run in order; their refs are merged. A channel raising a retryable
    error makes Temporal retry the whole activity, which is why every channel's
    ``deliver`` is idempotent per ``notification.key``.
    """

    def __init__(self, channels: Sequence[Channel]) -> None:
        self._channels = list(channels)

    @activity.defn(name="notify")
    async def notify(self, notification: Notification) -> NotifyResult:
        """Deliver ``notification`` through every channel."""
        merged = NotifyResult()
        for channel in self._channels:
            result = await channel.deliver(notification)
            merged.refs.update(result.refs)
            merged.failures.extend(f"{channel.name}: {failure}" for failure in result.failures)
            notification.refs.update(result.refs)
        return merged
