"""Connecting to Temporal the way Temporal's own tools do.

``temporalio.envconfig`` reads ``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``,
``TEMPORAL_API_KEY``, TLS settings and profiles from the environment and
``temporal.toml``, so the same code reaches a dev server, a self-hosted
cluster or Temporal Cloud.
"""

from __future__ import annotations

from typing import Any

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


async def connect() -> Client:
    """Connect with the environment's settings and the project's data converter.

    Raises:
        TemporalUnavailable: when the server cannot be reached.
    """
    config = connect_config()
    try:
        return await Client.connect(**config, data_converter=pydantic_data_converter)
    except RuntimeError as error:
        raise TemporalUnavailable(
            f"cannot reach Temporal at {target_of(config)}: {error}. "
            "Is the server running (make run), or is TEMPORAL_ADDRESS right?"
        ) from None
