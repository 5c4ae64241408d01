"""The response policy: seed defaults, TOML overrides, errors that name the key."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from domain.durations import format_duration, parse_duration
from domain.models import Severity
from domain.policy import Policy, PolicyError, load_policy, policy_from_mapping

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5m", 300), ("48h", 172800), ("3s", 3), ("1h30m", 5400), ("1w", 604800), ("2d", 172800)],
)
def test_durations_parse_and_round_trip(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_duration(format_duration(parse_duration(text))) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5", "m5", "5 minutes", "0s", "-5m", "5m junk"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_defaults_follow_the_process() -> None:
    policy = Policy()
    sla = {
        s: (policy.for_severity(s).ack_sla, policy.for_severity(s).resolve_sla) for s in Severity
    }
    assert sla == {
        Severity.P0: (timedelta(minutes=5), timedelta(hours=1)),
        Severity.P1: (timedelta(minutes=15), timedelta(hours=4)),
        Severity.P2: (timedelta(hours=1), timedelta(hours=24)),
        Severity.P3: (timedelta(hours=24), timedelta(weeks=1)),
    }
    assert policy.for_severity(Severity.P0).update_interval == timedelta(minutes=15)
    windows = [policy.for_severity(s).monitor_window for s in Severity]
    assert all(timedelta(hours=1) <= w <= timedelta(hours=4) for w in windows)
    assert policy.postmortem.deadline == timedelta(hours=48)
    assert policy.notifications.incidents_channel == "#incidents"


def test_a_partial_override_keeps_the_other_defaults() -> None:
    policy = policy_from_mapping({"severities": {"P1": {"ack_sla": "3s"}}})
    assert policy.for_severity(Severity.P1).ack_sla == timedelta(seconds=3)
    assert policy.for_severity(Severity.P1).resolve_sla == timedelta(hours=4)
    assert policy.for_severity(Severity.P0) == Policy().for_severity(Severity.P0)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"severities": {"P1": {"ack_sla": "soon"}}}, "severities.P1.ack_sla: invalid duration"),
        ({"severities": {"P7": {"ack_sla": "5m"}}}, "severities.P7"),
        ({"escalation": {"repeat": 0}}, "escalation.repeat"),
        ({"escalation": {"levels": []}}, "escalation.levels"),
        ({"postmortem": {"deadline": "1h", "reminder_before": "2h"}}, "postmortem: "),
        ({"notifications": {"channel": "#x"}}, "notifications.channel: unknown key"),
        ({"severities": {"P2": {"nudge_before": "2h"}}}, "nudge_before must be shorter"),
    ],
)
def test_invalid_policy_names_the_key(data: dict[str, object], named: str) -> None:
    with pytest.raises(PolicyError) as error:
        policy_from_mapping(data, source="policy.toml")
    assert named in str(error.value)
    assert "policy.toml" in str(error.value)


def test_missing_or_broken_files_are_clear(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="not found"):
        load_policy(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[severities.P1\nack_sla = 5m")
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(broken)


def test_demo_policy_runs_an_incident_in_under_a_minute() -> None:
    policy = load_policy(EXAMPLES / "demo-policy.toml")
    for severity in (Severity.P0, Severity.P1):
        clocks = policy.for_severity(severity)
        assert clocks.ack_sla + policy.escalation_cycle() < timedelta(seconds=30)
        assert clocks.update_interval <= timedelta(seconds=30)
        assert clocks.monitor_window <= timedelta(seconds=30)
    assert policy.postmortem.deadline <= timedelta(minutes=1)


def test_the_worker_refuses_to_start_on_an_invalid_policy(tmp_path: Path) -> None:
    import subprocess
    import sys

    bad = tmp_path / "bad.toml"
    bad.write_text('[severities.P0]\nack_sla = "fast"\n')
    run = subprocess.run(
        [sys.executable, "-m", "workers.main"],
        env={"INCIDENT_POLICY": str(bad), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parent.parent,
    )
    assert run.returncode == 2
    assert "severities.P0.ack_sla" in run.stderr
    assert "Traceback" not in run.stderr
