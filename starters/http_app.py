"""``incident-http``: the stateless HTTP service (monitoring webhooks, health, OpenAPI docs).

Any number of replicas can run behind a load balancer: all state lives in
Temporal. Other pages are added with ``app.include_router(...)``; they reach
Temporal through ``await app.state.gateway.client()``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import sys
from typing import Any, Literal

import fastapi
import temporalio.client
import uvicorn
from fastapi import APIRouter, Response
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from domain.comms import SlackSettings
from domain.connection import exit_process
from domain.logs import setup_logging
from domain.policy import Policy, load_policy
from domain.routing import AlertSource
from domain.settings import JiraSettings, Settings
from starters.prometheus import metrics_router
from starters.slack_commands import SlackGroups, slack_command_router
from starters.status_page import status_page_router
from starters.webhooks import (
    TemporalGateway,
    WebhookService,
    WebhookSettings,
    payload_schemas,
    webhook_router,
)
from starters.webhooks.auth import ReplayCache
from starters.webhooks.errors import WebhookError, webhook_error_handler
from starters.webhooks.jira import jira_webhook_router

log = logging.getLogger("incidents.http")

SHUTDOWN_GRACE_SECONDS = 5
"""On SIGTERM, how long requests still running may take before they are cut off."""

DESCRIPTION = """\
Turns monitoring alerts into durable incidents.

Point Prometheus Alertmanager, Grafana or anything that can page PagerDuty at
`/webhooks/*`. A 2xx answer means Temporal has recorded every alert; 503 means
some or all were not recorded within the request's deadline: the body lists
which were, and sending the whole request again is safe.
"""


class Health(BaseModel):
    """``GET /healthz`` answer."""

    status: Literal["ok", "unavailable"]
    """``ok`` when Temporal answers, else ``unavailable`` (with HTTP 503)."""
    temporal: Literal["reachable", "unreachable"]
    """Whether Temporal answered a health check just now."""
    detail: str = ""
    """Why Temporal is unreachable."""


HEALTH_WAIT_SECONDS = 0.1
"""How long ``/healthz`` waits for a Temporal check when the previous one was healthy."""


class HealthProbe:
    """Temporal reachability for ``/healthz``: one check in flight at a time.

    A busy Temporal (this service handing over an alert storm, say) must not
    make the probe slow: when the last check was healthy, an answer waits at
    most :data:`HEALTH_WAIT_SECONDS` for the current one and otherwise repeats
    the last result. After an unhealthy result every answer waits for a fresh
    check, so a recovery is never hidden.
    """

    def __init__(self, gateway: TemporalGateway) -> None:
        self._gateway = gateway
        self._check: asyncio.Task[tuple[bool, str]] | None = None
        self._last: tuple[bool, str] | None = None

    async def current(self) -> tuple[bool, str]:
        """Whether Temporal is reachable, with the reason when not."""
        if self._check is None or self._check.done():
            self._check = asyncio.create_task(self._gateway.reachable())
            self._check.add_done_callback(self._record)
        if self._last is not None and self._last[0]:
            await asyncio.wait({self._check}, timeout=HEALTH_WAIT_SECONDS)
            return self._check.result() if self._check.done() else self._last
        return await asyncio.shield(self._check)

    def _record(self, check: asyncio.Task[tuple[bool, str]]) -> None:
        if not check.cancelled() and check.exception() is None:
            self._last = check.result()


def health_router(gateway: TemporalGateway) -> APIRouter:
    """``GET /healthz``."""
    router = APIRouter(tags=["health"])
    probe = HealthProbe(gateway)

    @router.get(
        "/healthz",
        response_model=Health,
        responses={503: {"model": Health, "description": "Temporal unreachable."}},
        summary="Service health and Temporal reachability",
    )
    async def healthz(response: Response) -> Health:
        """200 when Temporal is reachable, 503 (with the reason) when it is not."""
        reachable, detail = await probe.current()
        if not reachable:
            response.status_code = 503
            return Health(status="unavailable", temporal="unreachable", detail=detail)
        return Health(status="ok", temporal="reachable")

    return router


def _document_payloads(app: fastapi.FastAPI) -> None:
    """Publish the webhook body models (validated by hand, not by FastAPI) in the schema."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(payload_schemas())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    *,
    settings: Settings | None = None,
    client: temporalio.client.Client | None = None,
    policy: Policy | None = None,
    webhook_settings: WebhookSettings | None = None,
    jira_settings: JiraSettings | None = None,
) -> fastapi.FastAPI:
    """The HTTP service.

    Args:
        settings: process settings (default: from the environment).
        client: Temporal client to use; without one the app connects lazily with
            :func:`domain.connection.connect` and reconnects after failures,
            answering 503 while Temporal is unreachable.
        policy: response policy whose ``[routing]`` applies (default: ``INCIDENT_POLICY``).
        webhook_settings: limits and per-source tokens (default: the environment).
        jira_settings: ``JIRA_WEBHOOK_SECRET`` enables ``POST /webhooks/jira``
            (default: the environment).

    Raises:
        PolicyError: the policy file is invalid.
    """
    settings = settings or Settings()
    policy = policy or load_policy(settings.policy)
    hooks = webhook_settings or WebhookSettings()
    gateway = TemporalGateway(
        client=client,
        task_queue=settings.task_queue,
        timeout=hooks.timeout_seconds,
        route_ttl=hooks.route_cache_seconds,
    )
    tokens = hooks.tokens(settings.webhook_token)
    open_sources = open_endpoints(settings, hooks)
    if open_sources:
        log.warning(
            "webhooks without authentication: %s (set INCIDENT_WEBHOOK_TOKEN)",
            ", ".join(open_sources),
        )
    dedup_secret = hooks.dedup_secret or tokens[AlertSource.GENERIC]
    replays = ReplayCache()
    service = WebhookService(
        gateway=gateway,
        routing=policy.routing,
        tokens=tokens,
        max_body_bytes=hooks.max_body_bytes,
        deadline_seconds=hooks.deadline_seconds,
        dedup_secret=dedup_secret.get_secret_value().encode() if dedup_secret else None,
        replays=replays,
    )
    app = fastapi.FastAPI(title="Incident orchestrator", version="0.1.0", description=DESCRIPTION)
    app.state.gateway = gateway
    app.add_exception_handler(WebhookError, webhook_error_handler)
    app.include_router(webhook_router(service))
    app.include_router(health_router(gateway))
    app.include_router(
        status_page_router(
            gateway.client, policy=policy.comms.status_page, override_dir=settings.templates
        )
    )
    slack = SlackSettings()
    if slack.signing_secret is not None and slack.signing_secret.get_secret_value():
        secret = slack.signing_secret.get_secret_value()
        bot = slack.bot_token.get_secret_value() if slack.bot_token else ""
        app.include_router(
            slack_command_router(
                gateway.client,
                signing_secret=secret,
                policy=policy.comms.slack,
                access=policy.routing.slack_commands,
                group_members=SlackGroups(token=bot, api_url=slack.api_url) if bot else None,
                replays=replays,
            )
        )
    jira = jira_settings or JiraSettings()
    if jira.webhook_secret is not None and jira.webhook_secret.get_secret_value():
        app.include_router(
            jira_webhook_router(
                gateway.client,
                secret=jira.webhook_secret.get_secret_value(),
                max_body_bytes=hooks.max_body_bytes,
                deadline_seconds=hooks.deadline_seconds,
            )
        )
    app.include_router(metrics_router(gateway.client, rules=policy.metrics))
    _document_payloads(app)
    return app


