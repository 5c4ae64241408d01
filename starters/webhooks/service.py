"""What every webhook endpoint shares: reading within limits, authenticating, handing over.

A request is read within its size limit and the deadline, authenticated
(claiming a signed request in the replay cache), parsed (off the event loop
when large) and its alerts handed to Temporal by the deadline; what was not
handed over by then is answered as such.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from fastapi import Request
from pydantic import BaseModel, Field, SecretStr

from domain.routing import AlertSource, RoutingPolicy
from starters.webhooks.alerts import IncomingAlert
from starters.webhooks.auth import ReplayCache, authenticate
from starters.webhooks.body import CLOSE, PayloadT, parse, read_body
from starters.webhooks.config import DEFAULT_DEADLINE
from starters.webhooks.errors import ErrorBody, WebhookError
from starters.webhooks.gateway import TemporalGateway, Unavailable
from workflows.alert_group import AlertDelivery

log = logging.getLogger("incidents.webhooks")

PER_REQUEST_CONCURRENCY = 16
"""Alerts of one notification handed to Temporal at the same time."""


class IncidentOutcome(BaseModel):
    """What happened to one alert of the request."""

    alert: str
    """The alert's key (fingerprint, dedup_key...)."""
    incident_id: str | None
    """The incident it opened, joined, recovered in or acknowledged."""
    new: bool = False
    """True when this alert opened the incident."""
    action: Literal["opened", "joined", "recovered", "acknowledged", "ignored"]
    """``ignored``: a resolve or acknowledge with no open incident."""
    related_incident: str | None = None
    """For a repeat incident: the earlier incident it repeats."""
    message: str = ""
    """Details, e.g. why an acknowledge changed nothing."""


class DeliveryReport(ErrorBody):
    """503 answer when not every alert was handed over by the deadline.

    Sending the whole request again is safe: alerts already handed over join
    their open incident again (delivery is idempotent per alert group).
    """

    incidents: list[IncidentOutcome] = Field(default_factory=list)
    """Alerts Temporal has recorded, in request order."""
    retry: list[str] = Field(default_factory=list)
    """Keys of the alerts that were not handed over and must be sent again."""


@dataclass(frozen=True)
class Prepared:
    """An alert ready to hand over: its key, and what its group receives."""

    alert: IncomingAlert
    """The alert as the sender described it."""
    delivery: AlertDelivery | None
    """What its group receives; None: nothing to hand over (the outcome is ``ignore``)."""
    ignore: str = ""
    """Why the alert changes nothing, for the sender."""


@dataclass(frozen=True)
class Received:
    """An authenticated request body, and when its answer is due."""

    body: bytes
    """The raw body, within the size limit."""
    deadline: float
    """Event-loop time by which the request is answered."""


OFFLOAD_BYTES = 64 * 1024
"""Bodies larger than this are parsed in the parser thread, so the event loop keeps serving.

One thread, so parses queue instead of running side by side: pydantic-core holds the GIL
for a whole parse (tens of milliseconds for 1 MiB), and several at once would starve the
event loop of it in turn."""
_GRACE = 0.5
PAGERDUTY_MAX_BODY = 512 * 1024
"""PagerDuty's own limit on an Events API v2 event; no PagerDuty sender sends more."""


