"""Builds the incident worker from a client, a policy and notification channels."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.channels import Channel, FileSharer
from activities.email import CustomerEmailChannel, SmtpSender
from activities.jira import JiraIssues, new_jira_client
from activities.notify import Notifier
from activities.outbox import OutboxChannel
from activities.policy import PolicyActivities
from activities.postmortems import PostmortemDrafts
from activities.reports import MonthlyReports, RowSource
from activities.slack import SlackApi, SlackChannel, new_slack_client
from activities.slack.report import ReportingSlackChannel
from activities.status_provider import StatusPageChannel
from activities.statuspage import AtlassianStatuspage, new_statuspage_client
from activities.template_check import rehearse
from activities.templates import standard_templates
from activities.timeline_archive import TimelineArchive
from domain.comms import SlackSettings, SmtpSettings, StatuspageSettings
from domain.policy import JiraPolicy, Policy, load_policy
from domain.settings import JiraSettings, Settings
from starters.metrics_source import load as load_metrics_rows
from workflows.action_item import ActionItemWorkflow
from workflows.alert_group import AlertGroupWorkflow
from workflows.alert_intake import AlertIntakeWorkflow
from workflows.incident import IncidentWorkflow
from workflows.legacy.alert_group_v1 import LegacyAlertGroupWorkflow
from workflows.legacy.incident_v1 import LegacyIncidentWorkflow
from workflows.monthly_report import MonthlyReportWorkflow, ScheduledReportWorkflow

log = logging.getLogger("incidents.worker")

WORKFLOWS = [
    IncidentWorkflow,
    LegacyIncidentWorkflow,
    AlertGroupWorkflow,
    LegacyAlertGroupWorkflow,
    AlertIntakeWorkflow,
    ActionItemWorkflow,
    MonthlyReportWorkflow,
    ScheduledReportWorkflow,
]
"""Every workflow the incident worker runs (also what the replay tests replay)."""

WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(
        "domain", "workflows", "activities"
    )
)
"""The sandbox, with this project's own packages imported once per process.

The default sandbox re-imports (and, without bytecode caches, recompiles) every
workflow module and builds every pydantic model again for each workflow run it
starts or replays: half of the worker's CPU per new incident, and most of the
memory of each cached run. Our packages hold no mutable module state, so they
are shared. The restrictions still guard what workflow code imports at run time,
ruff's banned-API rule (``pyproject.toml``) keeps clock, randomness and I/O calls
out of ``workflows/``, and the replay tests run every committed history under the
SDK's full default sandbox.
"""

_POLICY_EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="policy")


def default_channels(settings: Settings, policy: Policy | None = None) -> list[Channel]:
    """Channels configured by the environment (the outbox is always on).

    Slack joins with ``SLACK_BOT_TOKEN``, Atlassian Statuspage with
    ``STATUSPAGE_API_KEY`` (otherwise the built-in ``/status`` page shows the
    incidents), customer e-mail with ``SMTP_HOST``. Every template of every
    medium is checked here, so a broken one stops the worker at start-up.
    """
    policy = policy if policy is not None else load_policy(settings.policy)
    templates = standard_templates(settings.templates)
    rehearse(templates)
    comms = policy.comms
    channels: list[Channel] = [OutboxChannel(settings.outbox_path, templates)]
    statuspage = StatuspageSettings()
    if statuspage.enabled:
        provider = AtlassianStatuspage(new_statuspage_client(statuspage), statuspage.page_id)
        channels.append(StatusPageChannel(provider, templates, comms.status_page))
    smtp = SmtpSettings()
    if smtp.enabled:
        sender = SmtpSender(smtp)
        channels.append(CustomerEmailChannel(sender, templates, comms.email, smtp.sender))
    slack = SlackSettings()
    if slack.enabled:
        api = SlackApi(new_slack_client(slack))
        incidents = SlackChannel(api, templates, comms.slack)
        channels.append(ReportingSlackChannel(incidents, api, templates, comms.slack))
    return channels


def default_jira(policy: Policy) -> JiraIssues | None:
    """Jira export, when ``[actions.jira] project`` and ``JIRA_*`` credentials are both set."""
    settings = JiraSettings()
    if not policy.actions.jira.project:
        return None
    if not settings.enabled:
        log.warning(
            "[actions.jira] project is set but JIRA_URL, JIRA_EMAIL or JIRA_API_TOKEN is not"
        )
        return None
    return JiraIssues(new_jira_client(settings), site_url=settings.url)


class ConfigurationError(ValueError):
    """The policy, a template or a channel's settings is unusable; the message says which."""


def prepare(settings: Settings) -> tuple[Policy, list[Channel]]:
    """Load the policy and build the channels, checking every template.

    Raises:
        ConfigurationError: for anything a user must fix before the worker can start.
    """
    try:
        policy = load_policy(settings.policy)
        return policy, default_channels(settings, policy)
    except ValueError as error:
        raise ConfigurationError(str(error)) from None


def build_worker(
    client: Client,
    *,
    task_queue: str,
    policy: Policy,
    channels: Sequence[Channel],
    archive_dir: Path = Path(".data") / "timelines",
    postmortems_dir: Path | None = None,
    jira: JiraIssues | None = None,
    reports_dir: Path | None = None,
    report_source: RowSource = load_metrics_rows,
    workflows: Sequence[type] = WORKFLOWS,
    **worker_options: Any,
) -> Worker:
    """A worker running incident workflows and their activities on ``task_queue``.

    ``archive_dir`` holds the timeline archive (older timeline entries of every
    incident); replicas of the worker share it. ``postmortems_dir`` receives the
    post-mortem drafts (default: ``postmortems`` next to ``archive_dir``). ``jira``
    exports action items (default: :func:`default_jira`); without it the workflows are
    handed a policy without a Jira project, so none waits for an activity nobody runs.
    ``reports_dir`` receives the monthly reports (default: ``reports`` next to
    ``archive_dir``), read from visibility by ``report_source``. ``workflows`` replaces
    the workflow classes (tests run workflows as older releases did).
    """
    jira = jira or default_jira(policy)
    if jira is None and policy.actions.jira.project:
        unexported = policy.actions.model_copy(update={"jira": JiraPolicy()})
        policy = policy.model_copy(update={"actions": unexported})
    notifier = Notifier(channels)
    setup = PolicyActivities(policy, notifier.channel_names)
    archive = TimelineArchive(archive_dir)
    drafts = PostmortemDrafts(
        postmortems_dir or archive_dir.parent / "postmortems",
        archive=archive,
        sharer=next((c for c in channels if isinstance(c, FileSharer)), None),
    )
    reports = MonthlyReports(
        client, reports_dir or archive_dir.parent / "reports", source=report_source
    )
    return Worker(
        client,
        task_queue=task_queue,
        workflows=workflows,
        activities=[
            setup.current_policy,
            setup.worker_setup,
            notifier.notify,
            notifier.deliver_via,
            archive.archive,
            drafts.write,
            reports.write,
            *([jira.export] if jira is not None else []),
        ],
        activity_executor=_POLICY_EXECUTOR,
        workflow_runner=WORKFLOW_RUNNER,
        **worker_options,
    )