def open_endpoints(settings: Settings, hooks: WebhookSettings) -> list[str]:
    """The webhook sources whose endpoint has no token (anyone who reaches it may post)."""
    tokens = hooks.tokens(settings.webhook_token)
    return [source.value for source, token in tokens.items() if token is None]


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the service reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_refusal(settings: Settings, hooks: WebhookSettings) -> str | None:
    """Why the service must not listen where ``settings`` say, or None.

    Open webhook endpoints on a non-loopback address let anyone on the network
    open and resolve incidents; that takes ``INCIDENT_WEBHOOK_ALLOW_OPEN=1``.
    """
    open_sources = open_endpoints(settings, hooks)
    if hooks.allow_open or not open_sources or is_loopback(settings.http_host):
        return None
    return (
        f"refusing to listen on {settings.http_host} with open webhook endpoints "
        f"({', '.join(open_sources)}): set INCIDENT_WEBHOOK_TOKEN, bind 127.0.0.1, "
        "or set INCIDENT_WEBHOOK_ALLOW_OPEN=1 to accept unauthenticated alerts from the network"
    )


def main() -> None:
    """Console entry point: serve on ``INCIDENT_HTTP_HOST``:``INCIDENT_HTTP_PORT``."""
    setup_logging()
    settings = Settings()
    try:
        hooks = WebhookSettings()
        refusal = bind_refusal(settings, hooks)
        if refusal is not None:
            print(f"incident-http: {refusal}", file=sys.stderr)
            exit_process(2)
        app = create_app(settings=settings, webhook_settings=hooks)
    except ValueError as error:  # policy, templates, webhook or Slack settings
        print(f"incident-http: {error}", file=sys.stderr)
        exit_process(2)
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_level="info",
        log_config=None,  # uvicorn's records go through the sanitizing handler too
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
    exit_process(0)


if __name__ == "__main__":
    main()
