"""The interface every notification channel implements."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from domain.models import Notification, NotifyResult


class Channel(Protocol):
    """One way of delivering notifications (console/outbox, Slack, status page, e-mail).

    ``deliver`` must be safe to call again with the same notification: the
    notify activity may be retried, and a channel must not show the message
    twice (use ``notification.key`` and ``notification.refs``).
    """

    name: str

    async def deliver(self, notification: Notification) -> NotifyResult:
        """Deliver one notification.

        Raises:
            temporalio.exceptions.ApplicationError: non-retryable for permanent
                failures, with ``next_retry_delay`` for rate limits.
        """
        ...


@runtime_checkable
class FileSharer(Protocol):
    """A channel that can put a document in front of the incident's responders."""

    async def share_file(
        self, refs: dict[str, str], filename: str, content: bytes, comment: str
    ) -> str | None:
        """Share ``content`` once per ``filename``; returns why it was not shared, if so.

        Raises:
            temporalio.exceptions.ApplicationError: as :meth:`Channel.deliver` does.
        """
        ...
