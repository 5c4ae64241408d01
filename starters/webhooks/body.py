"""Reading a request body within a size limit, and validating it into a payload model."""

from __future__ import annotations

from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from starters.webhooks.errors import WebhookError, invalid_payload

PayloadT = TypeVar("PayloadT", bound=BaseModel)


CLOSE = {"Connection": "close"}
"""Answer header for a request whose body was not read to the end: the server hangs up
instead of draining the rest of it."""


def _too_large(limit: int) -> WebhookError:
    return WebhookError(413, f"request body larger than {limit} bytes", headers=CLOSE)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it passes ``limit`` bytes.

    Raises:
        WebhookError: 413 (announced or actual size over the limit) or 400
            (unreadable Content-Length).
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise WebhookError(400, "invalid Content-Length header") from None
        if size > limit:
            raise _too_large(limit)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse(body: bytes, model: type[PayloadT]) -> PayloadT:
    """Validate ``body`` as JSON into ``model``.

    Raises:
        WebhookError: 400 for malformed JSON, 422 naming each invalid field.
    """
    if not body.strip():
        raise WebhookError(400, "empty body: expected a JSON object")
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise invalid_payload(error) from None
