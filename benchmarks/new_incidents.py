"""Issue 11 §3: new incidents per second on the embedded dev server (SQLite, WAL).

The server runs as ``make run`` runs it (``temporal server start-dev`` on a
database file with ``journal_mode=wal``, ``synchronous=normal``), with one
``incident-worker`` (outbox only, no Slack) and one ``incident-http``
(``benchmarks/_cluster.py``). Each alert carries a fresh ``dedup_key``, so each
opens an incident through the whole path: webhook → alert group
(update-with-start) → the source's alert intake → the incident. The storm cap
is raised out of the way. For each concurrency it prints:

- accepted/s: alerts answered 2xx (the group has started the incident);
- opened/s: incidents whose DECLARED line reached the outbox, first POST to last line;
- the answer's latency, the history events and workflow tasks one new incident
  costs (its own history so far and its alert group's), and the CPU seconds per
  new incident of each process (dev server, worker, HTTP service, this load
  generator), which says where the two cores go.

    .venv/bin/python -m benchmarks.new_incidents --incidents 200 --concurrency 1 --concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.api.enums.v1 import EventType

from benchmarks._cluster import Cluster, running_cluster
from benchmarks._stack import TOKEN, OutboxTail, Sender, percentile, verdict

ROOT = Path(__file__).resolve().parent.parent
TARGET = 20.0
"""New incidents per second the issue asks of the embedded server."""
POLICY = """
[alerts]
max_new_incidents_per_minute = 10000   # measure the path, not the storm cap
"""


def request(port: int, key: str) -> bytes:
    """A generic alert that opens a P3 incident of its own (P3: the slowest clocks)."""
    body = (
        f'{{"title": "new incident benchmark {key}", "severity": "P3", '
        f'"service": "bench", "dedup_key": "{key}"}}'
    ).encode()
    head = (
        f"POST /webhooks/generic HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_by_process(cluster: Cluster) -> dict[str, float]:
    """CPU seconds so far of the server, the worker, the HTTP service and this process."""
    processes = [cluster.server, cluster.workers[0], cluster.https[0]]
    used = {p.name: cpu_seconds(p.popen.pid) for p in processes if p.popen is not None}
    used["load generator"] = cpu_seconds(os.getpid())
    return used


@dataclass
class Level:
    """One concurrency's run."""

    concurrency: int
    sent: dict[str, float] = field(default_factory=dict)
    """Incident ID → when its alert was posted (monotonic)."""
    answered: dict[str, float] = field(default_factory=dict)
    declared: dict[str, float] = field(default_factory=dict)
    failed: int = 0
    first: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds each process used during the level."""


async def post_all(cluster: Cluster, level: Level, keys: list[str]) -> None:
    """Post one alert per key, ``level.concurrency`` in flight."""
    queue = iter(keys)

    async def sender() -> None:
        connection = Sender(cluster.http_ports[0])
        try:
            for key in queue:
                started = time.monotonic()
                for _ in range(10):
                    try:
                        response = await connection.send(request(cluster.http_ports[0], key))
                    except (OSError, asyncio.IncompleteReadError):
                        continue
                    if response.status == 200:
                        incident = response.json()["incidents"][0]["incident_id"]
                        level.sent[incident] = started
                        level.answered[incident] = time.monotonic()
                        break
                    await asyncio.sleep(min(response.retry_after or 1.0, 2.0))
                else:
                    level.failed += 1
        finally:
            connection.close()

    level.first = time.monotonic()
    await asyncio.gather(*(sender() for _ in range(level.concurrency)))


async def watch_outbox(tail: OutboxTail, level: Level, stop: asyncio.Event) -> None:
    """Note when each incident's DECLARED line appears in the outbox."""
    while not stop.is_set():
        for record in tail.read_new():
            if record.get("kind") == "declared":
                level.declared.setdefault(record["incident"]["id"], time.monotonic())
        await asyncio.sleep(0.01)


