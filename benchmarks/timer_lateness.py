"""Issue 11 §3: timer lateness with many open incidents on the dev server.

Opens ``--incidents`` P3 incidents through the webhook (16 in flight) on the
embedded dev server (WAL), ``--workers`` ``incident-worker`` processes (outbox
only; 1 by default) and one HTTP service, under a policy whose stakeholder
updates are due every 60 s and whose acknowledge SLA never passes during the
run. It samples the workers' RSS and CPU (summed) as incidents open, keeps them
all open for ``--observe`` seconds, then reads every incident's timeline
(``view`` query) and prints the lateness of each stakeholder update (fire time
minus due time, as ``benchmarks/_clocks.py`` derives it): p50, p99, max.
Targets (issue 11): p99 ≤ 2 s; worker memory bounded by the sticky cache, not by
the number of open incidents.

    .venv/bin/python -m benchmarks.timer_lateness --incidents 1000 --observe 180 [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import _clocks
from benchmarks._cluster import Cluster, running_cluster
from benchmarks._stack import Sender, percentile, verdict
from benchmarks.new_incidents import cpu_seconds, request
from domain.incident import IncidentView
from domain.policy import policy_from_mapping
from starters.cli.session import CliError, Incidents

P99_TARGET = 2.0
POLICY = """
[severities.P3]
ack_sla = "1w"
resolve_sla = "4w"
update_interval = "60s"
nudge_before = "15s"

[alerts]
max_new_incidents_per_minute = 10000
"""


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def workers_rss(pids: list[int]) -> float:
    """Resident memory of the worker processes together, MB."""
    return sum(rss_mb(pid) for pid in pids)


def workers_cpu(pids: list[int]) -> float:
    """CPU seconds the worker processes have used together."""
    return sum(cpu_seconds(pid) for pid in pids)


async def open_all(cluster: Cluster, count: int, samples: list[str]) -> list[str]:
    """Open ``count`` incidents (16 in flight), noting the worker's RSS and CPU every 10 %."""
    port = cluster.http_ports[0]
    pids = [w.popen.pid for w in cluster.workers if w.popen is not None]
    keys = iter(range(count))
    opened: list[str] = []
    started = time.monotonic()
    marks = {count * n // 10 for n in range(1, 11)}

    async def sender() -> None:
        connection = Sender(port)
        try:
            for n in keys:
                for _ in range(10):
                    try:
                        response = await connection.send(request(port, f"t-{n}"))
                    except (OSError, asyncio.IncompleteReadError):
                        continue
                    if response.status == 200:
                        opened.append(response.json()["incidents"][0]["incident_id"])
                        break
                    await asyncio.sleep(min(response.retry_after or 1.0, 2.0))
                if len(opened) in marks:
                    marks.discard(len(opened))
                    samples.append(
                        f"{len(opened):6} open: worker RSS {workers_rss(pids):6.0f} MB, "
                        f"CPU {workers_cpu(pids):6.1f} s, "
                        f"{time.monotonic() - started:5.0f} s"
                    )
                    print(f"    {samples[-1]}", flush=True)
        finally:
            connection.close()

    await asyncio.gather(*(sender() for _ in range(16)))
    return opened


async def main(options: argparse.Namespace) -> bool:
    """Open, keep open, read every timeline; True when the targets are met."""
    policy = policy_from_mapping(tomllib.loads(POLICY), source="timer lateness policy")
    cache = options.max_cached_workflows
    tuning = {"INCIDENT_WORKER_MAX_CACHED_WORKFLOWS": str(cache)} if cache is not None else {}
    async with running_cluster(
        name="timers",
        policy_toml=POLICY,
        workers=options.workers,
        https=1,
        slack=False,
        worker_env=tuning,
        keep=options.keep,
    ) as cluster:
        pids = [w.popen.pid for w in cluster.workers if w.popen is not None]
        print(
            f"{options.incidents} P3 incidents, updates every 60 s, {options.workers} "
            f"worker(s) (outbox only, "
            f"sticky cache {cache if cache is not None else '10,000 (default)'}; each "
            f"incident and its alert group take a place), dev server in WAL mode; {os.cpu_count()} "
            f"CPUs, load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        samples: list[str] = []
        start = datetime.now(UTC)
        opened = await open_all(cluster, options.incidents, samples)
        all_open = datetime.now(UTC)
        cpu_before = workers_cpu(pids)
        server_before = cpu_seconds(cluster.server.popen.pid) if cluster.server.popen else 0.0
        await asyncio.sleep(options.observe)
        cpu_during = (workers_cpu(pids) - cpu_before) / options.observe
        server_during = (
            cpu_seconds(cluster.server.popen.pid) - server_before if cluster.server.popen else 0.0
        ) / options.observe
        rss_end = workers_rss(pids)
        until = datetime.now(UTC)
        incidents = Incidents(await cluster.connect(), timeout=60)
        read: dict[str, IncidentView | None] = {}
        unread = 0
        for incident_id in opened:
            try:
                read[incident_id] = await incidents.view(incident_id)
            except CliError:
                unread += 1
        found = _clocks.report(
            read,
            policy,
            start=all_open,
            until=until,
            requests={},
        ).kind("update")
    lateness = [(f.at - d.due).total_seconds() for d, f in found.fired]
    p99 = percentile(lateness, 0.99)
    print(
        f"  opened {len(opened)} in {(all_open - start).total_seconds():.0f} s; observed "
        f"{options.observe:g} s with all open: worker RSS {rss_end:.0f} MB, CPU "
        f"{cpu_during:.2f} cores (dev server {server_during:.2f} cores)"
    )
    print(
        f"  stakeholder updates due while all were open: {len(found.dues)}, fired "
        f"{len(found.fired)}, missing {len(found.missing)}, twice {len(found.doubled)}; "
        f"{unread} incidents unreadable"
    )
    print(
        f"  lateness p50 {percentile(lateness, 0.5):.2f} s, p99 {p99:.2f} s, "
        f"max {max(lateness, default=float('nan')):.2f} s"
    )
    ok = bool(lateness) and p99 <= P99_TARGET and not found.missing
    print(f"{verdict(ok)}  p99 lateness ≤ {P99_TARGET:g} s, none missing")
    return ok


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--incidents", type=int, default=1000, help="open incidents (1000)")
    parser.add_argument("--observe", type=float, default=180.0, help="seconds all open (180)")
    parser.add_argument(
        "--max-cached-workflows", type=int, help="the worker's sticky cache (default 10,000)"
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes (1)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(0 if asyncio.run(main(_options())) else 1)
