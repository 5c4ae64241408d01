"""Webhook throughput against raw SDK signal-with-start, on one dev server.

Run from the repository root::

    python -m benchmarks.webhook_throughput [--alerts 2000] [--keys 50] [--concurrency 32]

Everything runs on loopback and stops by itself: a Temporal dev server on free
ports, the incident worker (``python -m workers.main``) and the HTTP service
(uvicorn, ``starters.http_app:create_app``) as separate processes, and the load
generator in this process. Measured, in one run against one server:

1. **webhook**: ``--alerts`` Alertmanager notifications (one alert each, spread
   over ``--keys`` fingerprints) posted with ``--concurrency`` requests in
   flight; a 2xx means Temporal accepted the update-with-start.
2. **raw SDK**: the same number of alerts as ``signal-with-start`` of
   ``IncidentWorkflow`` (signal ``alert_fired``) on workflow IDs derived from
   the same number of keys, with the same concurrency.
3. **SDK update**: the webhook's own Temporal path (update of the alert group,
   then signal of the incident) called in-process, without HTTP, to show what
   the HTTP layer costs and what the update round trip costs.
4. **latency**: alert → incident visible (its query shows the alert) for
   ``--latency-samples`` fresh alerts, one at a time.

Both throughput phases also wait until every alert is counted in its incident
(the "processed" rate), so the worker's backlog of one phase never slows the next.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from domain.incident import IncidentView
from domain.models import AlertEvent, Declaration, Severity
from domain.routing import AlertSource, RoutingPolicy
from starters.webhooks import TemporalGateway
from starters.webhooks.alertmanager import AlertmanagerPayload
from workers.devserver import local_environment
from workflows.incident import IncidentInput, IncidentWorkflow

TOKEN = "benchmark-token"
_SCRUBBED = ("INCIDENT_", "TEMPORAL_", "SLACK_", "STATUSPAGE_", "SMTP_")


@dataclass
class Phase:
    """Outcome of one throughput phase."""

    name: str
    alerts: int
    accepted_seconds: float
    processed_seconds: float
    latencies: list[float]

    @property
    def accepted_rate(self) -> float:
        return self.alerts / self.accepted_seconds

    @property
    def processed_rate(self) -> float:
        return self.alerts / self.processed_seconds


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def _ms(values: list[float]) -> str:
    p50, p99 = (_percentile(values, q) * 1000 for q in (0.5, 0.99))
    return f"p50 {p50:7.1f} ms   p99 {p99:7.1f} ms"


@contextmanager
def _process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        process = subprocess.Popen(args, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _alertmanager_body(fingerprint: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "version": "4",
        "groupKey": '{}:{alertname="BenchmarkAlert"}',
        "status": "firing",
        "receiver": "incidents",
        "groupLabels": {"alertname": "BenchmarkAlert"},
        "commonLabels": {"alertname": "BenchmarkAlert", "severity": "warning"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.invalid",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "BenchmarkAlert", "instance": fingerprint},
                "annotations": {"summary": f"benchmark alert {fingerprint}"},
                "startsAt": now,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.invalid/graph",
                "fingerprint": fingerprint,
            }
        ],
    }


async def _bounded_gather(
    count: int, concurrency: int, one: Callable[[int], Awaitable[float]]
) -> list[float]:
    gate = asyncio.Semaphore(concurrency)

    async def run(index: int) -> float:
        async with gate:
            return await one(index)

    return await asyncio.gather(*(run(index) for index in range(count)))


async def _counted(client: Client, incidents: set[str]) -> int:
    total = 0
    for incident in incidents:
        handle: WorkflowHandle[IncidentWorkflow, IncidentView] = client.get_workflow_handle_for(
            IncidentWorkflow.run, incident
        )
        view = await handle.query(IncidentWorkflow.view)
        total += sum(alert.count for alert in view.alerts)
    return total


async def _wait_counted(client: Client, incidents: set[str], expected: int) -> None:
    deadline = time.monotonic() + 300
    while await _counted(client, incidents) < expected:
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {expected} alerts to be counted")
        await asyncio.sleep(0.2)


class _Connection:
    """One keep-alive HTTP/1.1 connection sending pre-encoded requests.

    The load generator shares two CPUs with everything it measures, so it
    stays as cheap as the raw SDK's client: no HTTP library, bodies encoded
    before the clock starts.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def open(cls, port: int) -> _Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def post(self, request: bytes) -> tuple[int, bytes]:
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        return status, await self._reader.readexactly(length)

    def close(self) -> None:
        self._writer.close()


