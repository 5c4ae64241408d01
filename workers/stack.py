"""``make run``: the whole stack in one process tree.

Starts an embedded Temporal dev server with persistence under ``.data/`` (unless
``TEMPORAL_ADDRESS`` names a server to use), makes sure the custom search
attributes exist, then runs the worker and the HTTP service until Ctrl-C.

Ctrl-C (or SIGTERM) always ends the process within :data:`SHUTDOWN_DEADLINE`
seconds: the worker and the HTTP service get a grace period, and whatever is
still running after it is left to Temporal, which hands unfinished work to the
next worker. The dev server never outlives the stack (see
:func:`workers.devserver.start_dev_server`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Generator
from types import FrameType

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

SHUTDOWN_DEADLINE = 9.0
"""Seconds from the first Ctrl-C to the process's exit, whatever is still running."""
SERVICES_STOP_BUDGET = 6.0
"""Seconds the worker and the HTTP service have to stop before the stack leaves them."""
HTTP_GRACE_SECONDS = 2
"""Requests still running when Ctrl-C comes may take this long."""


class _Shutdown:
    """Signals that always end the stack: a graceful stop, then a watchdog, then a hard exit.

    The first SIGINT/SIGTERM sets ``stop`` and arms a watchdog thread; when it
    fires, or on a second signal, the dev server is killed and the process exits
    at once. A thread, so that a busy or blocked event loop cannot delay it.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
        self._loop = loop
        self._stop = stop
        self._watchdog: threading.Timer | None = None
        self.child: asyncio.subprocess.Process | None = None
        """The embedded dev server, once started."""

    def install(self) -> None:
        """Take over SIGINT and SIGTERM (uvicorn's own handlers are off)."""
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._watchdog is not None:
            self._force(f"{signal.Signals(signum).name} again: stopping now")
        self._watchdog = threading.Timer(
            SHUTDOWN_DEADLINE,
            self._force,
            args=(f"shutdown did not finish within {SHUTDOWN_DEADLINE:g}s: stopping now",),
        )
        self._watchdog.daemon = True
        self._watchdog.start()
        self._loop.call_soon_threadsafe(self._stop.set)

    def _force(self, why: str) -> None:
        # Runs in a signal handler or the watchdog thread: no logging (its locks), no loop.
        os.write(2, f"incident-stack: {why} (Temporal retries what was in flight)\n".encode())
        child = self.child
        if child is not None and child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
        os._exit(1)


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
    shutdown = _Shutdown(asyncio.get_running_loop(), stop)
    shutdown.install()

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
        shutdown.child = process
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
                timeout_graceful_shutdown=HTTP_GRACE_SECONDS,
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
        done, late = await asyncio.wait({worker, web}, timeout=SERVICES_STOP_BUDGET)
        if late:
            which = " and ".join(
                name for task, name in ((worker, "worker"), (web, "HTTP")) if task in late
            )
            log.warning(
                "the %s did not stop within %gs; leaving it (Temporal hands its work on)",
                which,
                SERVICES_STOP_BUDGET,
            )
        for task in done:
            task.result()  # surface a crashed worker or HTTP server instead of exiting quietly
    finally:
        if process is not None:
            log.info("stopping the Temporal dev server")
            await stop_process(process, timeout=2.0)


def main() -> None:
    """Console entry point (``make run``)."""
    setup_logging()
    code = 0
    # Not asyncio.run: its clean-up waits for every task and executor thread (an SMTP
    # call stalled in a thread, a worker task that cannot be evicted) with no time limit.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(run_stack(Settings()))
    except (ConfigurationError, TemporalUnavailable, RuntimeError) as error:
        print(f"incident-stack: {error}", file=sys.stderr)
        code = 2
    exit_process(code)


if __name__ == "__main__":
    main()
