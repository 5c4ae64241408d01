"""The webhook endpoints: read, authenticate, validate, route, hand to Temporal, answer."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from domain.routing import AlertSource
from starters.webhooks.alertmanager import AlertmanagerPayload
from starters.webhooks.body import parse
from starters.webhooks.errors import ERROR_RESPONSES, WebhookError
from starters.webhooks.gateway import Unavailable
from starters.webhooks.generic import GenericAlert
from starters.webhooks.pagerduty import PagerDutyEvent
from starters.webhooks.service import (
    IncidentOutcome,
    Prepared,
    WebhookService,
    unavailable,
)

log = logging.getLogger("incidents.webhooks")


class WebhookResponse(BaseModel):
    """2xx answer: one outcome per distinct alert, in request order (repeats collapsed)."""

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
