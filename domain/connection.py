"""Connecting to Temporal the way Temporal's own tools do.

``temporalio.envconfig`` reads ``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``,
``TEMPORAL_API_KEY``, TLS settings and profiles from the environment and
``temporal.toml``, so the same code reaches a dev server, a self-hosted
cluster or Temporal Cloud.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any, NoReturn

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig

DEFAULT_ADDRESS = "localhost:7233"


class TemporalUnavailable(RuntimeError):
    """Temporal could not be reached; the message names the address."""


def connect_config() -> dict[str, Any]:
    """Connection keyword arguments from the environment, with local defaults."""
    config: dict[str, Any] = dict(ClientConfig.load_client_connect_config())
    config.setdefault("target_host", DEFAULT_ADDRESS)
    config.setdefault("namespace", "default")
    return config


def target_of(config: dict[str, Any]) -> str:
    """``host:port/namespace`` for messages."""
    return f"{config['target_host']} (namespace {config['namespace']})"


async def connect(*, timeout: float = 10.0) -> Client:
    """Connect with the environment's settings and the project's data converter.

    Args:
        timeout: seconds to wait for the server before giving up (the SDK alone
            waits 30 s on a server that accepts the connection but never answers).

    Raises:
        TemporalUnavailable: naming the address and a short reason, when the
            settings are unusable (profile, TLS files) or the server cannot be reached.
    """
    try:
        config = connect_config()
    except (RuntimeError, OSError, ValueError) as error:
        raise TemporalUnavailable(f"invalid Temporal connection settings: {error}") from None
    target = target_of(config)
    try:
        return await asyncio.wait_for(
            Client.connect(**config, data_converter=pydantic_data_converter), timeout
        )
    except TimeoutError:
        raise TemporalUnavailable(_unreachable(target, f"no answer within {timeout:g}s")) from None
    except (RuntimeError, OSError, ValueError) as error:
        reason = _known_reason(str(error)) or str(error)
        raise TemporalUnavailable(_unreachable(target, reason)) from None


_KNOWN_REASONS = (
    ("Connection refused", "connection refused"),
    ("dns error", "unknown host"),
    ("Timeout expired", "timed out"),
    ("InvalidCertificate", "the server's TLS certificate was not accepted"),
    ("InvalidContentType", "TLS handshake failed; does this server use TLS?"),
)


def _known_reason(raw: str) -> str | None:
    """A short cause for the SDK's usual connection errors (which dump the whole gRPC error)."""
    return next((short for needle, short in _KNOWN_REASONS if needle in raw), None)


def _unreachable(target: str, reason: str) -> str:
    return (
        f"cannot reach Temporal at {target}: {reason}. "
        "Is the server running (make run), or is TEMPORAL_ADDRESS right?"
    )


def exit_process(code: int) -> NoReturn:
    """Flush and leave without interpreter finalization.

    Letting Python finalize while the Temporal client's native threads wind down
    can abort a finished process with ``PyGILState_Release``
    (temporalio/sdk-python#300), turning a success into exit code 134.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
