"""Flap storm: fire/resolve pairs of one alert into one acknowledged incident (issue 7).

Run from the repository root::

    python -m benchmarks.flap_storm [--pairs 10000] [--senders 4]

Everything runs on loopback against the real stack (:mod:`benchmarks._stack`):
a private dev server, the worker and the HTTP service under uvicorn, with the
P0 clocks of ``examples/demo-policy.toml`` (:data:`POLICY`: 20 s stakeholder
updates, nudges 5 s before them, a 2 min resolve SLA, a 15 s Monitor window, a
40 s post-mortem deadline), alerts routed to P0 and a 10 s ``alerts.settle_window``.

1. One firing Alertmanager alert opens a P0 incident; a responder acknowledges it.
2. ``--senders`` keep-alive connections post ``--pairs`` pairs of notifications
   (firing, then resolved) of that one fingerprint as fast as the webhook
   answers; a non-2xx answer is retried like Alertmanager would (the figures
   count retries). Halfway, a responder posts ``incident update`` (the
   ``post_update`` update) and the outbox file is watched for it.
3. A last resolved notification lets the alert settle: the incident moves to
   Monitor, resolves after the Monitor window and reminds of, then escalates,
   the post-mortem — every one of them a clock.

Every ``--interval`` seconds throughout, the incident is read the way
``incident show`` reads it (:meth:`starters.cli.session.Incidents.view`:
describe, then the ``view`` query) and described for its status, run and
history size. Clock lateness is each clock-driven timeline entry's time (the
workflow's clock when it fired) minus its due time, derived from the policy and
the entries before it (acknowledgement, responder updates, the previous update,
the last alert change, Monitor and Resolve).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
import tomllib
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from temporalio.client import WorkflowExecutionStatus

from benchmarks._stack import (
    ALERTMANAGER,
    OutboxTail,
    Response,
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
from domain.models import AcknowledgeInput, EventKind, StatusUpdateInput, TimelineEvent
from domain.policy import Policy, policy_from_mapping
from starters.cli.session import CliError, Incidents
from starters.cli.timeline import with_archived_timeline
from workflows import clocks
from workflows.incident import IncidentWorkflow

POLICY = """
# The P0 clocks of examples/demo-policy.toml, every alert routed to P0, a 10 s settle window.
[severities.P0]
ack_sla = "10s"
resolve_sla = "2m"
update_interval = "20s"
nudge_before = "5s"
monitor_window = "15s"
postmortem_required = true

[escalation]
repeat = 2
[[escalation.levels]]
targets = ["@primary-oncall"]
delay = "5s"
[[escalation.levels]]
targets = ["@secondary-oncall", "@sre-leads"]
delay = "5s"

[postmortem]
deadline = "40s"
reminder_before = "20s"

[routing]
default_severity = "P0"

[alerts]
settle_window = "10s"
"""
RESPONDER = "bench-ic"
SHOW_TARGET = 2.0
HISTORY_TARGET = 10 * 1024 * 1024
CLOCK_TARGET = 2.0
OUTBOX_TARGET = 5.0
MAX_ATTEMPTS = 5


@dataclass
class Sample:
    """One look at the incident."""

    at: float
    """Seconds since the storm started (negative: before)."""
    show_seconds: float | None
    """How long ``incident show``'s reads took; None when they failed."""
    error: str
    describe_seconds: float
    """How long the plain describe after it took (history size, status)."""
    running: bool
    run_id: str
    history_length: int
    history_bytes: int


@dataclass
class Observed:
    """What the sampler saw."""

    samples: list[Sample] = field(default_factory=list)
    loop_lag: float = 0.0
    """Longest the benchmark's own event loop was late (it also runs the load generator)."""
    entries: dict[int, TimelineEvent] = field(default_factory=dict)
    """Timeline entries by sequence number, as last seen."""
    first_seen: dict[int, datetime] = field(default_factory=dict)
    """When each entry was first seen by ``show``."""
    last_view: IncidentView | None = None