async def costs(cluster: Cluster, incidents: list[str]) -> tuple[float, float]:
    """History events and workflow tasks per new incident (incident + its alert group)."""
    client = await cluster.connect()
    events = tasks = 0
    for incident_id in incidents:
        handle = client.get_workflow_handle(incident_id)
        group = ""
        async for event in handle.fetch_history_events():
            events += 1
            tasks += event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
                parent = event.workflow_execution_started_event_attributes.parent_workflow_execution
                group = parent.workflow_id
        if group:
            async for event in client.get_workflow_handle(group).fetch_history_events():
                events += 1
                tasks += event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    return events / len(incidents), tasks / len(incidents)


async def run_level(cluster: Cluster, concurrency: int, count: int, prefix: str) -> Level:
    """Open ``count`` incidents at ``concurrency``; returns when every one is in the outbox."""
    level = Level(concurrency)
    tail = OutboxTail(cluster.outbox)
    tail.skip_existing()
    stop = asyncio.Event()
    watcher = asyncio.create_task(watch_outbox(tail, level, stop))
    before = cpu_by_process(cluster)
    await post_all(cluster, level, [f"{prefix}-{n}" for n in range(count)])
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not set(level.answered) <= set(level.declared):
        await asyncio.sleep(0.1)
    after = cpu_by_process(cluster)
    level.cpu = {name: after[name] - before[name] for name in after}
    stop.set()
    await watcher
    return level


def report(level: Level, events: float, tasks: float) -> float:
    """Print one level's figures; returns its opened/s."""
    opened = [level.declared[i] for i in level.answered if i in level.declared]
    answered = list(level.answered.values())
    accepted_rate = len(answered) / (max(answered) - level.first) if answered else 0.0
    opened_rate = len(opened) / (max(opened) - level.first) if opened else 0.0
    latency = [level.answered[i] - level.sent[i] for i in level.answered]
    to_outbox = [level.declared[i] - level.sent[i] for i in level.answered if i in level.declared]
    print(
        f"  {level.concurrency:3} in flight: {len(answered)} accepted ({level.failed} failed), "
        f"{accepted_rate:5.1f}/s; {len(opened)} DECLARED in the outbox, {opened_rate:5.1f}/s; "
        f"answer p50 {percentile(latency, 0.5) * 1000:.0f} ms, p99 "
        f"{percentile(latency, 0.99) * 1000:.0f} ms; to the outbox p50 "
        f"{percentile(to_outbox, 0.5) * 1000:.0f} ms, p99 {percentile(to_outbox, 0.99) * 1000:.0f} "
        f"ms; {events:.0f} history events and {tasks:.1f} workflow tasks per incident "
        "(incident + alert group)",
        flush=True,
    )
    if opened:
        wall = max(opened) - level.first
        shares = ", ".join(
            f"{name} {seconds / len(opened) * 1000:.0f} ms" for name, seconds in level.cpu.items()
        )
        total = sum(level.cpu.values())
        print(
            f"       CPU per new incident: {shares}; all together {total / wall:.2f} of "
            f"{os.cpu_count()} CPUs busy",
            flush=True,
        )
    return opened_rate


async def main(options: argparse.Namespace) -> bool:
    """Every concurrency in turn on one server; True when the best meets the target."""
    best = 0.0
    async with running_cluster(
        name="newinc", policy_toml=POLICY, workers=1, https=1, slack=False, keep=options.keep
    ) as cluster:
        print(
            f"dev server on {cluster.data_dir}/temporal.db (WAL, synchronous=normal), "
            f"1 worker (outbox only), 1 HTTP service; {options.incidents} new incidents per "
            f"concurrency; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        await run_level(cluster, 4, 20, "warmup")
        for n, concurrency in zip(itertools.count(), options.concurrency or [1, 16], strict=False):
            level = await run_level(cluster, concurrency, options.incidents, f"c{n}")
            sample = list(level.answered)[:: max(1, len(level.answered) // 10)][:10]
            events, tasks = await costs(cluster, sample)
            best = max(best, report(level, events, tasks))
    ok = best >= TARGET
    print(f"{verdict(ok)}  ≥ {TARGET:g} new incidents/s on the embedded server: best {best:.1f}/s")
    return ok


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--incidents", type=int, default=100, help="per concurrency (100)")
    parser.add_argument("--concurrency", type=int, action="append", help="repeatable (1, 16)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(0 if asyncio.run(main(_options())) else 1)
