"""Replicas on one machine: a dev server on its database file, workers, HTTP services, Slack.

:class:`Cluster` is what the fault proofs (``benchmarks/faults.py``) break. Every
part is a process of its own that can be ``kill -9``'d and started again on
the same ports and files: a Temporal dev server (SQLite in WAL mode, as
``make run`` runs it, without its Web UI), ``incident-worker`` replicas and
``incident-http`` replicas, all on free loopback ports and a temporary
directory. Slack is the fake Web API server of ``tests/fakes/slack.py``, served
on loopback by this process, so it can count what was posted and fail on demand.
The kernel kills every child if this process dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from benchmarks._stack import TOKEN, Connection, free_port
from tests.fakes.slack import FakeSlack
from workers.devserver import DevServerConfig, dev_server_command, die_with_parent, port_in_use

BIN = Path(sys.executable).parent
_SCRUBBED = ("INCIDENT_", "TEMPORAL_", "SLACK_", "STATUSPAGE_", "SMTP_", "JIRA_")


@dataclass
class Process:
    """One child process that can be started, killed with SIGKILL and started again."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        """Start it (again), appending to its log."""
        with self.log.open("ab") as output:
            self.popen = subprocess.Popen(
                self.args,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                preexec_fn=die_with_parent(),
            )
        self.starts += 1

    @property
    def alive(self) -> bool:
        """Whether it runs."""
        return self.popen is not None and self.popen.poll() is None

    def kill9(self) -> None:
        """``kill -9``, and reap it."""
        if self.popen is not None and self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill9()


@dataclass
class Cluster:
    """Where everything runs; see the module docstring."""

    data_dir: Path
    task_queue: str
    server: Process
    workers: list[Process]
    https: list[Process]
    http_ports: list[int]
    slack: FakeSlack
    address: str
    policy_path: Path
    client: Client | None = None
    cli_env: dict[str, str] = field(default_factory=dict)

    @property
    def outbox(self) -> Path:
        """The outbox every worker replica appends to."""
        return self.data_dir / "outbox.jsonl"

    async def connect(self) -> Client:
        """The cluster's client (the SDK reconnects by itself after a server restart)."""
        for attempt in range(100):
            if self.client is not None:
                break
            try:
                self.client = await Client.connect(
                    self.address, namespace="default", data_converter=pydantic_data_converter
                )
            except RuntimeError:  # listening, but "Frontend is not healthy yet"
                if attempt == 99:
                    raise
                await asyncio.sleep(0.1)
        assert self.client is not None
        return self.client

    async def start_server(self) -> None:
        """Start the dev server on its database file; returns once it accepts connections."""
        self.server.start()
        host, port = self.address.split(":")
        for _ in range(600):
            if not self.server.alive:
                raise SystemExit(f"the dev server exited; see {self.server.log}")
            if port_in_use(host, int(port)):
                return
            await asyncio.sleep(0.05)
        raise SystemExit("the dev server did not listen within 30 s")

    async def wait_workers(self, count: int, timeout: float = 60.0) -> None:
        """Until ``count`` worker processes poll the task queue (by their identities)."""
        from temporalio.api.enums.v1 import TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

        client = await self.connect()
        pids = {str(w.popen.pid) for w in self.workers if w.alive and w.popen is not None}
        request = DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=self.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(worker.alive for worker in self.workers):
                raise SystemExit(f"every worker exited; see {self.data_dir}/worker*.log")
            with contextlib.suppress(Exception):
                response = await client.workflow_service.describe_task_queue(request)
                polling = {p.identity.split("@")[0] for p in response.pollers}
                if len(pids & polling) >= count:
                    return
            await asyncio.sleep(0.2)
        raise SystemExit(f"{count} workers did not poll {self.task_queue} within {timeout:g} s")

    async def wait_http(self, index: int, timeout: float = 60.0) -> None:
        """Until HTTP replica ``index`` answers ``/healthz`` 200."""
        port = self.http_ports[index]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.https[index].alive:
                raise SystemExit(f"{self.https[index].name} exited; see {self.https[index].log}")
            if await http_status(port, "GET", "/healthz") == 200:
                return
            await asyncio.sleep(0.2)
        raise SystemExit(f"HTTP replica {index} not healthy within {timeout:g} s")

    async def cli(self, *args: str) -> tuple[int, str]:
        """Run the ``incident`` CLI as a responder would; (exit code, output)."""
        process = await asyncio.create_subprocess_exec(
            str(BIN / "incident"),
            *args,
            env=self.cli_env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        return process.returncode or 0, output.decode(errors="replace").strip()

    def outbox_records(self) -> list[dict[str, Any]]:
        """Every notification the workers wrote to the outbox, in write order."""
        if not self.outbox.exists():
            return []
        lines = self.outbox.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]


