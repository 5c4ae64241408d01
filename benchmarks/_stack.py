"""The real stack a storm benchmark runs against, and a cheap HTTP load generator.

:func:`running_stack` starts, on free loopback ports and in a temporary
directory: a private Temporal dev server (:func:`workers.devserver.local_environment`),
the incident worker (``python -m workers.main``, which builds it with
:func:`workers.wiring.build_worker`; its only channel is the outbox, a JSONL file
in the temporary directory) and the HTTP service under uvicorn
(``starters.http_app:create_app``). The worker and the HTTP service are
processes of their own, as in production; the kernel kills them if the
benchmark dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType, TaskQueueType, WorkflowTaskFailedCause
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from workers.devserver import die_with_parent, local_environment

TOKEN = "benchmark-token"
"""Bearer token of the benchmark's HTTP service."""
ALERTMANAGER = "/webhooks/alertmanager"
_SCRUBBED = ("INCIDENT_", "TEMPORAL_", "SLACK_", "STATUSPAGE_", "SMTP_")


@dataclass(frozen=True)
class Stack:
    """Where the running stack is."""

    client: Client
    """Client of the private dev server (the project's data converter)."""
    task_queue: str
    """Task queue of the worker, the HTTP service and the alert intake."""
    http_port: int
    """Port of the HTTP service on 127.0.0.1."""
    data_dir: Path
    """``INCIDENT_DATA_DIR`` of the worker: outbox, timeline archive, logs."""

    @property
    def outbox(self) -> Path:
        """The worker's outbox (one JSON line per delivered notification)."""
        return self.data_dir / "outbox.jsonl"

    @property
    def archive_dir(self) -> Path:
        """The worker's timeline archive."""
        return self.data_dir / "timelines"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank); NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def verdict(ok: bool) -> str:
    """PASS or FAIL."""
    return "PASS" if ok else "FAIL"


@contextmanager
def _process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        process = subprocess.Popen(
            args,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(),
        )
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


async def _wait_for_worker(
    client: Client, task_queue: str, worker: subprocess.Popen[bytes]
) -> None:
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    for _ in range(600):
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited with code {worker.returncode}")
        if (await client.workflow_service.describe_task_queue(request)).pollers:
            return
        await asyncio.sleep(0.1)
    raise SystemExit("the worker did not poll its task queue within 60 s")