def _request(port: int, path: str, body: dict[str, Any]) -> bytes:
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def webhook_phase(
    port: int, client: Client, *, alerts: int, keys: int, concurrency: int
) -> Phase:
    """Alertmanager notifications through the HTTP service, over keep-alive connections."""
    run = uuid.uuid4().hex[:8]
    requests = [
        _request(port, "/webhooks/alertmanager", _alertmanager_body(f"{run}-{i % keys}"))
        for i in range(alerts)
    ]
    connections = [await _Connection.open(port) for _ in range(min(concurrency, alerts))]
    incidents: set[str] = set()
    latencies: list[float] = []
    pending = iter(requests)

    async def sender(connection: _Connection) -> None:
        for request in pending:
            started = time.perf_counter()
            status, body = await connection.post(request)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                raise SystemExit(f"webhook answered {status}: {body.decode()}")
            incidents.add(json.loads(body)["incidents"][0]["incident_id"])

    started = time.perf_counter()
    try:
        await asyncio.gather(*(sender(connection) for connection in connections))
    finally:
        for connection in connections:
            connection.close()
    accepted = time.perf_counter() - started
    await _wait_counted(client, incidents, alerts)
    return Phase("webhook", alerts, accepted, time.perf_counter() - started, latencies)


async def sdk_update_phase(
    client: Client, task_queue: str, *, alerts: int, keys: int, concurrency: int
) -> Phase:
    """The webhook's Temporal path (group update, then incident signal) without HTTP."""
    run = uuid.uuid4().hex[:8]
    gateway = TemporalGateway(client=client, task_queue=task_queue, timeout=60)
    routing = RoutingPolicy()
    received = datetime.now(UTC)
    incidents: set[str] = set()

    async def deliver(index: int) -> float:
        body = AlertmanagerPayload.model_validate(_alertmanager_body(f"{run}-{index % keys}"))
        [alert] = body.incoming(AlertSource.ALERTMANAGER, "fingerprint")
        started = time.perf_counter()
        result = await gateway.deliver(
            alert.delivery(routing, received_at=received),
            dedup_key=alert.dedup_key,
            repeat_window=routing.repeat_window,
        )
        assert result.incident_id is not None
        incidents.add(result.incident_id)
        return time.perf_counter() - started

    started = time.perf_counter()
    latencies = await _bounded_gather(alerts, concurrency, deliver)
    accepted = time.perf_counter() - started
    await _wait_counted(client, incidents, alerts)
    return Phase("SDK update", alerts, accepted, time.perf_counter() - started, latencies)


async def raw_phase(
    client: Client, task_queue: str, *, alerts: int, keys: int, concurrency: int
) -> Phase:
    """The same alerts as raw SDK signal-with-start of the incident workflow."""
    run = uuid.uuid4().hex[:8]

    async def signal_with_start(index: int) -> float:
        key = f"{run}-{index % keys}"
        declaration = Declaration(
            title=f"benchmark alert {key}", severity=Severity.P2, source="sdk", declared_by="sdk"
        )
        alert = AlertEvent(key=key, source="sdk", summary=declaration.title)
        started = time.perf_counter()
        await client.start_workflow(
            IncidentWorkflow.run,
            IncidentInput(declaration=declaration),
            id=f"raw-{key}",
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal="alert_fired",
            start_signal_args=[alert],
        )
        return time.perf_counter() - started

    started = time.perf_counter()
    latencies = await _bounded_gather(alerts, concurrency, signal_with_start)
    accepted = time.perf_counter() - started
    await _wait_counted(client, {f"raw-{run}-{k}" for k in range(min(keys, alerts))}, alerts)
    return Phase("raw SDK", alerts, accepted, time.perf_counter() - started, latencies)


async def visibility_latency(http: httpx.AsyncClient, client: Client, samples: int) -> list[float]:
    """Alert posted → the incident's query shows it, one fresh alert at a time."""
    latencies: list[float] = []
    for _ in range(samples):
        started = time.perf_counter()
        response = await http.post(
            "/webhooks/alertmanager", json=_alertmanager_body(uuid.uuid4().hex[:16])
        )
        incident = response.json()["incidents"][0]["incident_id"]
        handle: WorkflowHandle[IncidentWorkflow, IncidentView] = client.get_workflow_handle_for(
            IncidentWorkflow.run, incident
        )
        while not (await handle.query(IncidentWorkflow.view)).alerts:
            await asyncio.sleep(0.002)
        latencies.append(time.perf_counter() - started)
    return latencies


