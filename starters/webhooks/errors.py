"""Errors answered to webhook senders, always as JSON naming what is wrong."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError


class FieldError(BaseModel):
    """One invalid field."""

    field: str
    """Dotted path of the field, e.g. ``alerts[0].status``."""
    message: str
    """What is wrong with it."""


class ErrorBody(BaseModel):
    """Body of every 4xx/5xx answer of the webhook endpoints."""

    error: str
    """One-line description of the problem."""
    fields: list[FieldError] = Field(default_factory=list)
    """Invalid fields, for 400/422 answers."""


class WebhookError(Exception):
    """A request that is answered with ``status`` and an :class:`ErrorBody`."""

    def __init__(
        self,
        status: int,
        error: str,
        *,
        fields: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        body: ErrorBody | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.body = body or ErrorBody(error=error, fields=fields or [])
        self.headers = headers


def field_path(location: tuple[int | str, ...]) -> str:
    """``("alerts", 0, "status")`` → ``alerts[0].status``."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


def invalid_payload(error: ValidationError) -> WebhookError:
    """400 for malformed JSON, 422 naming each invalid field otherwise."""
    problems = error.errors(include_url=False, include_input=False)
    if any(item["type"] == "json_invalid" for item in problems):
        detail = problems[0].get("ctx", {}).get("error", "invalid JSON")
        return WebhookError(400, f"malformed JSON: {detail}")
    fields = [
        FieldError(field=field_path(item["loc"]), message=item["msg"].removeprefix("Value error, "))
        for item in problems[:50]
    ]
    return WebhookError(
        422, "invalid payload: " + ", ".join(f.field for f in fields[:5]), fields=fields
    )


async def webhook_error_handler(_request: Request, error: Exception) -> JSONResponse:
    """Render a :class:`WebhookError`."""
    assert isinstance(error, WebhookError)
    return JSONResponse(
        status_code=error.status, content=error.body.model_dump(mode="json"), headers=error.headers
    )


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Malformed JSON."},
    401: {"model": ErrorBody, "description": "Missing or invalid credentials."},
    403: {"model": ErrorBody, "description": "An action the policy does not allow."},
    408: {"model": ErrorBody, "description": "Body not received within the deadline."},
    409: {"model": ErrorBody, "description": "A signed request replayed."},
    413: {"model": ErrorBody, "description": "Body larger than the configured limit."},
    422: {"model": ErrorBody, "description": "Invalid payload; `fields` names each problem."},
    503: {
        "model": ErrorBody,
        "description": "Not every alert was handed over to Temporal by the deadline; the body "
        "lists those that were (`incidents`) and those to send again (`retry`). Sending the "
        "whole request again is safe.",
    },
}
"""OpenAPI description of the error answers shared by every webhook."""
