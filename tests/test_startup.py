"""Processes refuse to start on bad configuration, with one clear line and no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
