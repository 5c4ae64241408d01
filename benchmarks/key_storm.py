"""Key storm: many alerts over many distinct keys at once (issue 7).

Run from the repository root::

    python -m benchmarks.key_storm [--alerts 10000] [--keys 1000] [--batch 100] [--concurrency 8]

Everything runs on loopback against the real stack (:mod:`benchmarks._stack`)
with the default policy (``alerts.max_new_incidents_per_minute`` = 20;
``--max-history-events`` tries another continue-as-new threshold). Alert
``i`` has fingerprint ``i mod --keys``; Alertmanager notifications of
``--batch`` consecutive alerts (no fingerprint twice in one) are posted with
``--concurrency`` in flight. A 503 is retried whole after its ``Retry-After``,
as Alertmanager does; its body says which alerts Temporal had already recorded
(they are counted again when re-sent) and which to send again.

Then every incident on the task queue (workflow type ``Incident``) is read, and
so are the source's alert intake (:mod:`workflows.alert_intake`) and every
key's alert group. Every alert must be counted somewhere: the incidents'
``alert_notifications`` add up to the alerts answered 2xx, plus those a 503
reported recorded, plus at most those a 503 asked to re-send (in flight at the
deadline, they may still land); and every key's group names an open incident.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.service import RPCError

from benchmarks._stack import (
    ALERTMANAGER,
    RunHistory,
    Sender,
    Stack,
    alertmanager_alert,
    alertmanager_notification,
    describe_run,
    elapsed_since,
    percentile,
    post_request,
    run_histories,
    running_stack,
    verdict,
)
from domain.connection import exit_process
from domain.incident import IncidentView
from domain.policy import Policy
from domain.routing import AlertSource
from starters.cli.session import CliError, Incidents
from workflows.alert_group import OPEN_INCIDENT_MEMO, alert_group_id
from workflows.alert_intake import AlertIntakeWorkflow, IntakeView, alert_intake_id
from workflows.incident import IncidentWorkflow

MAX_ATTEMPTS = 30
RETRY_AFTER_CAP = 10.0
SETTLE_TIMEOUT = 300.0


@dataclass
class Delivery:
    """What the webhook answered, over every request and retry."""

    statuses: Counter[int] = field(default_factory=Counter)
    accepted: int = 0
    """Alerts in 2xx answers."""
    actions: Counter[str] = field(default_factory=Counter)
    """Outcomes of the alerts in 2xx answers (opened, joined...)."""
    partial_recorded: int = 0
    """Alerts a 503 reported recorded (counted again when the notification is re-sent)."""
    partial_retry: int = 0
    """Alerts a 503 asked to send again (may still have landed after the deadline)."""
    retries: int = 0
    """Notifications sent again after a non-2xx answer or a broken connection."""
    broken: int = 0
    """Requests whose connection broke (re-sent; they may or may not have been handled)."""
    failed: int = 0
    """Notifications never answered 2xx."""
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class Counted:
    """What the incidents say."""

    incidents: list[IncidentView]
    intake: IntakeView | None

    @property
    def notifications(self) -> int:
        """Alert notifications counted over every incident."""
        return sum(view.alert_notifications for view in self.incidents)


@dataclass
class StormWatch:
    """The storm incident as ``incident show`` saw it while the storm went on."""

    incident: str | None = None
    shows: list[float] = field(default_factory=list)
    """Seconds each successful read took."""
    failures: Counter[str] = field(default_factory=Counter)
    """Failed reads by message."""


async def watch_storm(stack: Stack, watch: StormWatch, stop: asyncio.Event) -> None:
    """Find the storm incident through the intake, then read it like ``incident show``."""
    incidents = Incidents(stack.client, timeout=30)
    intake: WorkflowHandle[AlertIntakeWorkflow, None] = stack.client.get_workflow_handle_for(
        AlertIntakeWorkflow.run, alert_intake_id(AlertSource.ALERTMANAGER.value, stack.task_queue)
    )
    while not stop.is_set():
        tick = time.perf_counter()
        if watch.incident is None:
            with contextlib.suppress(RPCError, WorkflowQueryFailedError):
                watch.incident = (await intake.query(AlertIntakeWorkflow.view)).storm_incident
        else:
            try:
                await incidents.view(watch.incident)
                watch.shows.append(elapsed_since(tick))
            except CliError as error:
                watch.failures[error.message[:120]] += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, 0.5 - elapsed_since(tick)))


def notifications(run: str, *, alerts: int, keys: int, batch: int) -> list[list[dict[str, Any]]]:
    """The alerts of each notification, ``batch`` consecutive ones each."""
    started = datetime.now(UTC)
    every = [
        alertmanager_alert(f"{run}-{index % keys:05d}", firing=True, started=started)
        for index in range(alerts)
    ]
    return [every[start : start + batch] for start in range(0, alerts, batch)]


async def post_all(port: int, bodies: list[bytes], concurrency: int) -> Delivery:
    """Post every notification, ``concurrency`` at a time, until each is answered 2xx."""
    delivery = Delivery()
    pending = iter(bodies)

    async def one(sender: Sender, request: bytes) -> None:
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                delivery.retries += 1
            started = time.perf_counter()
            try:
                response = await sender.send(request)
            except (OSError, asyncio.IncompleteReadError):
                delivery.broken += 1
                await asyncio.sleep(1)
                continue
            delivery.latencies.append(elapsed_since(started))
            delivery.statuses[response.status] += 1
            if 200 <= response.status < 300:
                outcomes = response.json()["incidents"]
                delivery.accepted += len(outcomes)
                delivery.actions.update(outcome["action"] for outcome in outcomes)
                return
            if response.status == 503:
                report = response.json()
                delivery.partial_recorded += len(report.get("incidents", []))
                delivery.partial_retry += len(report.get("retry", []))
            await asyncio.sleep(min(response.retry_after or 1.0, RETRY_AFTER_CAP))
        delivery.failed += 1

    async def worker() -> None:
        sender = Sender(port)
        try:
            for request in pending:
                await one(sender, request)
        finally:
            sender.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    delivery.seconds = elapsed_since(started)
    return delivery


async def incident_ids(client: Client, task_queue: str) -> list[str]:
    """Every ``Incident`` workflow on the task queue (each counted once across runs)."""
    query = f'WorkflowType = "Incident" AND TaskQueue = "{task_queue}"'
    return sorted({execution.id async for execution in client.list_workflows(query)})


async def count(stack: Stack) -> Counted:
    """Read every incident and the alert intake."""
    ids = await incident_ids(stack.client, stack.task_queue)
    handles: list[WorkflowHandle[IncidentWorkflow, IncidentView]] = [
        stack.client.get_workflow_handle_for(IncidentWorkflow.run, incident) for incident in ids
    ]
    views = await asyncio.gather(*(handle.query(IncidentWorkflow.view) for handle in handles))
    intake: WorkflowHandle[AlertIntakeWorkflow, None] = stack.client.get_workflow_handle_for(
        AlertIntakeWorkflow.run, alert_intake_id(AlertSource.ALERTMANAGER.value, stack.task_queue)
    )
    try:
        intake_view: IntakeView | None = await intake.query(AlertIntakeWorkflow.view)
    except RPCError:  # no intake ran: no alert ever asked to open an incident
        intake_view = None
    return Counted(incidents=list(views), intake=intake_view)


async def settle(stack: Stack, expected: int) -> tuple[Counted, float]:
    """Count until every expected notification is counted and the count holds still."""
    started = time.perf_counter()
    previous = -1
    steady_since = time.perf_counter()
    while True:
        counted = await count(stack)
        total = counted.notifications
        if total != previous:
            previous, steady_since = total, time.perf_counter()
        if total >= expected and elapsed_since(steady_since) >= 3:
            return counted, elapsed_since(started)
        if elapsed_since(started) > SETTLE_TIMEOUT:
            return counted, elapsed_since(started)
        await asyncio.sleep(0.5)


async def groups_without_incident(stack: Stack, fingerprints: list[str]) -> list[str]:
    """Keys whose alert group is not running or names no open incident."""
    gate = asyncio.Semaphore(8)

    async def orphan(fingerprint: str) -> bool:
        group = alert_group_id(AlertSource.ALERTMANAGER.value, fingerprint)
        async with gate:
            description = await stack.client.get_workflow_handle(group).describe()
        if description.status is not WorkflowExecutionStatus.RUNNING:
            return True
        incident = await description.memo_value(OPEN_INCIDENT_MEMO, None, type_hint=str)
        return incident is None

    flags = await asyncio.gather(*(orphan(fingerprint) for fingerprint in fingerprints))
    return [fingerprint for fingerprint, flag in zip(fingerprints, flags, strict=True) if flag]


async def main(options: argparse.Namespace) -> bool:
    """Start the stack, post the storm, count, print the figures; True when every target is met."""
    run = uuid.uuid4().hex[:8]
    batches = notifications(run, alerts=options.alerts, keys=options.keys, batch=options.batch)
    fingerprints = sorted({alert["fingerprint"] for batch in batches for alert in batch})
    cap = Policy().alerts.max_new_incidents_per_minute
    policy = (
        f"max_history_events = {options.max_history_events}\n"
        if options.max_history_events
        else None
    )
    async with running_stack(name="keys", policy_toml=policy, keep=options.keep) as stack:
        bodies = [
            post_request(stack.http_port, ALERTMANAGER, alertmanager_notification(batch))
            for batch in batches
        ]
        print(f"posting {len(bodies)} notifications of up to {options.batch} alerts")
        watch = StormWatch()
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch_storm(stack, watch, stop))
        delivery = await post_all(stack.http_port, bodies, options.concurrency)
        print(f"posted in {delivery.seconds:.1f} s; counting")
        counted, settled = await settle(stack, delivery.accepted + delivery.partial_recorded)
        stop.set()
        await watcher
        orphans = await groups_without_incident(stack, fingerprints)
        runs = await run_histories(stack.client, watch.incident) if watch.incident else []
    return _report(
        options,
        cap=cap,
        keys=len(fingerprints),
        notifications=len(bodies),
        delivery=delivery,
        counted=counted,
        settled=settled,
        orphans=orphans,
        watch=watch,
        runs=runs,
    )


def _report(
    options: argparse.Namespace,
    *,
    cap: int,
    keys: int,
    notifications: int,
    delivery: Delivery,
    counted: Counted,
    settled: float,
    orphans: list[str],
    watch: StormWatch,
    runs: list[RunHistory],
) -> bool:
    intake = counted.intake
    storm_id = intake.storm_incident if intake else None
    storm = next((view for view in counted.incidents if view.id == storm_id), None)
    own = [view for view in counted.incidents if view.id != storm_id]
    low = delivery.accepted + delivery.partial_recorded
    high = low + delivery.partial_retry
    total = counted.notifications
    latencies = delivery.latencies
    print(
        f"\nKey storm: {options.alerts} alerts over {keys} fingerprints in {notifications} "
        f"Alertmanager notifications of {options.batch}, {options.concurrency} in flight, "
        f"{os.cpu_count()} CPUs"
        + (
            f", policy max_history_events {options.max_history_events}"
            if options.max_history_events
            else ""
        )
        + "\n"
    )
    print(
        f"posted                {delivery.seconds:.1f} s, {options.alerts / delivery.seconds:.0f} "
        f"alerts/s; answers {dict(delivery.statuses)}; time to answer p50 "
        f"{percentile(latencies, 0.5):.2f} s, max {max(latencies, default=float('nan')):.2f} s"
    )
    print(
        f"retries               {delivery.retries} notifications re-sent; 503s reported "
        f"{delivery.partial_recorded} alerts recorded and {delivery.partial_retry} to re-send; "
        f"broken connections {delivery.broken}; never 2xx {delivery.failed}"
    )
    print(f"accepted (2xx)        {delivery.accepted} alerts {dict(delivery.actions)}")
    print(
        f"incidents opened      {len(counted.incidents)} ({len(own)} of their own + "
        f"{'1 alert storm' if storm else 'no alert storm'}); cap {cap} a minute"
    )
    if intake is not None:
        print(
            f"alert intake          {intake.requests} opening requests, {len(intake.admitted_at)} "
            f"admitted in the last minute, {intake.joined_storm} sent to the storm, "
            f"{intake.storms_opened} storm incident(s) opened"
        )
    if storm is not None:
        print(
            f"storm incident        {storm.id}: {len(storm.alerts)} alerts tracked + "
            f"{storm.alerts_untracked} untracked notifications; "
            f"{storm.alert_notifications} alert notifications"
        )
    if watch.incident is not None:
        failed = sum(watch.failures.values())
        slowest = max(watch.shows, default=float("nan"))
        print(
            f"storm incident show   {len(watch.shows) + failed} reads during the storm: p50 "
            f"{percentile(watch.shows, 0.5):.3f} s, max {slowest:.3f} s; failed {failed}"
            + "".join(f"\n  {n} × {message}" for message, n in watch.failures.most_common(3))
        )
        for run in runs:
            print(f"  {describe_run(run)}")
    print(
        f"own incidents         {sum(len(view.alerts) for view in own)} alerts, "
        f"{sum(view.alert_notifications for view in own)} alert notifications"
    )
    print(
        f"counted               {total} alert notifications over every incident "
        f"(expected {low}" + (f"…{high}" if high != low else "") + f"); settled {settled:.1f} s "
        f"after the last answer"
    )
    print(
        f"keys without incident {len(orphans)} of {keys}"
        + (f" (e.g. {orphans[0]})" if orphans else "")
    )
    incidents_ok = len(counted.incidents) <= cap + 1
    counted_ok = low <= total <= high and delivery.failed == 0 and not orphans
    print("\ntargets")
    print(
        f"  {verdict(incidents_ok)}  incidents opened ≤ cap + 1 "
        f"({len(counted.incidents)} ≤ {cap + 1})"
    )
    print(
        f"  {verdict(counted_ok)}  every alert counted, nothing lost "
        f"({total} counted, {low}" + (f"…{high}" if high != low else "") + " expected; "
        f"{delivery.failed} notifications never 2xx; {len(orphans)} keys without incident)"
    )
    return incidents_ok and counted_ok


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--alerts", type=int, default=10_000, help="alerts in all")
    parser.add_argument("--keys", type=int, default=1_000, help="distinct fingerprints")
    parser.add_argument("--batch", type=int, default=100, help="alerts per notification")
    parser.add_argument("--concurrency", type=int, default=8, help="notifications in flight")
    parser.add_argument(
        "--max-history-events",
        type=int,
        help="try another policy max_history_events (default: the policy's own)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the stack's directory")
    options = parser.parse_args()
    if min(options.alerts, options.keys, options.batch, options.concurrency) < 1:
        parser.error("every count must be at least 1")
    if options.batch > 1000:
        parser.error("--batch: the webhook takes at most 1000 alerts per notification")
    return options


if __name__ == "__main__":
    # Exit code 1 when a target is missed; no interpreter finalization (see exit_process).
    exit_process(0 if asyncio.run(main(_options())) else 1)
