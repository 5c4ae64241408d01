"""The webhook endpoints: read, authenticate, validate, route, hand to Temporal, answer."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, Field, SecretStr
from pydantic.json_schema import models_json_schema

from domain.routing import AlertSource, RoutingPolicy
from starters.webhooks.alertmanager import AlertmanagerPayload
from starters.webhooks.alerts import IncomingAlert
from starters.webhooks.auth import ReplayCache, authenticate
from starters.webhooks.body import CLOSE, PayloadT, parse, read_body
from starters.webhooks.config import DEFAULT_DEADLINE
from starters.webhooks.errors import ERROR_RESPONSES, ErrorBody, WebhookError
from starters.webhooks.gateway import TemporalGateway, Unavailable
from starters.webhooks.generic import GenericAlert
from starters.webhooks.pagerduty import PagerDutyEvent
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


class WebhookResponse(BaseModel):
    """2xx answer: one outcome per alert, in request order."""

    incidents: list[IncidentOutcome] = Field(default_factory=list)


class PagerDutyResponse(WebhookResponse):
    """202 answer shaped like PagerDuty's own (plus the outcomes)."""

    status: str = "success"
    message: str = "Event processed"
    dedup_key: str
    """The event's dedup_key (generated when the trigger had none)."""


PAYLOAD_MODELS: dict[AlertSource, type[BaseModel]] = {
    AlertSource.ALERTMANAGER: AlertmanagerPayload,
    AlertSource.GRAFANA: AlertmanagerPayload,
    AlertSource.PAGERDUTY: PagerDutyEvent,
    AlertSource.GENERIC: GenericAlert,
}


def payload_schemas() -> dict[str, Any]:
    """JSON schemas of the request bodies, for the OpenAPI ``components``."""
    models = list(dict.fromkeys(PAYLOAD_MODELS.values()))
    _, schema = models_json_schema(
        [(model, "validation") for model in models], ref_template="#/components/schemas/{model}"
    )
    defs: dict[str, Any] = schema.get("$defs", {})
    return defs


def _body_doc(model: type[BaseModel]) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


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
    delivery: AlertDelivery | None
    """None: nothing to hand over (the outcome is ``ignore``)."""
    ignore: str = ""
    """Why the alert changes nothing, for the sender."""


@dataclass(frozen=True)
class Received:
    """An authenticated request body, and when its answer is due."""

    body: bytes
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
        for item, task in zip(prepared, tasks, strict=True):
            error = None if task in late else task.exception()
            if task in late or isinstance(error, Unavailable):
                retry.append(item.alert.alert_key)
                reasons.append(str(error) if error else "the request's deadline passed")
            elif error is not None:
                raise error
            else:
                outcomes.append(task.result())
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


def webhook_router(service: WebhookService) -> APIRouter:
    """The ``/webhooks/*`` endpoints."""
    router = APIRouter(prefix="/webhooks", tags=["webhooks"], responses=ERROR_RESPONSES)

    async def alertmanager_like(request: Request, source: AlertSource) -> WebhookResponse:
        dedup = getattr(service.routing.dedup, source.value)

        def read(body: bytes) -> list[Prepared]:
            payload = parse(body, AlertmanagerPayload)
            alerts = payload.incoming(source, dedup)
            return service.routed(alerts, received_at=datetime.now(UTC))

        async with service.receive(request, source) as received:
            prepared = await service.prepare(received.body, read)
            outcomes = await service.deliver(prepared, deadline=received.deadline)
        return WebhookResponse(incidents=outcomes)

    @router.post(
        "/alertmanager",
        response_model=WebhookResponse,
        summary="Prometheus Alertmanager webhook (version 4)",
        openapi_extra=_body_doc(AlertmanagerPayload),
    )
    async def alertmanager(request: Request) -> WebhookResponse:
        """Firing alerts open or join incidents; resolved ones recover them."""
        return await alertmanager_like(request, AlertSource.ALERTMANAGER)

    @router.post(
        "/grafana",
        response_model=WebhookResponse,
        summary="Grafana unified alerting webhook contact point",
        openapi_extra=_body_doc(AlertmanagerPayload),
    )
    async def grafana(request: Request) -> WebhookResponse:
        """The Alertmanager shape with Grafana's extra fields."""
        return await alertmanager_like(request, AlertSource.GRAFANA)

    @router.post(
        "/pagerduty",
        response_model=PagerDutyResponse,
        status_code=status.HTTP_202_ACCEPTED,
        summary="PagerDuty Events API v2 event",
        openapi_extra=_body_doc(PagerDutyEvent),
    )
    async def pagerduty(request: Request) -> PagerDutyResponse:
        """``trigger`` opens or joins, ``acknowledge`` acknowledges (when the policy allows it),
        ``resolve`` recovers."""
        async with service.receive(request, AlertSource.PAGERDUTY) as received:
            event = (await service.prepare_event(received.body, PagerDutyEvent)).with_dedup_key()
            assert event.dedup_key is not None
            if event.event_action == "acknowledge":
                outcome = await _acknowledge(service, event, deadline=received.deadline)
                return PagerDutyResponse(dedup_key=event.dedup_key, incidents=[outcome])
            prepared = service.routed([event.incoming()], received_at=datetime.now(UTC))
            outcomes = await service.deliver(prepared, deadline=received.deadline)
        return PagerDutyResponse(dedup_key=event.dedup_key, incidents=outcomes)

    @router.post(
        "/generic",
        response_model=WebhookResponse,
        summary="Generic JSON alert",
        openapi_extra=_body_doc(GenericAlert),
    )
    async def generic(request: Request) -> WebhookResponse:
        """For senders without a built-in format; see :class:`GenericAlert`."""
        async with service.receive(request, AlertSource.GENERIC) as received:
            alert = await service.prepare_event(received.body, GenericAlert)
            incoming = alert.incoming(service.dedup_secret)
            if alert.status == "resolved" and alert.dedup_key is None:
                prepared = [Prepared(alert=incoming, delivery=None, ignore=KEYLESS_RESOLVE)]
            else:
                prepared = service.routed([incoming], received_at=datetime.now(UTC))
            outcomes = await service.deliver(prepared, deadline=received.deadline)
        return WebhookResponse(incidents=outcomes)

    return router


KEYLESS_RESOLVE = (
    "a resolve without dedup_key recovers nothing: send the dedup_key the trigger was "
    "given (it is in the trigger's answer)"
)


async def _acknowledge(
    service: WebhookService, event: PagerDutyEvent, *, deadline: float
) -> IncidentOutcome:
    assert event.dedup_key is not None
    if not service.routing.webhooks.pagerduty_acknowledge:
        raise WebhookError(
            403,
            "PagerDuty acknowledge events are not accepted: set "
            "[routing.webhooks] pagerduty_acknowledge = true in the policy to allow them",
        )
    try:
        ack = await service.gateway.acknowledge(
            source=AlertSource.PAGERDUTY.value,
            dedup_key=event.scoped_key(),
            responder=AlertSource.PAGERDUTY.value,
            deadline=deadline,
        )
    except Unavailable as error:
        raise unavailable(error) from None
    log.info(
        "pagerduty acknowledge %r → %s (%s)", event.dedup_key[:80], ack.incident_id, ack.message
    )
    return IncidentOutcome(
        alert=event.dedup_key,
        incident_id=ack.incident_id,
        action="acknowledged" if ack.acknowledged else "ignored",
        message=ack.message,
    )
