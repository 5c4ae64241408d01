"""A small Atlassian Statuspage REST API (v1) on loopback that records every request."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web


@dataclass
class Request:
    """One recorded API request."""

    method: str
    path: str
    body: Any
    at: float
    status: int = 200


@dataclass
class Failure:
    method: str
    status: int
    retry_after: int | None = None
    after_effect: bool = False
    """Apply the request and then answer with the failure (a lost response)."""


@dataclass
class FakeIncident:
    id: str
    name: str
    status: str
    created_at: str
    updates: list[dict[str, Any]] = field(default_factory=list)
    components: dict[str, str] = field(default_factory=dict)


class FakeStatuspage:
    """The fake server; ``await start()`` then point ``STATUSPAGE_API_URL`` at ``api_url``."""

    def __init__(self, api_key: str = "sp-test-key", page_id: str = "page123") -> None:
        self.api_key = api_key
        self.page_id = page_id
        self.requests: list[Request] = []
        self.incidents: dict[str, FakeIncident] = {}
        self.failures: list[Failure] = []
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.api_url = ""

    def fail(self, method: str, status: int, **kwargs: Any) -> None:
        """Make the next ``method`` request fail with ``status``."""
        self.failures.append(Failure(method=method, status=status, **kwargs))

    def writes(self) -> list[tuple[str, str, Any]]:
        """(method, path, body) of every POST/PATCH that succeeded, in order."""
        return [
            (r.method, r.path, r.body)
            for r in self.requests
            if r.method in ("POST", "PATCH") and r.status < 300
        ]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/v1/pages/{page}/incidents", self._incidents)
        app.router.add_route("*", "/v1/pages/{page}/incidents/{incident}", self._incident)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.api_url = f"http://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _guard(
        self, request: web.Request
    ) -> tuple[Request, web.Response | None, Failure | None]:
        body = await request.json() if request.can_read_body else None
        record = Request(request.method, request.path, body, time.monotonic())
        self.requests.append(record)
        if request.headers.get("Authorization") != f"OAuth {self.api_key}":
            record.status = 401
            return record, web.json_response({"error": "Could not authenticate"}, status=401), None
        if request.match_info["page"] != self.page_id:
            record.status = 404
            return record, web.json_response({"error": "Page not found"}, status=404), None
        failure = next((f for f in self.failures if f.method == request.method), None)
        if failure is not None:
            self.failures.remove(failure)
            record.status = failure.status
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else {}
            reply = web.json_response({"error": "failure"}, status=failure.status, headers=headers)
            return record, None if failure.after_effect else reply, failure
        return record, None, None

    def _view(self, incident: FakeIncident) -> dict[str, Any]:
        return {
            "id": incident.id,
            "name": incident.name,
            "status": incident.status,
            "created_at": incident.created_at,
            "incident_updates": list(reversed(incident.updates)),
        }

    def _apply(self, incident: FakeIncident, body: dict[str, Any]) -> None:
        incident.status = body.get("status", incident.status)
        incident.components.update(body.get("components") or {})
        if body.get("body"):
            incident.updates.append({"status": incident.status, "body": body["body"]})

    async def _incidents(self, request: web.Request) -> web.Response:
        record, reply, failure = await self._guard(request)
        if reply is not None:
            return reply
        if request.method != "POST":
            return web.json_response({"error": "method"}, status=405)
        data = record.body["incident"]
        incident = FakeIncident(
            id=f"sp{next(self._ids):03d}",
            name=data["name"],
            status=data.get("status", "investigating"),
            created_at=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        )
        self._apply(incident, data)
        self.incidents[incident.id] = incident
        if failure is not None:
            return web.json_response({"error": "failure"}, status=failure.status)
        return web.json_response(self._view(incident), status=201)

    async def _incident(self, request: web.Request) -> web.Response:
        record, reply, failure = await self._guard(request)
        if reply is not None:
            return reply
        ident = request.match_info["incident"]
        if request.method == "GET" and ident == "unresolved":
            open_ones = [self._view(i) for i in self.incidents.values() if i.status != "resolved"]
            return web.json_response(open_ones)
        incident = self.incidents.get(ident)
        if incident is None:
            return web.json_response({"error": "Incident not found"}, status=404)
        if request.method == "PATCH":
            self._apply(incident, record.body["incident"])
        if failure is not None:
            return web.json_response({"error": "failure"}, status=failure.status)
        return web.json_response(self._view(incident))
