"""Atlassian Statuspage (REST API v1 over httpx) as a status-page provider."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from temporalio.exceptions import ApplicationError

from activities.status_provider import OpenIncident, PublicIncident
from domain.comms import StatuspageSettings

_LOOKBACK = timedelta(minutes=10)
_PERMANENT_HINTS = {
    400: "Statuspage rejected the request",
    401: "check STATUSPAGE_API_KEY",
    403: "the API key's user lacks the incident-manager role on this page",
    404: "check STATUSPAGE_PAGE_ID (or the incident was deleted)",
    422: "Statuspage rejected the incident (unknown component ID?)",
}


def new_statuspage_client(settings: StatuspageSettings) -> httpx.AsyncClient:
    """An httpx client authenticated with ``Authorization: OAuth <key>``.

    httpx does not retry on its own, so Temporal's retry policy is the only one.
    """
    key = settings.api_key.get_secret_value() if settings.api_key else ""
    return httpx.AsyncClient(
        base_url=settings.api_url.rstrip("/") + "/",
        headers={"Authorization": f"OAuth {key}", "Accept": "application/json"},
        timeout=settings.timeout,
    )


class AtlassianStatuspage:
    """Creates and updates incidents on one Statuspage page.

    Args:
        http: client from :func:`new_statuspage_client` (tests point it at a local server).
        page_id: the page (``STATUSPAGE_PAGE_ID``).
    """

    name = "statuspage"

    def __init__(self, http: httpx.AsyncClient, page_id: str) -> None:
        if not page_id:
            raise ValueError("STATUSPAGE_PAGE_ID is required when STATUSPAGE_API_KEY is set")
        self._http = http
        self._page = page_id

    async def create(self, incident: PublicIncident) -> str:
        """``POST /pages/{page_id}/incidents``; returns the new incident's ID."""
        body = {"incident": incident.model_dump(mode="json")}
        data = await self._request("POST", f"pages/{self._page}/incidents", json=body)
        return str(data["id"])

    async def update(self, provider_id: str, incident: PublicIncident) -> None:
        """``PATCH /pages/{page_id}/incidents/{incident_id}`` with a new status and body."""
        body = {"incident": incident.model_dump(mode="json", exclude={"name"})}
        await self._request("PATCH", f"pages/{self._page}/incidents/{provider_id}", json=body)

    async def find_open(self, name: str, since: datetime) -> OpenIncident | None:
        """``GET /pages/{page_id}/incidents/unresolved``: one named ``name`` created since
        ``since`` (minus a margin for clock skew)."""
        data = await self._request("GET", f"pages/{self._page}/incidents/unresolved")
        for incident in data if isinstance(data, list) else []:
            created = _parse_time(incident.get("created_at"))
            if incident.get("name") == name and created and created >= since - _LOOKBACK:
                return OpenIncident(id=str(incident["id"]), status=str(incident.get("status")))
        return None

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        what = f"Statuspage {method} /{path}"
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise ApplicationError(f"{what} failed: {error!r}", type="StatuspageError") from None
        if response.status_code == 429:
            delay = _retry_after(response.headers.get("Retry-After"))
            raise ApplicationError(
                f"{what} rate limited; retry after {delay.total_seconds():g}s",
                type="StatuspageRateLimited",
                next_retry_delay=delay,
            )
        if response.status_code in _PERMANENT_HINTS:
            raise ApplicationError(
                f"{what} failed: HTTP {response.status_code} "
                f"({_PERMANENT_HINTS[response.status_code]}): {_error_text(response)}",
                type="StatuspagePermanentError",
                non_retryable=True,
            )
        if response.is_error:
            raise ApplicationError(
                f"{what} failed: HTTP {response.status_code}", type="StatuspageError"
            )
        return response.json()


def _retry_after(value: str | None) -> timedelta:
    try:
        seconds = float(value) if value else 1.0
    except ValueError:
        seconds = 1.0
    return timedelta(seconds=max(seconds, 1.0))


def _error_text(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(data, dict):
        return str(data.get("error") or data.get("message") or data)[:200]
    return str(data)[:200]


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
