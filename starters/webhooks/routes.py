"""The webhook endpoints: read, authenticate, validate, route, hand to Temporal, answer."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, Field, SecretStr
from pydantic.json_schema import models_json_schema

from domain.routing import AlertSource, RoutingPolicy
from starters.webhooks.alertmanager import AlertmanagerPayload
from starters.webhooks.alerts import IncomingAlert
from starters.webhooks.auth import authenticate
from starters.webhooks.body import parse, read_body
from starters.webhooks.errors import ERROR_RESPONSES, WebhookError
from starters.webhooks.gateway import TemporalGateway, Unavailable
from starters.webhooks.generic import GenericAlert
from starters.webhooks.pagerduty import PagerDutyEvent

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


class WebhookService:
    """Everything the endpoints share: secrets, limits, routing and the gateway."""

    def __init__(
        self,
        *,
        gateway: TemporalGateway,
        routing: RoutingPolicy,
        tokens: dict[AlertSource, SecretStr | None],
        max_body_bytes: int,
    ) -> None:
        self.gateway = gateway
        self.routing = routing
        self.tokens = tokens
        self.max_body_bytes = max_body_bytes

    async def accept(self, request: Request, source: AlertSource) -> bytes:
        """The body of an authenticated request within the size limit."""
        body = await read_body(request, self.max_body_bytes)
        try:
            authenticate(request.headers, body, self.tokens.get(source))
        except WebhookError:
            client = request.client.host if request.client else "?"
            log.warning("rejected %s webhook from %s: bad credentials", source.value, client)
            raise
        return body

    async def deliver(self, alerts: list[IncomingAlert]) -> list[IncidentOutcome]:
        """Hand every alert to Temporal; all accepted, or :class:`WebhookError` 503."""
        now = datetime.now(UTC)
        gate = asyncio.Semaphore(PER_REQUEST_CONCURRENCY)

        async def one(alert: IncomingAlert) -> IncidentOutcome:
            async with gate:
                result = await self.gateway.deliver(
                    alert.delivery(self.routing, received_at=now),
                    dedup_key=alert.dedup_key,
                    repeat_window=self.routing.repeat_window,
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

        results = await asyncio.gather(*(one(alert) for alert in alerts), return_exceptions=True)
        outcomes: list[IncidentOutcome] = []
        for result in results:
            if isinstance(result, Unavailable):
                raise unavailable(result)
            if isinstance(result, BaseException):
                raise result
            outcomes.append(result)
        return outcomes


def unavailable(error: Unavailable) -> WebhookError:
    """503 telling the sender to retry."""
    return WebhookError(
        503, f"alert not accepted, retry later: {error}", headers={"Retry-After": "5"}
    )


def webhook_router(service: WebhookService) -> APIRouter:
    """The ``/webhooks/*`` endpoints."""
    router = APIRouter(prefix="/webhooks", tags=["webhooks"], responses=ERROR_RESPONSES)

    async def alertmanager_like(request: Request, source: AlertSource) -> WebhookResponse:
        body = await service.accept(request, source)
        payload = parse(body, AlertmanagerPayload)
        dedup = getattr(service.routing.dedup, source.value)
        return WebhookResponse(incidents=await service.deliver(payload.incoming(source, dedup)))

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
        """``trigger`` opens or joins, ``acknowledge`` acknowledges, ``resolve`` recovers."""
        body = await service.accept(request, AlertSource.PAGERDUTY)
        event = parse(body, PagerDutyEvent).with_dedup_key()
        assert event.dedup_key is not None
        if event.event_action == "acknowledge":
            outcome = await _acknowledge(service, event)
            return PagerDutyResponse(dedup_key=event.dedup_key, incidents=[outcome])
        outcomes = await service.deliver([event.incoming()])
        return PagerDutyResponse(dedup_key=event.dedup_key, incidents=outcomes)

    @router.post(
        "/generic",
        response_model=WebhookResponse,
        summary="Generic JSON alert",
        openapi_extra=_body_doc(GenericAlert),
    )
    async def generic(request: Request) -> WebhookResponse:
        """For senders without a built-in format; see :class:`GenericAlert`."""
        body = await service.accept(request, AlertSource.GENERIC)
        alert = parse(body, GenericAlert)
        return WebhookResponse(incidents=await service.deliver([alert.incoming()]))

    return router


async def _acknowledge(service: WebhookService, event: PagerDutyEvent) -> IncidentOutcome:
    assert event.dedup_key is not None
    try:
        ack = await service.gateway.acknowledge(
            source=AlertSource.PAGERDUTY.value,
            dedup_key=event.scoped_key(),
            responder=AlertSource.PAGERDUTY.value,
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