@dataclass
class Storm:
    """What the senders did."""

    statuses: Counter[int] = field(default_factory=Counter)
    ok: int = 0
    retries: int = 0
    failed: int = 0
    """Requests that never got a 2xx."""
    broken: int = 0
    """Connections that broke mid-request."""
    pairs_done: int = 0
    started: float = 0.0
    seconds: float = 0.0
    ended_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class ClockFiring:
    """A clock-driven timeline entry and when it was due."""

    kind: str
    at: datetime
    due: datetime
    seen: datetime | None

    @property
    def lateness(self) -> float:
        """Seconds after its due time that the clock fired (workflow time)."""
        return (self.at - self.due).total_seconds()


@dataclass(frozen=True)
class UpdateTiming:
    """The responder's update: accepted, then written to the outbox."""

    accepted: float | None
    in_outbox: float | None
    error: str = ""


def storm_policy(max_history_events: int | None = None) -> str:
    """The benchmark's policy: the demo clocks, alerts routed to P0, a 10 s settle window.

    Args:
        max_history_events: the policy's continue-as-new threshold, to try another
            one (default: the policy's own).
    """
    top = f"max_history_events = {max_history_events}\n" if max_history_events else ""
    return top + POLICY


async def post(sender: Sender, request: bytes, storm: Storm) -> Response | None:
    """Post until a 2xx (at most :data:`MAX_ATTEMPTS`), honouring ``Retry-After``."""
    for attempt in range(MAX_ATTEMPTS):
        if attempt:
            storm.retries += 1
        try:
            response = await sender.send(request)
        except (OSError, asyncio.IncompleteReadError):
            storm.broken += 1
            await asyncio.sleep(1)
            continue
        storm.statuses[response.status] += 1
        if 200 <= response.status < 300:
            storm.ok += 1
            return response
        await asyncio.sleep(min(response.retry_after or 1.0, 5.0))
    storm.failed += 1
    return None


async def open_incident(stack: Stack, fingerprint: str, started: datetime) -> str:
    """Open the incident with one firing alert, and acknowledge it."""
    request = post_request(
        stack.http_port,
        ALERTMANAGER,
        alertmanager_notification([alertmanager_alert(fingerprint, firing=True, started=started)]),
    )
    sender = Sender(stack.http_port)
    try:
        response = await post(sender, request, Storm())
    finally:
        sender.close()
    if response is None:
        raise SystemExit("the first alert was not accepted")
    incident_id: str = response.json()["incidents"][0]["incident_id"]
    incidents = Incidents(stack.client, timeout=30)
    await incidents.command(
        incident_id, IncidentWorkflow.acknowledge, AcknowledgeInput(responder=RESPONDER)
    )
    return incident_id


async def send_pairs(
    port: int,
    pairs: Iterator[int],
    requests: tuple[bytes, bytes],
    storm: Storm,
    *,
    halfway: int,
    midway: asyncio.Event,
) -> None:
    """Post firing then resolved for each pair this sender takes."""
    sender = Sender(port)
    try:
        for _ in pairs:
            for request in requests:
                await post(sender, request, storm)
            storm.pairs_done += 1
            if storm.pairs_done >= halfway:
                midway.set()
    finally:
        sender.close()


async def sample(
    stack: Stack,
    incident_id: str,
    observed: Observed,
    *,
    origin: float,
    interval: float,
    stop: asyncio.Event,
) -> None:
    """Read the incident like ``incident show`` and describe it, every ``interval`` seconds."""
    incidents = Incidents(stack.client, timeout=30)
    handle = stack.client.get_workflow_handle(incident_id)
    while not stop.is_set():
        tick = time.perf_counter()
        show: float | None = None
        error = ""
        try:
            view = await incidents.view(incident_id)
            show = elapsed_since(tick)
            now = datetime.now(UTC)
            observed.last_view = view
            for entry in view.timeline:
                observed.entries[entry.seq] = entry
                observed.first_seen.setdefault(entry.seq, now)
        except CliError as failure:
            error = failure.message
        described = time.perf_counter()
        description = await handle.describe()
        info = description.raw_info
        observed.samples.append(
            Sample(
                at=tick - origin,
                show_seconds=show,
                error=error,
                describe_seconds=elapsed_since(described),
                running=description.status is WorkflowExecutionStatus.RUNNING,
                run_id=description.run_id,
                history_length=info.history_length,
                history_bytes=info.history_size_bytes,
            )
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, interval - elapsed_since(tick)))


