"""``GET /status`` (HTML, no JavaScript) and ``GET /status.json``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from jinja2 import BaseLoader, ChoiceLoader, FileSystemLoader, PrefixLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment
from temporalio.client import Client

from activities.templates import Templates, standard_templates
from domain.comms import StatusPagePolicy
from starters.status_page.public import (
    ComponentState,
    PublicIncident,
    PublicUpdate,
    StatusSnapshot,
)
from starters.status_page.source import MAX_LISTED, READ_BUDGET, StatusSource

PAGE_DIR = Path(__file__).parent / "templates"
PAGE_TEMPLATE = "status_page/status.html.j2"


def _utc(value: datetime | None) -> str:
    return "" if value is None else f"{value:%Y-%m-%d %H:%M} UTC"


def page_environment(override_dir: Path | None = None) -> SandboxedEnvironment:
    """The HTML environment: autoescaped, sandboxed, ``INCIDENT_TEMPLATES`` first.

    Raises:
        jinja2.TemplateError: the page template does not compile (checked at start-up).
    """
    loaders: list[BaseLoader] = [PrefixLoader({"status_page": FileSystemLoader(str(PAGE_DIR))})]
    if override_dir is not None:
        loaders.insert(0, FileSystemLoader(str(override_dir)))
    env = SandboxedEnvironment(
        loader=ChoiceLoader(loaders), autoescape=True, undefined=StrictUndefined
    )
    env.filters["utc"] = _utc
    env.get_template(PAGE_TEMPLATE)
    return env


def _sample_snapshot(title: str) -> StatusSnapshot:
    now = datetime.now(UTC)
    update = PublicUpdate(at=now, status="resolved", badge="🟢 Resolved", text="sample")
    incident = PublicIncident(
        id="INC-SAMPLE",
        name="sample",
        status="resolved",
        badge="🟢 Resolved",
        service="api",
        started_at=now,
        resolved_at=now,
        service_status="operational",
        updates=[update],
    )
    component = ComponentState(name="api", status="operational", label="Operational")
    return StatusSnapshot(
        title=title,
        generated_at=now,
        current=[incident],
        recent=[incident],
        components=[component],
    )


def status_page_router(
    client: Callable[[], Awaitable[Client]],
    *,
    policy: StatusPagePolicy,
    templates: Templates | None = None,
    override_dir: Path | None = None,
    ttl: float = 5.0,
    max_listed: int = MAX_LISTED,
    read_budget: float = READ_BUDGET,
) -> APIRouter:
    """The public status page.

    Args:
        client: returns the Temporal client, e.g. ``app.state.gateway.client``.
        policy: the ``[comms.status_page]`` policy (title, severities, components).
        templates: message templates (default: the shipped ones with ``override_dir``).
        override_dir: ``INCIDENT_TEMPLATES``; may hold ``status_page/status.html.j2``.
        ttl: seconds a snapshot is cached.
        max_listed: incidents per section (current, recently resolved).
        read_budget: seconds one read of Temporal may take.
    """
    wording = templates or standard_templates(override_dir)
    source = StatusSource(
        client,
        policy=policy,
        templates=wording,
        ttl=ttl,
        max_listed=max_listed,
        read_budget=read_budget,
    )
    page = page_environment(override_dir).get_template(PAGE_TEMPLATE)
    page.render(s=_sample_snapshot(policy.title))  # a misspelt variable fails at start-up
    router = APIRouter(tags=["status page"])

    @router.get("/status", response_class=HTMLResponse, summary="Public status page")
    async def status_html() -> HTMLResponse:
        """Current incidents with their public updates, recently resolved ones, components."""
        snapshot = await source.snapshot()
        return HTMLResponse(
            page.render(s=snapshot),
            status_code=200 if snapshot.available else 503,
            headers={"Cache-Control": "public, max-age=5"},
        )

    @router.get("/status.json", response_model=StatusSnapshot, summary="Status as JSON")
    async def status_json() -> StatusSnapshot:
        """The same information as ``/status``, for machines."""
        return await source.snapshot()

    return router
