"""``incident-worker``: runs the incident workflows and activities."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import timedelta

from activities.channels import Channel
from domain.connection import (
    TemporalUnavailable,
    connect,
    connect_config,
    exit_process,
    target_of,
)
from domain.logs import setup_logging
from domain.policy import Policy
from domain.settings import Settings
from workers.schedules import start_monthly_report_schedule
from workers.wiring import ConfigurationError, build_worker, prepare

log = logging.getLogger("incidents.worker")

SHUTDOWN_GRACE = timedelta(seconds=3)
"""On shutdown, how long activities in flight may take to finish before they are cancelled."""


async def run_worker(
    settings: Settings,
    stop: asyncio.Event | None = None,
    prepared: tuple[Policy, list[Channel]] | None = None,
) -> None:
    """Load policy and templates (failing fast), connect, and run until ``stop`` is set."""
    policy, channels = prepared or prepare(settings)
    client = await connect()
    worker = build_worker(
        client,
        task_queue=settings.task_queue,
        policy=policy,
        channels=channels,
        archive_dir=settings.data_dir / "timelines",
        graceful_shutdown_timeout=SHUTDOWN_GRACE,
    )
    await start_monthly_report_schedule(
        client, task_queue=settings.task_queue, timezone=policy.metrics.report_timezone
    )
    log.info(
        "worker on %s, task queue %r, policy %s",
        target_of(connect_config()),
        settings.task_queue,
        settings.policy or "(defaults)",
    )
    async with worker:
        await (stop or asyncio.Event()).wait()


def main() -> None:
    """Console entry point."""
    setup_logging()
    code = 0
    try:
        asyncio.run(run_worker(Settings()))
    except (ConfigurationError, TemporalUnavailable) as error:
        print(f"incident-worker: {error}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        pass
    exit_process(code)


if __name__ == "__main__":
    main()
