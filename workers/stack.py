"""``make run``: the whole stack in one process tree.

Starts an embedded Temporal dev server with persistence under ``.data/`` (unless
``TEMPORAL_ADDRESS`` names a server to use), makes sure the custom search
attributes exist, then runs the worker and the HTTP service until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Generator

import uvicorn

from domain.connection import (
    TemporalUnavailable,
    connect,
    connect_config,
    exit_process,
    target_of,
)
from domain.logs import setup_logging
from domain.settings import Settings
from workers.devserver import (
    DevServerConfig,
    ensure_search_attributes,
    start_dev_server,
    stop_process,
)
from workers.main import run_worker
from workers.wiring import ConfigurationError, prepare

log = logging.getLogger("incidents.stack")


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the stack owns Ctrl-C."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None]:
        yield


def _banner(settings: Settings, server: DevServerConfig | None) -> str:
    config = connect_config()
    ui = server.ui_url if server else "(your server's Web UI)"
    where = f"embedded dev server, data in {server.db_file}" if server else "from TEMPORAL_ADDRESS"
    http = f"http://{settings.http_host}:{settings.http_port}"
    return "\n".join(
        [
            "",
            "Incident orchestrator is up.",
            f"  Temporal   {target_of(config)} — {where}",
            f"  Web UI     {ui}/namespaces/{config['namespace']}/workflows",
            f"  HTTP       {http}/webhooks/…  docs {http}/docs  status page {http}/status",
            f"  Worker     task queue {settings.task_queue!r}, policy "
            f"{settings.policy or '(defaults from the process)'}",
            f"  Outbox     {settings.outbox_path}",
            "",
            '  Try:  .venv/bin/incident declare "Checkout returns 500s" --severity P1',
            "        .venv/bin/incident list",
            "",
            "Ctrl-C stops everything this command started.",
            "",
        ]
    )


async def run_stack(settings: Settings) -> None:
    """Bring the stack up and keep it running until SIGINT/SIGTERM."""
    prepared = prepare(settings)  # fail fast, before starting anything
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    server: DevServerConfig | None = None
    process = None
    if not os.environ.get("TEMPORAL_ADDRESS"):
        server = DevServerConfig(
            db_file=settings.data_dir / "temporal.db",
            port=settings.dev_server_port,
            ui_port=settings.dev_ui_port,
        )
        log.info("starting the Temporal dev server on %s", server.address)
        process = await start_dev_server(server)
        os.environ["TEMPORAL_ADDRESS"] = server.address
    try:
        client = await connect()
        try:
            added = await ensure_search_attributes(client)
            if added:
                log.info("registered search attributes: %s", ", ".join(added))
        except Exception as error:  # noqa: BLE001 - a managed cloud namespace may refuse
            log.warning("could not check search attributes (%s); register them yourself", error)

        from starters.http_app import create_app

        http = _EmbeddedServer(
            uvicorn.Config(
                create_app(settings=settings, client=client, policy=prepared[0]),
                host=settings.http_host,
                port=settings.http_port,
                log_level="warning",
                log_config=None,  # uvicorn's records go through our sanitizing handler
            )
        )
        worker = asyncio.create_task(run_worker(settings, stop, prepared))
        web = asyncio.create_task(http.serve())
        while not http.started and not web.done():
            await asyncio.sleep(0.05)
        print(_banner(settings, server), flush=True)
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({worker, web, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stop.set()
        http.should_exit = True
        # Surface a crashed worker or HTTP server instead of exiting quietly.
        await asyncio.gather(worker, web)
    finally:
        if process is not None:
            log.info("stopping the Temporal dev server")
            await stop_process(process)


def main() -> None:
    """Console entry point (``make run``)."""
    setup_logging()
    code = 0
    try:
        asyncio.run(run_stack(Settings()))
    except (ConfigurationError, TemporalUnavailable, RuntimeError) as error:
        print(f"incident-stack: {error}", file=sys.stderr)
        code = 2
    exit_process(code)


if __name__ == "__main__":
    main()