async def http_status(port: int, method: str, path: str, body: bytes = b"") -> int | None:
    """The status of one request to 127.0.0.1:``port``; None when the connection failed."""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    try:
        connection = await Connection.open(port)
    except OSError:
        return None
    try:
        return (await asyncio.wait_for(connection.send(head.encode() + body), 30)).status
    except (OSError, asyncio.IncompleteReadError, TimeoutError):
        return None
    finally:
        connection.close()


@asynccontextmanager
async def running_cluster(
    *,
    name: str,
    policy_toml: str,
    workers: int = 2,
    https: int = 2,
    slack: bool = True,
    worker_env: dict[str, str] | None = None,
    keep: bool = False,
) -> AsyncIterator[Cluster]:
    """The cluster on free ports, every process stopped (and the directory removed) on exit.

    Args:
        slack: whether the workers deliver to the fake Slack; without it their only
            channel is the outbox, as ``make run`` without credentials.
        worker_env: more environment for the workers (``INCIDENT_WORKER_*`` tuning).
    """
    data_dir = Path(tempfile.mkdtemp(prefix=f"incident-{name}-"))
    policy_path = data_dir / "policy.toml"
    policy_path.write_text(policy_toml, encoding="utf-8")
    fake = FakeSlack()
    await fake.start()
    fake.add_channel("incidents", channel_id="CINCIDENTS")
    config = DevServerConfig(
        db_file=data_dir / "temporal.db", port=free_port(), ui_port=free_port()
    )
    server_args = [*dev_server_command(config), "--headless"]
    base = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED)}
    task_queue = f"{name}-{os.urandom(4).hex()}"
    common = base | {
        "TEMPORAL_ADDRESS": config.address,
        "TEMPORAL_NAMESPACE": "default",
        "INCIDENT_TASK_QUEUE": task_queue,
        "INCIDENT_DATA_DIR": str(data_dir),
        "INCIDENT_POLICY": str(policy_path),
    }
    slack_env = {"SLACK_BOT_TOKEN": fake.token, "SLACK_API_URL": fake.api_url} if slack else {}
    workers_env = common | slack_env | (worker_env or {})
    ports = [free_port() for _ in range(https)]
    cluster = Cluster(
        data_dir=data_dir,
        task_queue=task_queue,
        server=Process("dev server", server_args, base, data_dir / "server.log"),
        workers=[
            Process(
                f"worker {i + 1}",
                [sys.executable, "-m", "workers.main"],
                workers_env,
                data_dir / f"worker{i + 1}.log",
            )
            for i in range(workers)
        ],
        https=[
            Process(
                f"http {i + 1}",
                [str(BIN / "incident-http")],
                common
                | {
                    "INCIDENT_WEBHOOK_TOKEN": TOKEN,
                    "INCIDENT_HTTP_HOST": "127.0.0.1",
                    "INCIDENT_HTTP_PORT": str(port),
                },
                data_dir / f"http{i + 1}.log",
            )
            for i, port in enumerate(ports)
        ],
        http_ports=ports,
        slack=fake,
        address=config.address,
        policy_path=policy_path,
        cli_env=common | {"INCIDENT_USER": "alice"},
    )
    try:
        await cluster.start_server()
        await cluster.connect()
        for process in (*cluster.workers, *cluster.https):
            process.start()
        await cluster.wait_workers(workers)
        for index in range(https):
            await cluster.wait_http(index)
        yield cluster
    finally:
        for process in (*cluster.https, *cluster.workers, cluster.server):
            process.stop()
        await fake.stop()
        if keep:
            print(f"kept {data_dir} (server.log, worker*.log, http*.log, outbox.jsonl)")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
