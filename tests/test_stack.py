"""``make run`` end to end: the embedded dev server, worker and HTTP service come up,
serve an incident, stop on Ctrl-C, and the incident survives a restart."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Stack:
    """One ``python -m workers.stack`` process on free ports."""

    def __init__(self, data_dir: Path) -> None:
        self.grpc, self.ui, self.http = free_port(), free_port(), free_port()
        self.env = {
            key: value for key, value in os.environ.items() if not key.startswith("TEMPORAL_")
        } | {
            "INCIDENT_DATA_DIR": str(data_dir),
            "INCIDENT_POLICY": str(ROOT / "examples" / "demo-policy.toml"),
            "INCIDENT_DEV_SERVER_PORT": str(self.grpc),
            "INCIDENT_DEV_UI_PORT": str(self.ui),
            "INCIDENT_HTTP_PORT": str(self.http),
            "INCIDENT_TASK_QUEUE": "stack-test",
        }
        self.process: subprocess.Popen[str] | None = None
        self.output = ""

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workers.stack"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            self.output += line
            if "Ctrl-C stops everything" in line:
                return
            if not line and self.process.poll() is not None:
                break
        raise AssertionError(f"stack did not come up:\n{self.output}")

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        out, _ = self.process.communicate(timeout=60)
        self.output += out
        return self.process.returncode

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = self.env | {"TEMPORAL_ADDRESS": f"127.0.0.1:{self.grpc}", "INCIDENT_USER": "ops"}
        return subprocess.run(
            [str(BIN / "incident"), *args], env=env, capture_output=True, text=True, timeout=60
        )

    def temporal(self, *args: str) -> subprocess.CompletedProcess[str]:
        address = ["--address", f"127.0.0.1:{self.grpc}"]
        return subprocess.run(
            [str(BIN / "temporal"), *args, *address], capture_output=True, text=True, timeout=60
        )


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    running = Stack(tmp_path / "data")
    yield running
    if running.process is not None and running.process.poll() is None:
        running.process.kill()
        running.process.wait()


def wait_for(check: object, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_make_run_stack_serves_incidents_and_survives_a_restart(stack: Stack) -> None:
    stack.start()
    assert f"127.0.0.1:{stack.grpc}" in stack.output
    assert f"http://localhost:{stack.ui}" in stack.output
    assert httpx.get(f"http://127.0.0.1:{stack.ui}/").status_code == 200  # the Web UI
    health = httpx.get(f"http://127.0.0.1:{stack.http}/healthz")
    assert health.status_code == 200

    declared = stack.cli("declare", "Checkout is down", "--severity", "P1", "--json")
    assert declared.returncode == 0, declared.stderr
    incident_id = json.loads(declared.stdout)["incident_id"]
    assert stack.cli("ack", incident_id).returncode == 0
    assert stack.cli("phase", incident_id, "fix").returncode == 0

    def listed_in_fix() -> bool:
        found = stack.temporal("workflow", "list", "--query", "IncidentPhase='Fix'", "-o", "json")
        return incident_id in found.stdout

    wait_for(listed_in_fix, "temporal workflow list to show the incident in Fix")
    assert stack.stop() == 0
    assert not listening(stack.grpc) and not listening(stack.http)

    stack.start()  # same .data directory: the incident is still there, still in Fix
    shown = stack.cli("show", incident_id, "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["phase"] == "Fix"
    outbox = Path(stack.env["INCIDENT_DATA_DIR"]) / "outbox.jsonl"
    kinds = [json.loads(line)["kind"] for line in outbox.read_text().splitlines()]
    assert kinds[:2] == ["declared", "acknowledged"]
    assert stack.stop() == 0