async def _wait_ready(http: httpx.AsyncClient) -> None:
    for _ in range(300):
        try:
            if (await http.get("/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("the HTTP service did not become ready")


async def main(options: argparse.Namespace) -> None:
    """Start everything, measure, print, stop."""
    with tempfile.TemporaryDirectory(prefix="incident-bench-") as tmp:
        workdir = Path(tmp)
        env = await local_environment(
            database=workdir / "temporal.db" if options.persisted else None
        )
        client = env.client
        task_queue = f"bench-{uuid.uuid4().hex[:8]}"
        http_port = _free_port()
        child_env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED)}
        child_env |= {
            "TEMPORAL_ADDRESS": client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": client.namespace,
            "INCIDENT_TASK_QUEUE": task_queue,
            "INCIDENT_DATA_DIR": str(workdir),
            "INCIDENT_WEBHOOK_TOKEN": TOKEN,
        }
        uvicorn_args = [
            sys.executable, "-m", "uvicorn", "--factory", "starters.http_app:create_app",
            "--host", "127.0.0.1", "--port", str(http_port),
            "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        worker_args = [sys.executable, "-m", "workers.main"]
        try:
            with (
                _process(worker_args, child_env, workdir / "worker.log"),
                _process(uvicorn_args, child_env, workdir / "http.log"),
            ):
                limits = httpx.Limits(max_connections=options.concurrency)
                async with httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{http_port}",
                    headers={"Authorization": f"Bearer {TOKEN}"},
                    limits=limits,
                    timeout=60,
                ) as http:
                    await _wait_ready(http)
                    await webhook_phase(http_port, client, alerts=100, keys=10, concurrency=8)
                    await raw_phase(client, task_queue, alerts=100, keys=10, concurrency=8)
                    shape = {
                        "alerts": options.alerts,
                        "keys": options.keys,
                        "concurrency": options.concurrency,
                    }
                    webhook = await webhook_phase(http_port, client, **shape)
                    raw = await raw_phase(client, task_queue, **shape)
                    sdk_update = await sdk_update_phase(client, task_queue, **shape)
                    visible = await visibility_latency(http, client, options.latency_samples)
        finally:
            await env.shutdown()
    _report(options, [webhook, sdk_update, raw], visible)


def _report(options: argparse.Namespace, phases: list[Phase], visible: list[float]) -> None:
    webhook, sdk_update, raw = phases
    print(
        f"\n{options.alerts} alerts over {options.keys} keys, {options.concurrency} in flight, "
        f"{os.cpu_count()} CPUs, one dev server "
        f"({'on a database file, WAL, as make run' if options.persisted else 'in memory'})\n"
    )
    print(f"{'':10} {'accepted/s':>11} {'processed/s':>12}   time to 2xx / RPC return")
    for phase in phases:
        print(
            f"{phase.name:10} {phase.accepted_rate:11.1f} {phase.processed_rate:12.1f}   "
            f"{_ms(phase.latencies)}"
        )
    print(
        f"\nwebhook / raw SDK: accepted {webhook.accepted_rate / raw.accepted_rate:.0%}, "
        f"processed {webhook.processed_rate / raw.processed_rate:.0%}"
    )
    print(
        f"same update path without HTTP / raw SDK: accepted "
        f"{sdk_update.accepted_rate / raw.accepted_rate:.0%}"
    )
    print(f"alert → incident visible ({len(visible)} new incidents, one at a time): {_ms(visible)}")


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--alerts", type=int, default=2000, help="alerts per phase")
    parser.add_argument("--keys", type=int, default=50, help="distinct alert keys per phase")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--latency-samples", type=int, default=100, help="fresh alerts timed")
    parser.add_argument(
        "--persisted",
        action="store_true",
        help="the dev server on a database file in WAL mode, as make run runs it",
    )
    options = parser.parse_args()
    if min(options.alerts, options.keys, options.concurrency, options.latency_samples) < 1:
        parser.error("every count must be at least 1")
    return options


if __name__ == "__main__":
    asyncio.run(main(_options()))
