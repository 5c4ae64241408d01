"""Secure by default: open webhook endpoints are never served beyond this machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from domain.settings import Settings
from starters.http_app import bind_refusal, is_loopback
from starters.webhooks import WebhookSettings

ROOT = Path(__file__).parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture(autouse=True)
def _no_webhook_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings here come from the arguments only, not from the shell running the tests."""
    for name in os.environ:
        if name.startswith("INCIDENT_WEBHOOK_") or name == "INCIDENT_HTTP_HOST":
            monkeypatch.delenv(name)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost"])
def test_loopback_addresses(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.0.0.5", "example.com"])
def test_other_addresses(host: str) -> None:
    assert not is_loopback(host)


def test_open_endpoints_on_the_network_are_refused_and_named() -> None:
    settings = Settings(http_host="0.0.0.0")
    refusal = bind_refusal(settings, WebhookSettings())
    assert refusal is not None
    assert "alertmanager, grafana, pagerduty, generic" in refusal
    assert "INCIDENT_WEBHOOK_TOKEN" in refusal and "INCIDENT_WEBHOOK_ALLOW_OPEN=1" in refusal
    # One per-source token leaves the other endpoints open.
    partial = bind_refusal(settings, WebhookSettings(token_pagerduty=SecretStr("pd")))
    assert partial is not None and "alertmanager, grafana, generic)" in partial


def test_a_token_loopback_or_the_opt_in_allow_start() -> None:
    hooks = WebhookSettings()
    assert bind_refusal(Settings(http_host="127.0.0.1"), hooks) is None
    assert bind_refusal(Settings(http_host="0.0.0.0", webhook_token=SecretStr("t")), hooks) is None
    assert bind_refusal(Settings(http_host="0.0.0.0"), WebhookSettings(allow_open=True)) is None


def test_incident_http_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    run = subprocess.run(
        [str(BIN / "incident-http")],
        env={
            "PATH": "/usr/bin:/bin",
            "INCIDENT_DATA_DIR": str(tmp_path),
            "INCIDENT_HTTP_HOST": "0.0.0.0",
            "INCIDENT_HTTP_PORT": "1",  # never bound: the check comes first
        },
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("incident-http: refusing to listen on 0.0.0.0 with open webhook")
    assert "INCIDENT_WEBHOOK_ALLOW_OPEN=1" in lines[0]
