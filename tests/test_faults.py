"""Issue 11 §2, the part cheap enough for the suite: an HTTP replica killed under load.

The whole fault proof (worker, dev server and Slack outages too) is
``benchmarks/faults.py``; this runs its HTTP fault against a dev server, one
worker and two ``incident-http`` processes, and fails on any row it fails.
"""

from __future__ import annotations

from benchmarks._cluster import running_cluster
from benchmarks.faults import Run, fault_policy, http_kill


async def test_alerts_survive_an_http_replica_killed_under_load() -> None:
    run = Run()
    async with running_cluster(
        name="faults-test", policy_toml=fault_policy(), workers=1
    ) as cluster:
        opened = await http_kill(cluster, run, seconds=8.0, rate=6.0)
        assert cluster.https[1].starts == 2  # killed, then started again
    assert opened
    assert len(run.rows) == 2
    failed = [f"{row.claim}: {row.detail}" for row in run.rows if not row.ok]
    assert not failed