async def _wait_for_http(port: int, http: subprocess.Popen[bytes]) -> None:
    request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    for _ in range(600):
        if http.poll() is not None:
            raise SystemExit(f"the HTTP service exited with code {http.returncode}")
        try:
            connection = await Connection.open(port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        try:
            if (await connection.send(request)).status == 200:
                return
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            connection.close()
        await asyncio.sleep(0.1)
    raise SystemExit("the HTTP service did not become healthy within 60 s")


@asynccontextmanager
async def running_stack(
    *, name: str, policy_toml: str | None = None, keep: bool = False
) -> AsyncIterator[Stack]:
    """The whole stack on free ports, stopped (and its directory removed) on exit.

    Args:
        name: prefix of the temporary directory and the task queue.
        policy_toml: the policy (``INCIDENT_POLICY``) of the worker and the HTTP
            service; None runs the defaults.
        keep: leave the temporary directory (logs, outbox, archive) behind.
    """
    data_dir = Path(tempfile.mkdtemp(prefix=f"incident-{name}-"))
    task_queue = f"{name}-{os.urandom(4).hex()}"
    http_port = free_port()
    env = await local_environment()
    try:
        client = env.client
        child_env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED)}
        child_env |= {
            "TEMPORAL_ADDRESS": client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": client.namespace,
            "INCIDENT_TASK_QUEUE": task_queue,
            "INCIDENT_DATA_DIR": str(data_dir),
            "INCIDENT_WEBHOOK_TOKEN": TOKEN,
        }
        if policy_toml is not None:
            policy = data_dir / "policy.toml"
            policy.write_text(policy_toml, encoding="utf-8")
            child_env["INCIDENT_POLICY"] = str(policy)
        uvicorn_args = [
            sys.executable, "-m", "uvicorn", "--factory", "starters.http_app:create_app",
            "--host", "127.0.0.1", "--port", str(http_port),
            "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        worker_args = [sys.executable, "-m", "workers.main"]
        with (
            _process(worker_args, child_env, data_dir / "worker.log") as worker,
            _process(uvicorn_args, child_env, data_dir / "http.log") as http,
        ):
            await _wait_for_worker(client, task_queue, worker)
            await _wait_for_http(http_port, http)
            yield Stack(
                client=client, task_queue=task_queue, http_port=http_port, data_dir=data_dir
            )
    finally:
        await env.shutdown()
        if keep:
            print(f"kept {data_dir} (worker.log, http.log, outbox.jsonl, timelines/)")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


@dataclass(frozen=True)
class Response:
    """An HTTP answer."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)

    @property
    def retry_after(self) -> float | None:
        """``Retry-After`` in seconds, when given."""
        value = self.headers.get("retry-after")
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None


class Connection:
    """One keep-alive HTTP/1.1 connection sending pre-encoded requests.

    The load generator shares two CPUs with everything it measures, so it
    stays cheap: no HTTP library, bodies encoded before the clock starts.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.closing = False
        """The server said it closes the connection after this answer."""

    @classmethod
    async def open(cls, port: int) -> Connection:
        """Connect to 127.0.0.1:``port``."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**22)
        return cls(reader, writer)

    async def send(self, request: bytes) -> Response:
        """Send one request and read its whole answer (Content-Length framed)."""
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        body = await self._reader.readexactly(int(headers.get("content-length", "0")))
        self.closing = headers.get("connection", "").lower() == "close"
        return Response(status, headers, body)

    def close(self) -> None:
        """Close the connection."""
        self._writer.close()


IDLE_REOPEN = 4.0
"""Seconds idle after which a connection is replaced before use: uvicorn closes keep-alive
connections idle for 5 s, and a request written as it does so is lost with the connection
(HTTP clients, Alertmanager's included, reconnect rather than count that as a failure)."""


class Sender:
    """A connection that reopens itself when the server closed it or it sat idle."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._connection: Connection | None = None
        self._used = 0.0
        self.reconnects = 0

    async def send(self, request: bytes) -> Response:
        """Send ``request`` on the current connection, opening a new one if needed.

        Raises:
            OSError, asyncio.IncompleteReadError: the connection broke mid-request
                (the request may or may not have been handled).
        """
        idle = time.perf_counter() - self._used > IDLE_REOPEN
        if self._connection is None or self._connection.closing or idle:
            if self._connection is not None:
                self._connection.close()
                self.reconnects += 1
            self._connection = await Connection.open(self._port)
        try:
            return await self._connection.send(request)
        except (OSError, asyncio.IncompleteReadError):
            self._connection.close()
            self._connection = None
            raise
        finally:
            self._used = time.perf_counter()

    def close(self) -> None:
        """Close the current connection."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def post_request(port: int, path: str, body: dict[str, Any]) -> bytes:
    """An authenticated JSON POST, encoded."""
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


def alertmanager_alert(fingerprint: str, *, firing: bool, started: datetime) -> dict[str, Any]:
    """One alert of an Alertmanager notification."""
    return {
        "status": "firing" if firing else "resolved",
        "labels": {"alertname": "BenchmarkAlert", "instance": fingerprint},
        "annotations": {"summary": f"benchmark alert {fingerprint}"},
        "startsAt": started.isoformat(),
        "endsAt": "0001-01-01T00:00:00Z" if firing else datetime.now(UTC).isoformat(),
        "generatorURL": "http://prometheus.invalid/graph",
        "fingerprint": fingerprint,
    }


def alertmanager_notification(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """An Alertmanager (version 4) webhook body carrying ``alerts``."""
    firing = any(alert["status"] == "firing" for alert in alerts)
    return {
        "version": "4",
        "groupKey": '{}:{alertname="BenchmarkAlert"}',
        "status": "firing" if firing else "resolved",
        "receiver": "incidents",
        "groupLabels": {"alertname": "BenchmarkAlert"},
        "commonLabels": {"alertname": "BenchmarkAlert", "severity": "critical"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.invalid",
        "alerts": alerts,
    }


@dataclass
class OutboxTail:
    """Reads the lines appended to the outbox since the last read."""

    path: Path
    offset: int = 0
    _partial: bytes = field(default=b"", repr=False)

    def skip_existing(self) -> None:
        """Start reading at the current end of the file."""
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def read_new(self) -> list[dict[str, Any]]:
        """The records appended since the last call (a line still being written waits)."""
        if not self.path.exists():
            return []
        with self.path.open("rb") as outbox:
            outbox.seek(self.offset)
            chunk = outbox.read()
        self.offset += len(chunk)
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        return [json.loads(line) for line in lines if line.strip()]


def elapsed_since(start: float) -> float:
    """Seconds on the monotonic clock since ``start``."""
    return time.perf_counter() - start


@dataclass(frozen=True)
class RunHistory:
    """One run of a workflow, read from its history."""

    run_id: str
    status: str
    """RUNNING, CONTINUED_AS_NEW..."""
    events: int
    size_bytes: int
    """History size as the server counts it (``history_size_bytes``)."""
    signals: int
    failed_tasks: Counter[str]
    """Workflow tasks the server failed, by cause (each costs the worker a full replay)."""
    timed_out_tasks: int
    longest_task: float
    """Seconds of the longest workflow task, started to completed/failed/timed out."""
    longest_stall: float
    """Longest time in seconds from a workflow task being scheduled to one completing
    (meanwhile the workflow makes no progress: no clock fires, no signal is handled)."""


_TASK_ENDS = (
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
)


async def run_histories(client: Client, workflow_id: str) -> list[RunHistory]:
    """Every run of ``workflow_id``, oldest first, from visibility and each run's history."""
    executions = [e async for e in client.list_workflows(f'WorkflowId = "{workflow_id}"')]
    runs: list[RunHistory] = []
    for execution in sorted(executions, key=lambda e: e.start_time):
        handle = client.get_workflow_handle(workflow_id, run_id=execution.run_id)
        description = await handle.describe()
        events = signals = timed_out = 0
        failed: Counter[str] = Counter()
        started: datetime | None = None
        waiting: datetime | None = None
        longest = stall = 0.0
        async for event in handle.fetch_history_events():
            events += 1
            kind = event.event_type
            if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED and waiting is None:
                waiting = event.event_time.ToDatetime()
            elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and waiting is not None:
                stall = max(stall, (event.event_time.ToDatetime() - waiting).total_seconds())
                waiting = None
            if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                signals += 1
            elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                started = event.event_time.ToDatetime()
            if kind in _TASK_ENDS and started is not None:
                longest = max(longest, (event.event_time.ToDatetime() - started).total_seconds())
            if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                cause = event.workflow_task_failed_event_attributes.cause
                failed[WorkflowTaskFailedCause.Name(cause).removeprefix(_CAUSE_PREFIX)] += 1
            elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                timed_out += 1
        runs.append(
            RunHistory(
                run_id=execution.run_id,
                status=description.status.name if description.status else "?",
                events=events,
                size_bytes=description.raw_info.history_size_bytes,
                signals=signals,
                failed_tasks=failed,
                timed_out_tasks=timed_out,
                longest_task=longest,
                longest_stall=stall,
            )
        )
    return runs


_CAUSE_PREFIX = "WORKFLOW_TASK_FAILED_CAUSE_"


def describe_run(run: RunHistory) -> str:
    """One line about a run."""
    failures = ", ".join(f"{cause} ×{n}" for cause, n in run.failed_tasks.items())
    return (
        f"run {run.run_id[:8]} {run.status:16} {run.events:6} events "
        f"{run.size_bytes / 1024 / 1024:5.2f} MB {run.signals:6} signals; "
        f"longest task {run.longest_task:5.2f} s, stalled {run.longest_stall:5.2f} s; "
        f"failed tasks {sum(run.failed_tasks.values())}"
        + (f" ({failures})" if failures else "")
        + (f"; timed-out tasks {run.timed_out_tasks}" if run.timed_out_tasks else "")
    )
