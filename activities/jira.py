"""Jira Cloud (REST API v3 over httpx): one issue per action item, created exactly once.

Jira has no idempotency key for creating issues, so the issue carries a label
derived from the action ID (:func:`domain.actions.jira_label`) and every
attempt first searches for it: an attempt whose response was lost finds the
issue the previous one created instead of making a second.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.actions import jira_label
from domain.models import _Model
from domain.settings import JiraSettings

MAX_SUMMARY = 255
"""Jira refuses longer summaries."""
MAX_DESCRIPTION_TEXT = 2000
"""Characters kept of each untrusted text placed in the description."""
_CONTROLS = {code: None for code in (*range(0x20), 0x7F) if chr(code) not in "\t\n"}
_KEY = re.compile(r"[A-Z][A-Z0-9_]*-\d+")
_PERMANENT_HINTS = {
    400: "Jira rejected the issue (issue type, required fields?)",
    401: "check JIRA_EMAIL and JIRA_API_TOKEN",
    403: "the account may not create issues in this project",
    404: "check JIRA_URL and [actions.jira] project",
}


class JiraIssueInput(_Model):
    """What the issue of one action item says."""

    action_id: str
    """The action ID (its label makes the issue findable)."""
    incident_id: str
    """The incident the item follows up."""
    incident_title: str = ""
    """The incident's title."""
    title: str
    """What must be done (untrusted)."""
    owner: str
    """Who must do it."""
    due: datetime
    """When it is due."""
    project: str
    """Jira project key (``[actions.jira] project``)."""
    issue_type: str = "Task"
    """Issue type name (``[actions.jira] issue_type``)."""


class JiraIssueRef(_Model):
    """The issue of an action item."""

    key: str
    """Issue key, e.g. ``OPS-42``."""
    url: str
    """Browse URL for people."""


def new_jira_client(settings: JiraSettings) -> httpx.AsyncClient:
    """An httpx client with basic auth (``JIRA_EMAIL``:``JIRA_API_TOKEN``).

    httpx does not retry on its own, so Temporal's retry policy is the only one.
    """
    token = settings.api_token.get_secret_value() if settings.api_token else ""
    return httpx.AsyncClient(
        base_url=settings.url.rstrip("/") + "/",
        auth=httpx.BasicAuth(settings.email, token),
        headers={"Accept": "application/json"},
        timeout=settings.timeout,
    )


def plain(text: str, limit: int) -> str:
    """Untrusted text without control characters, cut to ``limit`` characters."""
    cleaned = text.translate(_CONTROLS).strip()
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def summary_of(item: JiraIssueInput) -> str:
    """One line of at most :data:`MAX_SUMMARY` characters."""
    line = " ".join(plain(item.title, MAX_SUMMARY * 2).split())
    return plain(f"{line} ({item.action_id})" if line else item.action_id, MAX_SUMMARY)


def description_of(item: JiraIssueInput) -> dict[str, Any]:
    """The issue's description as an Atlassian Document Format document.

    ADF text nodes are never interpreted as markup, so untrusted text only needs
    its control characters removed and its length capped.
    """
    lines = [
        plain(item.title, MAX_DESCRIPTION_TEXT) or item.action_id,
        f"Action item {item.action_id} of incident {item.incident_id}"
        + (f" “{plain(item.incident_title, 300)}”" if item.incident_title.strip() else ""),
        f"Owner {plain(item.owner, 100)}, due {item.due:%Y-%m-%d %H:%M} UTC.",
        "Moving this issue to a done status marks the action item done.",
    ]
    return {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": line}]} for line in lines
        ],
    }


class JiraIssues:
    """Creates action items' issues in Jira Cloud.

    Args:
        http: client from :func:`new_jira_client` (tests point it at a local server).
        site_url: ``JIRA_URL``, for the browse links.
    """

    def __init__(self, http: httpx.AsyncClient, *, site_url: str) -> None:
        self._http = http
        self._site = site_url.rstrip("/")

    @activity.defn(name="jira_export_action")
    async def export(self, item: JiraIssueInput) -> JiraIssueRef:
        """The action item's issue: the one labelled for it, else a new one."""
        label = jira_label(item.action_id)
        existing = await self._find(item.project, label)
        if existing is not None:
            activity.logger.info("%s: Jira issue %s already exists", item.action_id, existing)
            return self._ref(existing)
        fields = {
            "project": {"key": item.project},
            "issuetype": {"name": item.issue_type},
            "summary": summary_of(item),
            "labels": [label],
            "description": description_of(item),
        }
        data = await self._request("POST", "rest/api/3/issue", json={"fields": fields})
        key = str(data.get("key", "")) if isinstance(data, dict) else ""
        if not _KEY.fullmatch(key):
            raise ApplicationError(f"Jira created an issue without a valid key: {key[:40]!r}")
        return self._ref(key)

    async def _find(self, project: str, label: str) -> str | None:
        # Both values are validated ([A-Z0-9_] and [a-z0-9-]), so quoting them is safe.
        body = {
            "jql": f'project = "{project}" AND labels = "{label}" ORDER BY created ASC',
            "fields": ["summary"],
            "maxResults": 1,
        }
        data = await self._request("POST", "rest/api/3/search/jql", json=body)
        issues = data.get("issues") if isinstance(data, dict) else None
        for issue in issues if isinstance(issues, list) else []:
            key = str(issue.get("key", "")) if isinstance(issue, dict) else ""
            if _KEY.fullmatch(key):
                return key
        return None

    def _ref(self, key: str) -> JiraIssueRef:
        return JiraIssueRef(key=key, url=f"{self._site}/browse/{key}")

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        what = f"Jira {method} /{path}"
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise ApplicationError(f"{what} failed: {error!r}", type="JiraError") from None
        status = response.status_code
        if status == 429 or (status >= 500 and "Retry-After" in response.headers):
            delay = _retry_after(response.headers.get("Retry-After"))
            raise ApplicationError(
                f"{what}: HTTP {status}; retry after {delay.total_seconds():g}s",
                type="JiraRateLimited",
                next_retry_delay=delay,
            )
        if status in _PERMANENT_HINTS:
            raise ApplicationError(
                f"{what} failed: HTTP {status} ({_PERMANENT_HINTS[status]}): "
                f"{_error_text(response)}",
                type="JiraPermanentError",
                non_retryable=True,
            )
        if response.is_error:
            raise ApplicationError(f"{what} failed: HTTP {status}", type="JiraError")
        try:
            return response.json()
        except ValueError:
            raise ApplicationError(f"{what}: answer is not JSON", type="JiraError") from None


def _retry_after(value: str | None) -> timedelta:
    """Jira's ``Retry-After`` in seconds, kept between 1 s and 10 min."""
    try:
        seconds = float(value) if value else 5.0
    except ValueError:
        seconds = 5.0
    return timedelta(seconds=min(max(seconds, 1.0), 600.0))


def _error_text(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return plain(response.text, 200)
    if isinstance(data, dict):
        messages = [str(m) for m in data.get("errorMessages") or []]
        errors = data.get("errors")
        if isinstance(errors, dict):
            messages += [f"{name}: {text}" for name, text in errors.items()]
        return plain("; ".join(messages) or str(data), 300)
    return plain(str(data), 200)
