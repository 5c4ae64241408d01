"""``POST /webhooks/jira``: an action item's Jira issue reached done, so the item is done.

Jira Cloud signs admin webhooks that have a secret with ``X-Hub-Signature:
sha256=<HMAC-SHA256 of the body>``; the endpoint exists only when
``JIRA_WEBHOOK_SECRET`` is set and refuses (401) anything not signed with it.
The body is read within the webhook body limit and deadline before the
signature is checked. The issue's ``incident-action-…`` label names the action
item; when the issue's status category is ``done`` the item gets the same
``done`` update as ``incident action done`` (note "done in Jira KEY"), which
refuses any issue but the item's own.

Answers: 200 ``done`` once Temporal applied the update; 200 ``ignored`` with
the reason for events that change nothing (not done yet, no action label, the
item already closed or unknown), so Jira does not retry them; 503 while
Temporal cannot be reached, so Jira retries.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from domain.actions import ActionDone, ActionResult, ActionState, action_of_jira_labels
from starters.cli.session import rejection_reason
from starters.webhooks.body import CLOSE, parse, read_body
from starters.webhooks.errors import ERROR_RESPONSES, WebhookError
from starters.webhooks.gateway import Unavailable
from workflows.action_item import ActionItemWorkflow

log = logging.getLogger("incidents.webhooks.jira")

SIGNATURE_HEADER = "x-hub-signature"
RESPONDER = "jira"
"""Who the action item records as having marked it done."""
_THREAD_PARSE_BYTES = 64 * 1024


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class JiraStatusCategory(_Lenient):
    """``issue.fields.status.statusCategory``."""

    key: str = Field(default="", max_length=100)
    """``new``, ``indeterminate`` or ``done``."""


class JiraStatus(_Lenient):
    """``issue.fields.status``."""

    category: JiraStatusCategory = Field(default_factory=JiraStatusCategory, alias="statusCategory")


class JiraIssueFields(_Lenient):
    """The issue fields the endpoint reads."""

    labels: list[str] = Field(default_factory=list)
    status: JiraStatus = Field(default_factory=JiraStatus)


class JiraIssue(_Lenient):
    """``issue`` of a Jira webhook event."""

    key: str = Field(max_length=100)
    fields: JiraIssueFields = Field(default_factory=JiraIssueFields)


class JiraEvent(_Lenient):
    """A Jira Cloud webhook event (``jira:issue_updated`` and friends)."""

    webhook_event: str = Field(default="", alias="webhookEvent", max_length=100)
    issue: JiraIssue | None = None


class JiraOutcome(BaseModel):
    """Answer of ``POST /webhooks/jira``."""

    result: Literal["done", "ignored"]
    """``done``: the action item was marked done now; ``ignored``: nothing changed."""
    action_id: str | None = None
    """The action item the issue belongs to, when it carries its label."""
    issue: str | None = None
    """The issue's key."""
    message: str
    """What happened, or why nothing did."""


def signature_of(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: the ``X-Hub-Signature`` Jira sends for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def jira_webhook_router(
    client: Callable[[], Awaitable[Client]],
    *,
    secret: str,
    max_body_bytes: int,
    deadline_seconds: float,
) -> APIRouter:
    """The Jira webhook endpoint.

    Args:
        client: returns the Temporal client, e.g. ``app.state.gateway.client``.
        secret: ``JIRA_WEBHOOK_SECRET``, the secret set on the webhook in Jira.
        max_body_bytes: larger bodies are refused with 413.
        deadline_seconds: the whole request is answered within this time.
    """
    router = APIRouter(prefix="/webhooks", tags=["webhooks"], responses=ERROR_RESPONSES)

    @router.post("/jira", response_model=JiraOutcome, summary="Jira Cloud issue webhook")
    async def jira(request: Request) -> JiraOutcome:
        """An action item's issue in a done status marks the item done."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + deadline_seconds
        given = request.headers.get(SIGNATURE_HEADER)
        if not given:
            raise WebhookError(401, "missing X-Hub-Signature", headers=CLOSE)
        try:
            body = await asyncio.wait_for(read_body(request, max_body_bytes), deadline_seconds)
        except TimeoutError:
            raise WebhookError(408, "request body not received in time", headers=CLOSE) from None
        expected = signature_of(secret, body)
        if not hmac.compare_digest(given.strip().encode("utf-8", "replace"), expected.encode()):
            raise WebhookError(401, "invalid X-Hub-Signature")
        if len(body) > _THREAD_PARSE_BYTES:
            event = await asyncio.to_thread(parse, body, JiraEvent)
        else:
            event = parse(body, JiraEvent)
        outcome = await _apply(client, event, deadline - loop.time())
        log.info("jira %s: %s", outcome.issue, outcome.message)
        return outcome

    return router


async def _apply(
    client: Callable[[], Awaitable[Client]], event: JiraEvent, timeout: float
) -> JiraOutcome:
    issue = event.issue
    if issue is None:
        return JiraOutcome(result="ignored", message=f"{event.webhook_event!r} names no issue")
    action = action_of_jira_labels(issue.fields.labels)
    if action is None:
        return JiraOutcome(
            result="ignored", issue=issue.key, message="the issue is not an action item's"
        )
    category = issue.fields.status.category.key
    if category != "done":
        return JiraOutcome(
            result="ignored",
            action_id=action,
            issue=issue.key,
            message=f"status category {category!r} is not done",
        )
    command = ActionDone(
        responder=RESPONDER, note=f"done in Jira {issue.key}", jira_issue=issue.key
    )
    timeout = max(timeout, 0.1)
    try:
        handle: WorkflowHandle[ActionItemWorkflow, ActionState] = (
            await client()
        ).get_workflow_handle_for(ActionItemWorkflow.run, action)
        update = asyncio.ensure_future(
            handle.execute_update(
                ActionItemWorkflow.done, command, rpc_timeout=timedelta(seconds=timeout)
            )
        )
        # Never cancel the RPC (that leaves the SDK's futures behind): past the deadline
        # it finishes in the background, bounded by its own rpc_timeout.
        _IN_FLIGHT.add(update)
        update.add_done_callback(_settled)
        result = await asyncio.wait_for(asyncio.shield(update), timeout)
    except WorkflowUpdateFailedError as error:
        reason = rejection_reason(error)
        return JiraOutcome(result="ignored", action_id=action, issue=issue.key, message=reason)
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return JiraOutcome(
                result="ignored",
                action_id=action,
                issue=issue.key,
                message=f"no open action item {action}",
            )
        raise _unavailable(str(error)) from None
    except (Unavailable, TimeoutError) as error:
        raise _unavailable(str(error) or "Temporal did not answer in time") from None
    return JiraOutcome(result="done", action_id=action, issue=issue.key, message=result.message)


_IN_FLIGHT: set[asyncio.Future[ActionResult]] = set()


def _settled(update: asyncio.Future[ActionResult]) -> None:
    _IN_FLIGHT.discard(update)
    if not update.cancelled():
        update.exception()  # retrieved, so a late failure is not logged as unhandled


def _unavailable(reason: str) -> WebhookError:
    log.warning("jira webhook: Temporal unavailable: %s", reason)
    return WebhookError(503, f"Temporal did not accept the update: {reason}; send it again")
