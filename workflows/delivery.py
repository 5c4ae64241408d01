"""One notification through one channel, as every workflow that notifies delivers it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, CancelledError

with workflow.unsafe.imports_passed_through():
    from activities.notify import Notifier
    from domain.models import ChannelDelivery, Notification, NotifyResult

DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=15),
)
"""Retries of a failing channel: at most 15 s apart, so a channel that comes back is used
within 15 s (one message per channel retries at a time; a 429 waits its Retry-After)."""
DELIVERY_ATTEMPT = timedelta(minutes=2)
"""One attempt of one channel: several Slack calls, or an SMTP exchange of up to 30 s."""
DELIVERY_HEARTBEAT = timedelta(seconds=20)
"""A worker that dies mid-delivery is noticed this fast (the activity beats every 5 s)."""
DELIVERY_GIVE_UP = timedelta(minutes=30)
"""A channel that fails this long gives the message up (pages then go to the fallback)."""


async def deliver_via(
    channel: str, notification: Notification, refs: dict[str, str]
) -> NotifyResult:
    """Deliver ``notification`` through ``channel``; a give-up comes back as a failure.

    The activity is abandoned, not cancelled, when the caller stops for a
    continue-as-new: the closing run takes it along and the next run delivers again
    (channels are idempotent per notification key).

    Raises:
        asyncio.CancelledError: the caller is stopping.
    """
    handoff = notification.model_copy(update={"refs": dict(refs), "pending": []})
    try:
        return await workflow.execute_activity_method(
            Notifier.deliver_via,
            ChannelDelivery(channel=channel, notification=handoff),
            start_to_close_timeout=DELIVERY_ATTEMPT,
            heartbeat_timeout=DELIVERY_HEARTBEAT,
            schedule_to_close_timeout=DELIVERY_GIVE_UP,
            retry_policy=DELIVERY_RETRY,
            cancellation_type=workflow.ActivityCancellationType.ABANDON,
            summary=f"{channel}: {notification.kind.value} {', '.join(notification.targets)}",
        )
    except ActivityError as error:
        if isinstance(error.cause, CancelledError):
            raise asyncio.CancelledError from None
        return NotifyResult(failures=[str(error.cause) if error.cause else str(error)])