async def watch_loop(observed: Observed, stop: asyncio.Event) -> None:
    """Track how late this process's event loop runs, which would inflate the latencies."""
    while not stop.is_set():
        tick = time.perf_counter()
        await asyncio.sleep(0.05)
        observed.loop_lag = max(observed.loop_lag, elapsed_since(tick) - 0.05)


async def responder_update(
    stack: Stack, incident_id: str, midway: asyncio.Event, tail: OutboxTail
) -> UpdateTiming:
    """Halfway through the storm, post a stakeholder update and find it in the outbox."""
    await midway.wait()
    text = f"benchmark responder update {uuid.uuid4().hex[:8]}"
    tail.skip_existing()
    incidents = Incidents(stack.client, timeout=30)
    started = time.perf_counter()
    try:
        await incidents.command(
            incident_id,
            IncidentWorkflow.post_update,
            StatusUpdateInput(responder=RESPONDER, text=text, eta="soon"),
        )
    except CliError as error:
        return UpdateTiming(None, None, error.message)
    accepted = elapsed_since(started)
    while elapsed_since(started) < 120:
        for record in tail.read_new():
            if record.get("kind") == "update" and record.get("text") == text:
                return UpdateTiming(accepted, elapsed_since(started))
        await asyncio.sleep(0.01)
    return UpdateTiming(accepted, None, "not in the outbox after 120 s")


def clock_firings(
    entries: list[TimelineEvent],
    seen: dict[int, datetime],
    *,
    view: IncidentView,
    policy: Policy,
) -> list[ClockFiring]:
    """Every clock-driven entry with its due time, derived as the workflow derives it."""
    sev = policy.for_severity(view.severity)
    anchor = view.declared_at
    pages = 0
    last_alert_change: datetime | None = None
    monitor_at: datetime | None = None
    resolved_at: datetime | None = None
    firings: list[ClockFiring] = []

    def fired(kind: str, entry: TimelineEvent, due: datetime | None) -> None:
        if due is not None:
            firings.append(ClockFiring(kind, entry.at, due, seen.get(entry.seq)))

    for entry in sorted(entries, key=lambda e: e.seq):
        kind = entry.kind
        if kind in (EventKind.ACKNOWLEDGED, EventKind.UPDATE_POSTED):
            anchor = entry.at
        elif kind is EventKind.STAKEHOLDER_UPDATE:
            due = anchor + sev.update_interval
            fired("stakeholder update", entry, due)
            anchor = due if entry.at - due < sev.update_interval else entry.at
        elif kind is EventKind.NUDGE:
            fired("nudge", entry, anchor + sev.update_interval - sev.nudge_before)
        elif kind is EventKind.RESOLVE_SLA_BREACHED:
            fired("resolve SLA", entry, view.declared_at + sev.resolve_sla)
        elif kind is EventKind.ESCALATION_PAGE and not entry.text.startswith("paged the fallback"):
            ack_due = view.declared_at + sev.ack_sla
            fired("escalation page", entry, ack_due + clocks.page_offset(pages, policy))
            pages += 1
        elif kind in (EventKind.ALERT_FIRED, EventKind.ALERT_RESOLVED, EventKind.ALERT_FLAPPING):
            last_alert_change = entry.at
        elif kind is EventKind.PHASE_CHANGED and "→ Monitor" in entry.text:
            if "all alerts recovered" in entry.text and last_alert_change is not None:
                fired("alerts settled", entry, last_alert_change + policy.alerts.settle_window)
            monitor_at = entry.at
        elif kind is EventKind.PHASE_CHANGED and "monitor window" in entry.text:
            ends = monitor_at + sev.monitor_window if monitor_at is not None else None
            fired("monitor window end", entry, ends)
        elif kind is EventKind.RESOLVED:
            resolved_at = entry.at
        elif kind is EventKind.POSTMORTEM_REMINDER and resolved_at is not None:
            due = resolved_at + policy.postmortem.deadline - policy.postmortem.reminder_before
            fired("post-mortem reminder", entry, due)
        elif kind is EventKind.POSTMORTEM_OVERDUE and resolved_at is not None:
            fired("post-mortem deadline", entry, resolved_at + policy.postmortem.deadline)
    return firings


