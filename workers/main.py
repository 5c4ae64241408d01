"""``incident-worker``: runs the incident workflows and activities."""

from __future__ import annotations

import asyncio
import logging
import sys
import warnings
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

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
from workers.tuning import WorkerTuning, load_tuning
from workers.wiring import ConfigurationError, build_worker, prepare

log = logging.getLogger("incidents.worker")

SHUTDOWN_GRACE = timedelta(seconds=3)
"""On shutdown, how long activities in flight may take to finish before they are cancelled."""


def load_worker_tuning() -> WorkerTuning:
    """``INCIDENT_WORKER_*`` from the environment.

    Raises:
        ConfigurationError: naming each unusable variable.
    """
    try:
        return load_tuning()
    except ValueError as error:
        raise ConfigurationError(str(error)) from None


def new_worker(
    client: Client,
    settings: Settings,
    *,
    policy: Policy,
    channels: list[Channel],
    tuning: WorkerTuning,
) -> Worker:
    """The worker ``incident-worker`` runs: ``settings``' task queue and data, ``tuning``."""
    with warnings.catch_warnings():
        # The SDK compares max_concurrent_activities with the thread pool of synchronous
        # activities; ours are only the two policy reads, every delivery is async.
        warnings.filterwarnings("ignore", _THREAD_POOL_WARNING, UserWarning)
        return build_worker(
            client,
            task_queue=settings.task_queue,
            policy=policy,
            channels=channels,
            archive_dir=settings.data_dir / "timelines",
            graceful_shutdown_timeout=SHUTDOWN_GRACE,
            **tuning.worker_options(),
        )


_THREAD_POOL_WARNING = r"Worker max_concurrent_activities is \d+ but activity_executor"


async def run_worker(
    settings: Settings,
    stop: asyncio.Event | None = None,
    prepared: tuple[Policy, list[Channel]] | None = None,
) -> None:
    """Load policy, templates and tuning (failing fast), connect, and run until ``stop`` is set."""
    policy, channels = prepared or prepare(settings)
    tuning = load_worker_tuning()
    client = await connect()
    worker = new_worker(client, settings, policy=policy, channels=channels, tuning=tuning)
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
