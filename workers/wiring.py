"""Builds the incident worker from a client, a policy and notification channels."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities.channels import Channel
from activities.notify import Notifier
from activities.outbox import OutboxChannel
from activities.policy import PolicyActivities
from activities.templates import Templates
from domain.policy import Policy
from domain.settings import Settings
from workflows.alert_group import AlertGroupWorkflow
from workflows.incident import IncidentWorkflow

_POLICY_EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="policy")


def console_templates(settings: Settings | None = None) -> Templates:
    """The console templates, with the ``INCIDENT_TEMPLATES`` override if set."""
    override = settings.templates if settings is not None else None
    return Templates(media={"console": "txt"}, override_dir=override)


def default_channels(settings: Settings) -> list[Channel]:
    """Channels configured by the environment (the outbox is always on)."""
    return [OutboxChannel(settings.outbox_path, console_templates(settings))]


def build_worker(
    client: Client,
    *,
    task_queue: str,
    policy: Policy,
    channels: Sequence[Channel],
    **worker_options: Any,
) -> Worker:
    """A worker running incident workflows and their activities on ``task_queue``."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[IncidentWorkflow, AlertGroupWorkflow],
        activities=[
            PolicyActivities(policy).current_policy,
            Notifier(channels).notify,
        ],
        activity_executor=_POLICY_EXECUTOR,
        **worker_options,
    )