async def wait_processed(stack: Stack, incident_id: str, expected: int) -> float:
    """Seconds until the incident has counted ``expected`` alert notifications (or 300 s)."""
    incidents = Incidents(stack.client, timeout=30)
    started = time.perf_counter()
    while elapsed_since(started) < 300:
        with contextlib.suppress(CliError):
            if (await incidents.view(incident_id)).alert_notifications >= expected:
                return elapsed_since(started)
        await asyncio.sleep(0.2)
    return float("nan")


async def wait_after(stack: Stack, incident_id: str, timeout: float) -> None:
    """Until the post-mortem deadline has fired (the last clock), or ``timeout``."""
    incidents = Incidents(stack.client, timeout=30)
    started = time.perf_counter()
    while elapsed_since(started) < timeout:
        with contextlib.suppress(CliError):
            view = await incidents.view(incident_id)
            if view.closed or any(e.kind is EventKind.POSTMORTEM_OVERDUE for e in view.timeline):
                return
        await asyncio.sleep(0.5)


async def main(options: argparse.Namespace) -> bool:
    """Start the stack, run the storm, print the figures; True when every target is met."""
    policy_text = storm_policy(options.max_history_events)
    policy = policy_from_mapping(tomllib.loads(policy_text), source="flap storm policy")
    fingerprint = f"flap-{uuid.uuid4().hex[:12]}"
    started_at = datetime.now(UTC)
    fire = alertmanager_notification(
        [alertmanager_alert(fingerprint, firing=True, started=started_at)]
    )
    resolve = alertmanager_notification(
        [alertmanager_alert(fingerprint, firing=False, started=started_at)]
    )
    async with running_stack(name="flap", policy_toml=policy_text, keep=options.keep) as stack:
        requests = (
            post_request(stack.http_port, ALERTMANAGER, fire),
            post_request(stack.http_port, ALERTMANAGER, resolve),
        )
        incident_id = await open_incident(stack, fingerprint, started_at)
        print(f"incident {incident_id} opened and acknowledged; storm of {options.pairs} pairs")
        observed = Observed()
        storm = Storm()
        stop = asyncio.Event()
        midway = asyncio.Event()
        origin = time.perf_counter()
        sampler = asyncio.create_task(
            sample(
                stack, incident_id, observed, origin=origin, interval=options.interval, stop=stop
            )
        )
        lag = asyncio.create_task(watch_loop(observed, stop))
        update = asyncio.create_task(
            responder_update(stack, incident_id, midway, OutboxTail(stack.outbox))
        )
        pairs = iter(range(options.pairs))
        storm.started = time.perf_counter()
        await asyncio.gather(
            *(
                send_pairs(
                    stack.http_port,
                    pairs,
                    requests,
                    storm,
                    halfway=max(1, options.pairs // 2),
                    midway=midway,
                )
                for _ in range(options.senders)
            )
        )
        last = Sender(stack.http_port)
        try:
            await post(last, requests[1], storm)  # the alert settles: Monitor, then Resolve
        finally:
            last.close()
        storm.seconds = elapsed_since(storm.started)
        storm.ended_at = datetime.now(UTC)
        midway.set()
        print(f"storm sent in {storm.seconds:.1f} s; waiting for the incident and its clocks")
        processed = await wait_processed(stack, incident_id, 2 * options.pairs + 2)
        processed_after = storm.seconds + processed
        await wait_after(stack, incident_id, options.after)
        await asyncio.sleep(2 * options.interval)  # the sampler sees the last entry too
        stop.set()
        await asyncio.gather(sampler, lag)
        timing = await update
        final = await Incidents(stack.client, timeout=30).view(incident_id)
        try:
            final = with_archived_timeline(final, stack.archive_dir)
        except CliError as error:
            print(f"archive: {error.message}")
        for entry in final.timeline:
            observed.entries[entry.seq] = entry
        description = await stack.client.get_workflow_handle(incident_id).describe()
        await asyncio.sleep(1)  # visibility catches up with the last continue-as-new
        runs = await run_histories(stack.client, incident_id)
    firings = clock_firings(
        list(observed.entries.values()), observed.first_seen, view=final, policy=policy
    )
    return _report(
        options,
        incident_id=incident_id,
        storm=storm,
        processed_after=processed_after,
        observed=observed,
        runs=runs,
        firings=firings,
        timing=timing,
        final=final,
        final_running=description.status is WorkflowExecutionStatus.RUNNING,
    )


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.2f} MB"


