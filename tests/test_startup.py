"""Processes refuse to start on bad configuration, with one clear line and no traceback."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from starters.http_app import SHUTDOWN_GRACE_SECONDS

ROOT = Path(__file__).parent.parent
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    ("program", "env", "message"),
    [
        ("incident-worker", {"INCIDENT_POLICY": "/nonexistent.toml"}, "policy file not found"),
        ("incident-worker", {"STATUSPAGE_API_KEY": "k"}, "STATUSPAGE_PAGE_ID is required"),
        ("incident-worker", {"SMTP_HOST": "mail.local"}, "SMTP_FROM is required"),
        ("incident-http", {"INCIDENT_POLICY": "/nonexistent.toml"}, "policy file not found"),
    ],
)
def test_bad_configuration_stops_start_up(
    tmp_path: Path, program: str, env: dict[str, str], message: str
) -> None:
    run = subprocess.run(
        [str(BIN / program)],
        env={"PATH": "/usr/bin:/bin", "INCIDENT_DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_http_service_stops_on_sigterm_while_a_request_hangs(tmp_path: Path) -> None:
    """A sender that never finishes its body cannot hold the service past its grace period."""
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "INCIDENT_DATA_DIR": str(tmp_path),
        "INCIDENT_HTTP_PORT": str(port),
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "TEMPORAL_CONFIG_FILE": str(tmp_path / "none.toml"),
    }
    process = subprocess.Popen(
        [str(BIN / "incident-http")],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                slow = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        with slow:
            slow.sendall(
                b"POST /webhooks/generic HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
            )
            time.sleep(0.5)  # the request is being handled, its body still arriving
            process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            out, _ = process.communicate(timeout=30)
            took = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert took < SHUTDOWN_GRACE_SECONDS + 3, (took, out)
    assert process.returncode in (0, -signal.SIGTERM), out  # uvicorn re-raises the signal
    assert "timeout graceful shutdown exceeded" in out
