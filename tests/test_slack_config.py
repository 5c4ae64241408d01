"""Which channels the environment turns on, and start-up checks of their configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
from jinja2.exceptions import SecurityError

from activities.templates import TemplateConfigError, standard_templates
from domain.comms import SlackSettings
from domain.policy import Policy
from domain.settings import Settings
from workers.wiring import default_channels

COMMS_VARIABLES = (
    "SLACK_BOT_TOKEN",
    "SLACK_API_URL",
    "STATUSPAGE_API_KEY",
    "STATUSPAGE_PAGE_ID",
    "STATUSPAGE_API_URL",
    "SMTP_HOST",
    "SMTP_FROM",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in COMMS_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def names(settings: Settings) -> list[str]:
    return [channel.name for channel in default_channels(settings, Policy())]


def test_without_credentials_only_the_outbox_runs(tmp_path: Path) -> None:
    assert names(Settings(data_dir=tmp_path)) == ["outbox"]


def test_configured_services_join_the_outbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("STATUSPAGE_API_KEY", "key")
    monkeypatch.setenv("STATUSPAGE_PAGE_ID", "page")
    monkeypatch.setenv("SMTP_HOST", "smtp.example.com")
    monkeypatch.setenv("SMTP_FROM", "status@example.com")
    assert names(Settings(data_dir=tmp_path)) == ["outbox", "statuspage", "email", "slack"]


def test_slack_api_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9/api")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    settings = SlackSettings()
    assert settings.api_url == "http://127.0.0.1:9/api/"
    assert "xoxb-1" not in repr(settings)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"STATUSPAGE_API_KEY": "key"}, "STATUSPAGE_PAGE_ID is required"),
        ({"SMTP_HOST": "smtp.example.com"}, "SMTP_FROM is required"),
    ],
)
def test_half_configured_services_fail_at_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], message: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        names(Settings(data_dir=tmp_path))


def test_a_broken_slack_template_fails_at_start_up(tmp_path: Path) -> None:
    (tmp_path / "slack").mkdir()
    (tmp_path / "slack" / "update.mrkdwn.j2").write_text("{% if %}")
    with pytest.raises(TemplateConfigError, match="slack/update.mrkdwn.j2"):
        names(Settings(data_dir=tmp_path, templates=tmp_path))


def test_overridden_templates_are_used_and_sandboxed(tmp_path: Path) -> None:
    (tmp_path / "statuspage").mkdir()
    (tmp_path / "statuspage" / "resolved.txt.j2").write_text("All good again: {{ text }}")
    (tmp_path / "statuspage" / "update.txt.j2").write_text("{{ text.__class__.__mro__ }}")
    templates = standard_templates(tmp_path)
    assert templates.render_named("statuspage", "resolved", text="API") == "All good again: API"
    assert templates.render_named("statuspage", "monitoring").startswith("A fix has been")
    with pytest.raises(SecurityError):
        templates.render_named("statuspage", "update", text="x")


def test_a_misspelt_variable_fails_at_start_up(tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "customer_body.txt.j2").write_text("Dear customer, {{ i.titel }}")
    with pytest.raises(TemplateConfigError, match="email/customer_body does not render"):
        names(Settings(data_dir=tmp_path, templates=tmp_path))
