"""``make run`` end to end: the embedded dev server, worker and HTTP service come up,
serve an incident, stop on Ctrl-C (within 10 s, even with work stuck in flight), the
incident survives a restart, and a killed stack never leaves its dev server behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
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
        self.data_dir = data_dir
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

    def stop(self, timeout: float = 60) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        out, _ = self.process.communicate(timeout=timeout)
        self.output += out
        return self.process.returncode

    def leftovers(self) -> list[int]:
        """Processes still running from this stack's data directory (its dev server)."""
        found = []
        for entry in Path("/proc").iterdir():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if entry.name.isdigit() and str(self.data_dir).encode() in command:
                found.append(int(entry.name))
        return found

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
    for pid in running.leftovers():  # never leave a dev server behind, even when a test fails
        os.kill(pid, signal.SIGKILL)


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


def test_a_killed_stack_takes_its_dev_server_with_it(stack: Stack) -> None:
    stack.start()
    assert listening(stack.grpc) and listening(stack.ui) and stack.leftovers()
    assert stack.process is not None
    stack.process.kill()  # SIGKILL: no clean-up code runs in the stack
    stack.process.wait()

    def gone() -> bool:  # an exiting process drops its command line before its sockets
        return not stack.leftovers() and not listening(stack.grpc) and not listening(stack.ui)

    wait_for(gone, "the dev server to die with the stack and free its ports", timeout=5)


class Tarpit:
    """A mail server that accepts connections and never says a word."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self.connected = threading.Event()
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.held.append(connection)
            self.connected.set()

    def close(self) -> None:
        for connection in [*self.held, self.server]:
            connection.close()


def test_ctrl_c_stops_within_10_seconds_while_work_is_stuck(stack: Stack, tmp_path: Path) -> None:
    """A customer e-mail stuck on a silent mail server (60 s timeout) cannot hold Ctrl-C."""
    tarpit = Tarpit()
    policy = tmp_path / "policy.toml"
    policy.write_text(
        (ROOT / "examples" / "demo-policy.toml").read_text()
        + '\n[comms.email]\nrecipients = ["customers@example.com"]\nmin_downtime = "1s"\n'
    )
    stack.env |= {
        "INCIDENT_POLICY": str(policy),
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(tarpit.port),
        "SMTP_STARTTLS": "false",
        "SMTP_FROM": "status@example.com",
        "SMTP_TIMEOUT": "60",
    }
    try:
        stack.start()
        declared = stack.cli("declare", "Checkout is down", "--severity", "P1")
        assert declared.returncode == 0, declared.stderr
        incident = declared.stdout.strip()
        assert stack.cli("ack", incident).returncode == 0
        time.sleep(1.5)  # more downtime than min_downtime: the customer e-mail is due
        assert stack.cli("resolve", incident).returncode == 0
        assert tarpit.connected.wait(15), "the customer e-mail went to the mail server"

        started = time.monotonic()
        code = stack.stop(timeout=30)
        took = time.monotonic() - started
    finally:
        tarpit.close()
    assert took < 10, (took, stack.output[-3000:])
    assert code in (0, 1), stack.output[-3000:]
    wait_for(
        lambda: not stack.leftovers() and not listening(stack.grpc) and not listening(stack.http),
        "the dev server to be gone and the ports free",
        timeout=5,
    )


HUNG_STACK = """
import asyncio, time
from workers.stack import _Shutdown

async def main():
    shutdown = _Shutdown(asyncio.get_running_loop(), asyncio.Event())
    shutdown.install()
    shutdown.child = await asyncio.create_subprocess_exec("sleep", "60")
    print(shutdown.child.pid, flush=True)
    time.sleep(60)  # a hung event loop: nothing asynchronous runs any more

asyncio.run(main())
"""


def test_a_second_ctrl_c_ends_a_hung_stack_at_once() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", HUNG_STACK], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    child = int(process.stdout.readline())
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    time.sleep(0.3)
    assert process.poll() is None  # the first one asks politely and arms the watchdog
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=5) == 1 and time.monotonic() - started < 3
    wait_for(lambda: not Path(f"/proc/{child}").exists(), "the dev server stand-in to die", 5)
