"""A small Jira Cloud REST API (v3) on loopback: create issues, search them by label.

It checks basic auth and the parts of an issue Jira itself refuses (summary
length and newlines, an Atlassian Document Format description, labels without
spaces, a known project and issue type), records every request, and can fail
the next call of an endpoint, optionally after doing its work (a lost response).
"""

from __future__ import annotations

import base64
import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

_JQL = re.compile(r'project = "(?P<project>[A-Z0-9_]+)" AND labels = "(?P<label>[a-z0-9-]+)"')


@dataclass
class Request:
    """One recorded API request."""

    method: str
    path: str
    body: Any
    status: int = 200


@dataclass
class Failure:
    """The next request to ``path`` answers ``status``."""

    path: str
    status: int
    retry_after: int | None = None
    after_effect: bool = False
    """Do the work, then answer with the failure (the caller never learns the result)."""


@dataclass
class FakeIssue:
    """One issue as the fake stores it."""

    id: str
    key: str
    fields: dict[str, Any]
    status_category: str = "new"

    @property
    def labels(self) -> list[str]:
        """The issue's labels."""
        return list(self.fields.get("labels") or [])


@dataclass
class FakeJira:
    """The fake server; ``await start()`` then point ``JIRA_URL`` at ``url``."""

    email: str = "bot@example.com"
    token: str = "jira-test-token"
    projects: tuple[str, ...] = ("OPS",)
    issue_types: tuple[str, ...] = ("Task", "Bug")
    requests: list[Request] = field(default_factory=list)
    issues: dict[str, FakeIssue] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    url: str = ""
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(10001))
    _runner: web.AppRunner | None = None

    def fail(self, path: str, status: int, **kwargs: Any) -> None:
        """Make the next request to ``path`` (``/rest/api/3/issue``) fail with ``status``."""
        self.failures.append(Failure(path=path, status=status, **kwargs))

    def created(self) -> list[FakeIssue]:
        """Every issue created, in order."""
        return list(self.issues.values())

    def calls(self, path: str) -> list[Request]:
        """Requests made to ``path``."""
        return [r for r in self.requests if r.path == path]

    def move_to(self, key: str, category: str) -> dict[str, Any]:
        """Put issue ``key`` in status category ``category``; returns the webhook body
        Jira then sends (``jira:issue_updated``)."""
        issue = self.issues[key]
        issue.status_category = category
        return {
            "timestamp": 1764230400000,
            "webhookEvent": "jira:issue_updated",
            "issue_event_type_name": "issue_generic",
            "user": {"accountId": "5b10a2844c20165700ede21g", "displayName": "Bob"},
            "issue": self._view(issue),
            "changelog": {
                "id": "10100",
                "items": [{"field": "status", "fieldtype": "jira", "toString": category}],
            },
        }

    async def start(self) -> None:
        """Listen on a free loopback port."""
        app = web.Application()
        app.router.add_post("/rest/api/3/issue", self._create)
        app.router.add_route("*", "/rest/api/3/search/jql", self._search)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------ handlers

    async def _guard(self, request: web.Request) -> tuple[Request, web.Response | None]:
        body = await request.json() if request.can_read_body else None
        record = Request(request.method, request.path, body)
        self.requests.append(record)
        expected = base64.b64encode(f"{self.email}:{self.token}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            record.status = 401
            return record, web.Response(status=401, text="Client must be authenticated")
        return record, None

    def _failure(self, path: str) -> Failure | None:
        failure = next((f for f in self.failures if f.path == path), None)
        if failure is not None:
            self.failures.remove(failure)
        return failure

    def _answer(self, record: Request, failure: Failure) -> web.Response:
        record.status = failure.status
        headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else {}
        body = {"errorMessages": ["injected failure"], "errors": {}}
        return web.json_response(body, status=failure.status, headers=headers)

    async def _create(self, request: web.Request) -> web.Response:
        record, refused = await self._guard(request)
        if refused is not None:
            return refused
        failure = self._failure(request.path)
        if failure is not None and not failure.after_effect:
            return self._answer(record, failure)
        fields = (record.body or {}).get("fields") or {}
        errors = self._invalid(fields)
        if errors:
            record.status = 400
            return web.json_response({"errorMessages": [], "errors": errors}, status=400)
        number = next(self._ids)
        key = f"{fields['project']['key']}-{number - 10000}"
        self.issues[key] = FakeIssue(id=str(number), key=key, fields=fields)
        if failure is not None:
            return self._answer(record, failure)
        record.status = 201
        issue_self = f"{self.url}/rest/api/3/issue/{number}"
        return web.json_response({"id": str(number), "key": key, "self": issue_self}, status=201)

    def _invalid(self, fields: dict[str, Any]) -> dict[str, str]:
        errors: dict[str, str] = {}
        if (fields.get("project") or {}).get("key") not in self.projects:
            errors["project"] = "valid project is required"
        if (fields.get("issuetype") or {}).get("name") not in self.issue_types:
            errors["issuetype"] = "valid issue type is required"
        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            errors["summary"] = "You must specify a summary of the issue."
        elif len(summary) > 255:
            errors["summary"] = "Summary must be less than 255 characters."
        elif "\n" in summary or "\r" in summary:
            errors["summary"] = "The summary is invalid because it contains newline characters."
        if any(" " in label or not label for label in fields.get("labels") or []):
            errors["labels"] = "The label can't contain spaces."
        if not _is_adf(fields.get("description")):
            errors["description"] = "Operation value must be an Atlassian Document."
        return errors

    async def _search(self, request: web.Request) -> web.Response:
        record, refused = await self._guard(request)
        if refused is not None:
            return refused
        failure = self._failure(request.path)
        if failure is not None:
            return self._answer(record, failure)
        if request.method == "POST":
            jql = str((record.body or {}).get("jql", ""))
        else:
            jql = request.query.get("jql", "")
        match = _JQL.search(jql)
        if match is None:
            record.status = 400
            return web.json_response({"errorMessages": [f"unsupported JQL {jql!r}"]}, status=400)
        found = [
            self._view(issue)
            for issue in self.issues.values()
            if issue.key.startswith(match["project"] + "-") and match["label"] in issue.labels
        ]
        return web.json_response({"issues": found, "isLast": True})

    def _view(self, issue: FakeIssue) -> dict[str, Any]:
        names = {"new": "To Do", "indeterminate": "In Progress", "done": "Done"}
        return {
            "id": issue.id,
            "key": issue.key,
            "self": f"{self.url}/rest/api/3/issue/{issue.id}",
            "fields": {
                **issue.fields,
                "status": {
                    "name": names.get(issue.status_category, issue.status_category),
                    "statusCategory": {"key": issue.status_category},
                },
            },
        }


def _is_adf(node: Any) -> bool:
    """An ADF document whose text nodes are all non-empty strings."""
    if not isinstance(node, dict) or node.get("type") != "doc" or node.get("version") != 1:
        return False

    def valid(item: Any) -> bool:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            return False
        if item["type"] == "text":
            return isinstance(item.get("text"), str) and bool(item["text"])
        return all(valid(child) for child in item.get("content", []))

    return all(valid(child) for child in node.get("content", []))
