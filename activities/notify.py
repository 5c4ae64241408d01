"""The notify activities: every outgoing message goes through here.

``deliver_via`` delivers through one channel (what incidents use); ``notify``
fans out to every channel in one activity (what incidents of the first release,
still running, use).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import progress
from activities.channels import Channel
from domain.models import ChannelDelivery, Notification, NotifyResult

log = logging.getLogger("incidents.notify")

HEARTBEAT_EVERY = timedelta(seconds=5)
"""How often ``deliver_via`` heartbeats while a channel works (its heartbeat timeout is
a few times this)."""


class Notifier:
    """Fans a notification out to the configured channels.

    Every channel gets its turn even when another one fails, so a rate-limited
    Slack does not hold back the status page:

    * a channel raising a non-retryable ``ApplicationError`` (bad token, archived
      channel...) becomes a failure recorded in the incident timeline;
    * a channel raising anything else is retried by Temporal: once every other
      channel has run, the activity fails with that error (with the longest
      ``next_retry_delay`` asked for, e.g. Slack's ``Retry-After``).

    Channels that finished are checkpointed in the activity's heartbeat details,
    so a retry only re-runs the channels that did not; a retried channel must
    still be idempotent per ``notification.key`` because a worker can die
    before its checkpoint reaches the server.
    """

    def __init__(self, channels: Sequence[Channel]) -> None:
        self._channels = list(channels)
        names = [channel.name for channel in self._channels]
        if len(set(names)) != len(names):
            raise ValueError(f"channel names must be unique, got {names}")
        self._by_name = {channel.name: channel for channel in self._channels}

    @activity.defn(name="notify")
    async def notify(self, notification: Notification) -> NotifyResult:
        """Deliver ``notification`` through every channel."""
        done = _checkpoint()
        retry: list[tuple[str, BaseException]] = []
        for channel in self._channels:
            result = done.get(channel.name)
            if result is None:
                try:
                    result = await channel.deliver(notification)
                except ApplicationError as error:
                    if not error.non_retryable:
                        retry.append((channel.name, error))
                        continue
                    result = NotifyResult(failures=[error.message])
                except Exception as error:  # any other failure is transient: Temporal retries
                    retry.append((channel.name, error))
                    continue
                done[channel.name] = result
                _save_checkpoint(done)
            notification.refs.update(result.refs)
        if retry:
            raise _retry_error(retry)
        return _merge(done, self._channels)

    @activity.defn(name="deliver_via")
    async def deliver_via(self, delivery: ChannelDelivery) -> NotifyResult:
        """Deliver one notification through one channel.

        The incident runs one of these per channel, so a slow or failing channel
        delays nobody else. A permanent failure (non-retryable ``ApplicationError``)
        is returned as a failure; anything else is retried by Temporal. The activity
        heartbeats while the channel works, so a worker that dies mid-delivery is
        noticed in seconds rather than at the end of the start-to-close timeout.
        """
        channel = self._by_name.get(delivery.channel)
        if channel is None:
            return NotifyResult(failures=[f"{delivery.channel}: not configured on this worker"])
        with progress.tracked() as details:
            work = asyncio.ensure_future(channel.deliver(delivery.notification))
            try:
                while True:
                    done, _ = await asyncio.wait({work}, timeout=HEARTBEAT_EVERY.total_seconds())
                    if done:
                        break
                    activity.heartbeat(*details)
            finally:
                work.cancel()  # cancelled or timed out: the channel stops too
        try:
            return work.result()
        except ApplicationError as error:
            if not error.non_retryable:
                raise
            return NotifyResult(failures=[error.message])

    @property
    def channel_names(self) -> list[str]:
        """The configured channels, in delivery order."""
        return [channel.name for channel in self._channels]


def _checkpoint() -> dict[str, NotifyResult]:
    """Results of the channels an earlier attempt already delivered."""
    if not activity.in_activity():
        return {}
    details = activity.info().heartbeat_details
    if not details or not isinstance(details[0], dict):
        return {}
    return {str(name): NotifyResult.model_validate(data) for name, data in details[0].items()}


def _save_checkpoint(done: dict[str, NotifyResult]) -> None:
    if activity.in_activity():
        activity.heartbeat({name: result.model_dump(mode="json") for name, result in done.items()})


def _merge(done: dict[str, NotifyResult], channels: Sequence[Channel]) -> NotifyResult:
    merged = NotifyResult()
    for channel in channels:
        result = done[channel.name]
        merged.refs.update(result.refs)
        merged.failures.extend(f"{channel.name}: {failure}" for failure in result.failures)
        merged.sent.extend(f"{channel.name}: {sent}" for sent in result.sent)
    return merged


def _retry_error(retry: list[tuple[str, BaseException]]) -> ApplicationError:
    delays = [
        error.next_retry_delay
        for _, error in retry
        if isinstance(error, ApplicationError) and error.next_retry_delay is not None
    ]
    summary = "; ".join(f"{name}: {error}" for name, error in retry)
    for name, error in retry:
        log.warning("channel %s will be retried: %s", name, error)
    details: list[Any] = [name for name, _ in retry]
    delay: timedelta | None = max(delays) if delays else None
    error = ApplicationError(
        f"retrying channel(s) {summary}",
        *details,
        type="ChannelRetry",
        next_retry_delay=delay,
    )
    error.__cause__ = retry[0][1]
    return error
