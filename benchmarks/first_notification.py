"""Issue 11 §3: alert to first notification at a steady rate (default 20 alerts/s).

Same stack as ``benchmarks/new_incidents.py`` (embedded dev server in WAL mode,
one worker with the outbox as its only channel, one HTTP service). The load is
open-loop: alert ``i`` is posted at ``start + i / rate`` whatever the earlier
ones are doing, each with a fresh ``dedup_key`` so each opens an incident, and
its latency runs from that moment until its incident's DECLARED line is in the
outbox (read every 10 ms). Targets: p50 ≤ 150 ms, p99 ≤ 500 ms.

    .venv/bin/python -m benchmarks.first_notification --rate 20 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from benchmarks._cluster import running_cluster
from benchmarks._stack import OutboxTail, Sender, percentile, verdict
from benchmarks.new_incidents import POLICY, Level, request, watch_outbox

P50_TARGET = 0.150
P99_TARGET = 0.500


async def main(options: argparse.Namespace) -> bool:
    """Post at the rate, wait for every DECLARED line, print the latencies."""
    async with running_cluster(
        name="firstnote", policy_toml=POLICY, workers=1, https=1, slack=False, keep=options.keep
    ) as cluster:
        port = cluster.http_ports[0]
        print(
            f"dev server on {cluster.data_dir}/temporal.db (WAL), 1 worker (outbox only), "
            f"1 HTTP service; {options.rate:g} alerts/s for {options.seconds:g} s, each a new "
            f"incident; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        level = Level(concurrency=0)
        tail = OutboxTail(cluster.outbox)
        tail.skip_existing()
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch_outbox(tail, level, stop))
        idle: asyncio.Queue[Sender] = asyncio.Queue()
        for _ in range(64):
            idle.put_nowait(Sender(port))
        late: list[float] = []

        async def post(index: int, at: float) -> None:
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            late.append(time.monotonic() - at)
            sender = await idle.get()
            try:
                for _ in range(5):
                    try:
                        response = await sender.send(request(port, f"fn-{index}"))
                    except (OSError, asyncio.IncompleteReadError):
                        continue
                    if response.status == 200:
                        incident = response.json()["incidents"][0]["incident_id"]
                        level.sent[incident] = at
                        level.answered[incident] = time.monotonic()
                        return
                    await asyncio.sleep(min(response.retry_after or 1.0, 2.0))
                level.failed += 1
            finally:
                idle.put_nowait(sender)

        count = int(options.rate * options.seconds)
        level.first = time.monotonic() + 0.5
        await asyncio.gather(*(post(i, level.first + i / options.rate) for i in range(count)))
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not set(level.answered) <= set(level.declared):
            await asyncio.sleep(0.1)
        stop.set()
        await watcher
        while not idle.empty():
            idle.get_nowait().close()
    latency = [level.declared[i] - level.sent[i] for i in level.answered if i in level.declared]
    answer = [level.answered[i] - level.sent[i] for i in level.answered]
    p50, p99 = percentile(latency, 0.5), percentile(latency, 0.99)
    span = max(level.declared.values(), default=level.first) - level.first
    print(
        f"  {len(level.answered)}/{count} answered 2xx ({level.failed} failed), "
        f"{len(latency)} DECLARED in the outbox ({len(latency) / span if span else 0:.1f}/s "
        f"over {span:.1f} s); generator at most {max(late, default=0) * 1000:.0f} ms behind "
        "schedule"
    )
    print(
        f"  alert → 2xx:      p50 {percentile(answer, 0.5) * 1000:6.0f} ms, "
        f"p99 {percentile(answer, 0.99) * 1000:6.0f} ms"
    )
    print(f"  alert → DECLARED: p50 {p50 * 1000:6.0f} ms, p99 {p99 * 1000:6.0f} ms")
    ok = len(latency) == count and p50 <= P50_TARGET and p99 <= P99_TARGET
    print(f"{verdict(ok)}  p50 ≤ {P50_TARGET * 1000:.0f} ms and p99 ≤ {P99_TARGET * 1000:.0f} ms")
    return ok


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=20.0, help="alerts per second (20)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long (30)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(0 if asyncio.run(main(_options())) else 1)