class WebhookService:
    """Everything the endpoints share: secrets, limits, routing and the gateway."""

    def __init__(
        self,
        *,
        gateway: TemporalGateway,
        routing: RoutingPolicy,
        tokens: dict[AlertSource, SecretStr | None],
        max_body_bytes: int,
        deadline_seconds: float = DEFAULT_DEADLINE,
        dedup_secret: bytes | None = None,
        replays: ReplayCache | None = None,
    ) -> None:
        self.gateway = gateway
        self.routing = routing
        self.tokens = tokens
        self.max_body_bytes = max_body_bytes
        self.deadline_seconds = deadline_seconds
        self.dedup_secret = dedup_secret or secrets.token_bytes(32)
        self.replays = replays or ReplayCache()
        self._parser = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook-parse")

    @asynccontextmanager
    async def receive(self, request: Request, source: AlertSource) -> AsyncIterator[Received]:
        """The authenticated body within the size limit and the deadline.

        A request authenticated by a signed timestamp is claimed in the replay
        cache for the duration of the ``async with``; it stays claimed only if
        the block completes, so a failed request can be retried as it is.

        Raises:
            WebhookError: 408, 413, 401, or 409 for a replayed signed request.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline_seconds
        limit = self.max_body_bytes
        if source is AlertSource.PAGERDUTY:
            limit = min(limit, PAGERDUTY_MAX_BODY)
        try:
            body = await asyncio.wait_for(read_body(request, limit), self.deadline_seconds)
        except TimeoutError:
            raise WebhookError(
                408,
                f"request body not received within {self.deadline_seconds:g}s",
                headers=CLOSE,
            ) from None
        try:
            credential = authenticate(
                request.headers,
                body,
                self.tokens.get(source),
                require_timestamp=self.routing.webhooks.require_signed_timestamp,
            )
        except WebhookError:
            client = request.client.host if request.client else "?"
            log.warning("rejected %s webhook from %s: bad credentials", source.value, client)
            raise
        key = credential.replay_key
        if key is not None and not self.replays.claim(f"{source.value}:{key}"):
            log.warning("rejected %s webhook: replayed signature", source.value)
            raise WebhookError(
                409,
                "replayed request: this signature was already accepted; "
                "sign every request with a fresh timestamp",
            )
        try:
            yield Received(body=body, deadline=deadline)
        except BaseException:
            if key is not None:
                self.replays.release(f"{source.value}:{key}")
            raise

    async def prepare(self, body: bytes, read: Callable[[bytes], list[Prepared]]) -> list[Prepared]:
        """``read(body)``, in a worker thread when the body is large."""
        if len(body) > OFFLOAD_BYTES:
            return await asyncio.get_running_loop().run_in_executor(self._parser, read, body)
        return read(body)

    async def prepare_event(self, body: bytes, model: type[PayloadT]) -> PayloadT:
        """``body`` validated into ``model``, in a worker thread when it is large."""
        if len(body) > OFFLOAD_BYTES:
            return await asyncio.get_running_loop().run_in_executor(
                self._parser, parse, body, model
            )
        return parse(body, model)

    def routed(self, alerts: list[IncomingAlert], *, received_at: datetime) -> list[Prepared]:
        """Each alert routed into what its group receives."""
        return [
            Prepared(alert=alert, delivery=alert.delivery(self.routing, received_at=received_at))
            for alert in alerts
        ]

    async def deliver(self, prepared: list[Prepared], *, deadline: float) -> list[IncidentOutcome]:
        """Hand every alert to Temporal by ``deadline`` (event-loop time).

        Raises:
            WebhookError: 503 with a :class:`DeliveryReport` unless every alert
                was handed over.
        """
        gate = asyncio.Semaphore(PER_REQUEST_CONCURRENCY)
        loop = asyncio.get_running_loop()

        async def one(item: Prepared) -> IncidentOutcome:
            alert = item.alert
            if item.delivery is None:
                return IncidentOutcome(
                    alert=alert.alert_key, incident_id=None, action="ignored", message=item.ignore
                )
            async with gate:
                if loop.time() >= deadline:
                    raise Unavailable("the request's deadline passed before it was handed over")
                result = await self.gateway.deliver(
                    item.delivery,
                    dedup_key=alert.dedup_key,
                    repeat_window=self.routing.repeat_window,
                    deadline=deadline,
                )
            log.info(
                "%s alert %r → %s (%s)",
                alert.source.value,
                alert.alert_key[:80],
                result.incident_id,
                result.action,
            )
            return IncidentOutcome(
                alert=alert.alert_key,
                incident_id=result.incident_id,
                new=result.new,
                action=result.action,
                related_incident=result.related_incident,
            )

        tasks = [asyncio.ensure_future(one(item)) for item in prepared]
        _, late = await asyncio.wait(tasks, timeout=max(0.0, deadline - loop.time()) + _GRACE)
        for task in late:  # only a connection attempt can outlive the deadline
            task.add_done_callback(_consume)
        outcomes: list[IncidentOutcome] = []
        retry: list[str] = []
        reasons: list[str] = []
        failures: list[BaseException] = []
        for item, task in zip(prepared, tasks, strict=True):
            error = None if task in late else task.exception()
            if task in late or isinstance(error, Unavailable):
                retry.append(item.alert.alert_key)
                reasons.append(str(error) if error else "the request's deadline passed")
            elif error is not None:
                failures.append(error)
            else:
                outcomes.append(task.result())
        if failures:
            raise failures[0]
        if retry:
            raise _not_handed_over(outcomes, retry, reasons[0])
        return outcomes


def _consume(task: asyncio.Future[IncidentOutcome]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.info("alert handed over too late: %s", task.exception())


def _not_handed_over(
    outcomes: list[IncidentOutcome], retry: list[str], reason: str
) -> WebhookError:
    if outcomes:
        error = (
            f"{len(retry)} of {len(retry) + len(outcomes)} alerts not accepted, send them again "
            f"(re-sending the whole request is safe): {reason}"
        )
    else:
        error = f"alert not accepted, retry later: {reason}"
    return WebhookError(
        503,
        error,
        headers={"Retry-After": "5"},
        body=DeliveryReport(error=error, incidents=outcomes, retry=retry),
    )


def unavailable(error: Unavailable) -> WebhookError:
    """503 telling the sender to retry."""
    return WebhookError(
        503, f"alert not accepted, retry later: {error}", headers={"Retry-After": "5"}
    )
