"""Alerts bound for one incident share signals while a signal to it is on its way.

An alert storm sends most alerts to one incident (the alert-storm incident, or a
big incident with many alerts). One signal per alert makes that workflow take a
workflow task per alert, faster than it can replay after a continue-as-new. So
while a signal to an incident is in flight, further alerts for it queue up here
and go together in the next one (:meth:`IncidentWorkflow.alert_batch`). A lone
alert goes at once, as before: batching adds no delay, it only uses the time a
signal takes anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Literal

from domain.models import AlertEvent

Status = Literal["firing", "resolved"]
Sender = Callable[[str, list[tuple[Status, AlertEvent]]], Awaitable[bool]]
Waiting = list[tuple[Status, AlertEvent, "asyncio.Future[bool]"]]

MAX_BATCH = 100
"""Alerts one signal carries at most (each is capped at about 2 KiB)."""


class SignalBatcher:
    """Per incident, one signal in flight; alerts arriving meanwhile ride the next one.

    Args:
        send: signals a batch to an incident; False when the incident has completed.
    """

    def __init__(self, send: Sender) -> None:
        self._send = send
        self._queues: dict[str, Waiting] = {}
        self._draining: set[asyncio.Future[None]] = set()

    async def signal(self, incident_id: str, status: Status, alert: AlertEvent) -> bool:
        """Returns once the alert is durably signalled (False: the incident completed)."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(incident_id)
        if queue is None:
            self._queues[incident_id] = queue = []
            queue.append((status, alert, done))
            drain = asyncio.ensure_future(self._drain(incident_id, queue))
            self._draining.add(drain)  # a task nobody holds may be collected mid-flight
            drain.add_done_callback(self._draining.discard)
        else:
            queue.append((status, alert, done))
        return await asyncio.shield(done)

    async def _drain(
        self, incident_id: str, queue: list[tuple[Status, AlertEvent, asyncio.Future[bool]]]
    ) -> None:
        try:
            while queue:
                batch = queue[:MAX_BATCH]
                del queue[:MAX_BATCH]
                try:
                    delivered = await self._send(
                        incident_id, [(status, alert) for status, alert, _ in batch]
                    )
                except BaseException as error:  # every waiter gets it, not just one
                    for _, _, done in batch:
                        if not done.done():
                            done.set_exception(error)
                    if not isinstance(error, Exception):
                        raise
                    continue
                for _, _, done in batch:
                    if not done.done():
                        done.set_result(delivered)
        finally:
            del self._queues[incident_id]
            for _, _, done in queue:  # only if cancelled: nobody is left to send these
                if not done.done():
                    done.set_exception(RuntimeError("alert batching stopped"))