def _report(
    options: argparse.Namespace,
    *,
    incident_id: str,
    storm: Storm,
    processed_after: float,
    observed: Observed,
    runs: list[RunHistory],
    firings: list[ClockFiring],
    timing: UpdateTiming,
    final: IncidentView,
    final_running: bool,
) -> bool:
    samples = observed.samples
    shows = [s.show_seconds for s in samples if s.show_seconds is not None]
    failed_shows = [s for s in samples if s.show_seconds is None]
    not_running = [s for s in samples if not s.running]
    run_ids = {s.run_id for s in samples} | {run.run_id for run in runs}
    max_bytes = max([s.history_bytes for s in samples] + [r.size_bytes for r in runs])
    max_events = max([s.history_length for s in samples] + [r.events for r in runs])
    during = [f for f in firings if f.at <= storm.ended_at]
    after = [f for f in firings if f.at > storm.ended_at]
    sent = 2 * options.pairs + 2
    print(
        f"\nFlap storm: {options.pairs} fire/resolve pairs of one fingerprint into {incident_id} "
        f"(P0, acknowledged), {options.senders} senders, {os.cpu_count()} CPUs"
        + (
            f", policy max_history_events {options.max_history_events}"
            if options.max_history_events
            else ""
        )
        + "\n"
    )
    print(f"pairs sent            {storm.pairs_done} ({sent} requests with the first and last)")
    print(
        f"requests/s            {storm.ok / storm.seconds:.1f} answered 2xx "
        f"({storm.ok} in {storm.seconds:.1f} s; statuses {dict(storm.statuses)}, "
        f"retries {storm.retries}, never 2xx {storm.failed}, broken connections {storm.broken})"
    )
    print(
        f"incident caught up    {processed_after:.1f} s after the storm began "
        f"({final.alert_notifications} alert notifications counted)"
    )
    print(
        f"show latency          {len(samples)} samples every {options.interval:g} s: "
        f"p50 {percentile(shows, 0.5) * 1000:.0f} ms, p95 {percentile(shows, 0.95) * 1000:.0f} ms, "
        f"max {max(shows, default=float('nan')) * 1000:.0f} ms; "
        f"{sum(1 for show in shows if show > SHOW_TARGET)} over {SHOW_TARGET:g} s; "
        f"failed {len(failed_shows)}" + (f" ({failed_shows[0].error})" if failed_shows else "")
    )
    slowest = sorted(
        (s for s in samples if s.show_seconds is not None),
        key=lambda s: s.show_seconds or 0.0,
        reverse=True,
    )[:5]
    runs_seen = [s.run_id for s in samples]
    for slow in slowest:
        index = samples.index(slow)
        near = set(runs_seen[max(0, index - 2) : index + 3])
        print(
            f"  slow show at {slow.at:6.1f} s: {slow.show_seconds or 0.0:.3f} s "
            f"(describe after it {slow.describe_seconds:.3f} s)"
            + (" — a continue-as-new within a second" if len(near) > 1 else "")
        )
    print(f"  this process's event loop was at most {observed.loop_lag * 1000:.0f} ms late")
    print(
        f"history               max {_mb(max_bytes)} ({max_bytes} bytes) and {max_events} events "
        f"in one run; {len(run_ids)} runs ({len(run_ids) - 1} continue-as-new)"
    )
    for run in runs:
        print(f"  {describe_run(run)}")
    print("clock lateness        kind: fired, max lateness (workflow time; first seen by show)")
    for window, group in (("during", during), ("after", after)):
        kinds = sorted({f.kind for f in group})
        for kind in kinds:
            of_kind = [f for f in group if f.kind == kind]
            worst = max(of_kind, key=lambda f: f.lateness)
            seen = max(
                ((f.seen - f.due).total_seconds() for f in of_kind if f.seen), default=float("nan")
            )
            print(
                f"  {window:6} {kind:22} {len(of_kind):3}  max {worst.lateness:7.3f} s  "
                f"(seen ≤ {seen:.1f} s after due)"
            )
        if not group:
            print(f"  {window:6} (no clock fired)")
    late_during = max((f.lateness for f in during), default=float("nan"))
    late_after = max((f.lateness for f in after), default=float("nan"))
    print(f"  max    during {late_during:.3f} s, after {late_after:.3f} s")
    accepted = f"{timing.accepted:.3f} s" if timing.accepted is not None else "—"
    outbox = f"{timing.in_outbox:.3f} s" if timing.in_outbox is not None else "—"
    print(
        f"update → outbox       accepted in {accepted}, in the outbox after {outbox}"
        + (f" ({timing.error})" if timing.error else "")
    )
    print(
        f"final                 phase {final.phase.value}, "
        f"{'Running' if final_running else 'NOT running'}"
        f"{' (waiting for the post-mortem)' if final_running and not final.closed else ''}"
    )
    show_ok = not failed_shows and not not_running and bool(shows) and max(shows) <= SHOW_TARGET
    clocks_ok = (
        bool(during) and bool(after) and late_during <= CLOCK_TARGET and late_after <= CLOCK_TARGET
    )
    outbox_ok = timing.in_outbox is not None and timing.in_outbox <= OUTBOX_TARGET
    print("\ntargets")
    print(
        f"  {verdict(show_ok and final_running)}  stays Running and answers show within "
        f"{SHOW_TARGET:g} s throughout (max {max(shows, default=float('nan')):.3f} s, "
        f"{len(failed_shows)} failed, {len(not_running)} samples not Running)"
    )
    print(
        f"  {verdict(max_bytes <= HISTORY_TARGET)}  history never passes 10 MB "
        f"(max {_mb(max_bytes)})"
    )
    print(
        f"  {verdict(clocks_ok)}  clocks fire within {CLOCK_TARGET:g} s of due during "
        f"({late_during:.3f} s, {len(during)} firings) and after ({late_after:.3f} s, "
        f"{len(after)} firings)"
    )
    print(
        f"  {verdict(outbox_ok)}  update reaches the outbox within {OUTBOX_TARGET:g} s ({outbox})"
    )
    return show_ok and final_running and max_bytes <= HISTORY_TARGET and clocks_ok and outbox_ok


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--pairs", type=int, default=10_000, help="fire/resolve pairs")
    parser.add_argument("--senders", type=int, default=4, help="concurrent connections")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between samples")
    parser.add_argument(
        "--after", type=float, default=180, help="seconds to wait for the clocks after the storm"
    )
    parser.add_argument(
        "--max-history-events",
        type=int,
        help="try another policy max_history_events (default: the policy's own)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the stack's directory")
    options = parser.parse_args()
    if min(options.pairs, options.senders) < 1 or options.interval <= 0:
        parser.error("--pairs and --senders must be at least 1, --interval positive")
    return options


if __name__ == "__main__":
    # Exit code 1 when a target is missed; no interpreter finalization (see exit_process).
    exit_process(0 if asyncio.run(main(_options())) else 1)
