"""The ``/incident`` slash command: Slack-signed requests drive real incidents."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import fastapi
import httpx
import pytest
import pytest_asyncio
from slack_sdk.signature import SignatureVerifier
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from domain.comms import SlackPolicy
from domain.models import Phase
from domain.policy import Policy
from domain.routing import SlackCommandAccess
from starters.slack_commands import CommandError, SlackGroups, parse, slack_command_router
from tests.fakes.slack import FakeSlack
from tests.helpers import declare, view
from workers.wiring import build_worker

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def signed(body: str, *, secret: str = SECRET, at: int | None = None) -> dict[str, str]:
    timestamp = str(at if at is not None else int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    assert signature is not None
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }


def form(text: str, **fields: str) -> str:
    base = {
        "command": "/incident",
        "text": text,
        "user_id": "UALICE",
        "user_name": "alice.smith",
        "channel_name": "incidents",
    }
    return urlencode({**base, **fields})


@pytest_asyncio.fixture(loop_scope="session")
async def slack_app(
    dev_env: WorkflowEnvironment, terminate_later: list
) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    client = dev_env.client
    worker = build_worker(client, task_queue=f"tq-{uuid.uuid4()}", policy=Policy(), channels=[])
    async with worker:
        handle = await declare(client, worker)
        terminate_later.append(handle)

        async def get_client() -> Client:
            return client

        app = fastapi.FastAPI()
        policy = SlackPolicy(users={"alice": "UALICE"})
        app.include_router(slack_command_router(get_client, signing_secret=SECRET, policy=policy))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://slack.test") as http:
            yield http, handle


async def post(http: httpx.AsyncClient, body: str, **sign: Any) -> httpx.Response:
    return await http.post("/slack/commands", content=body, headers=signed(body, **sign))


async def test_commands_drive_the_incident_as_the_mapped_responder(slack_app) -> None:
    http, handle = slack_app
    channel = f"{handle.id.lower()}-api-returns-500s"

    ack = await post(http, form(f"ack {handle.id}"))
    update = await post(http, form("update <!channel> rolling back", channel_name=channel))
    fix = await post(http, form("phase fix found the bad deploy", channel_name=channel))
    cause = await post(http, form("rootcause Bad *config* in <!here> v42", channel_name=channel))
    resolution = await post(http, form(f"resolution {handle.id} Rolled back to v41"))
    ticked = await post(http, form("check 2", channel_name=channel))
    unknown_item = await post(http, form("check coffee", channel_name=channel))
    wrong = await post(http, form("phase sideways", channel_name=channel))
    resolved = await post(http, form(f"resolve {handle.id} rolled back"))

    assert ack.status_code == 200
    assert ack.json() == {
        "response_type": "ephemeral",
        "text": f"✅ {handle.id} acknowledged; IC alice; Investigate",
    }
    assert update.json()["text"] == f"✅ update posted on {handle.id}"
    assert fix.json()["text"] == f"✅ {handle.id} is now in Fix"
    assert cause.json()["text"] == f"✅ record of {handle.id} updated: 1 field(s)"
    assert resolution.json()["text"] == f"✅ record of {handle.id} updated: 1 field(s)"
    assert (
        ticked.json()["text"]
        == "✅ ticked 'Implement fix (code, config, infrastructure)'; 4 item(s) of Fix left"
    )
    assert "no item matches 'coffee'" in unknown_item.json()["text"]
    assert wrong.json()["text"].startswith("⚠️ ") and "sideways" in wrong.json()["text"]
    assert resolved.json()["text"] == f"✅ {handle.id} is now in Resolve"
    incident = await view(handle)
    assert incident.phase is Phase.RESOLVE and incident.commander == "alice"
    assert incident.record.root_cause == "Bad *config* in <!here> v42"
    assert incident.record.resolution == "Rolled back to v41"
    [done] = [i for i in incident.checklists[Phase.FIX] if i.text.startswith("Implement fix")]
    assert done.done_by == "alice"
    actors = {event.actor for event in incident.timeline if event.actor not in ("system", None)}
    assert "alice" in actors and "alice.smith" not in actors


@pytest.mark.parametrize(
    "sign",
    [{"secret": "not-the-secret"}, {"at": int(time.time()) - 3600}],
    ids=["wrong-secret", "replayed-an-hour-later"],
)
async def test_unsigned_or_stale_requests_are_refused(slack_app, sign: dict[str, Any]) -> None:
    http, handle = slack_app
    response = await post(http, form(f"ack {handle.id}"), **sign)
    assert response.status_code == 401
    assert (await view(handle)).phase is Phase.DETECT


async def test_missing_headers_are_refused(slack_app) -> None:
    http, _ = slack_app
    response = await http.post("/slack/commands", content=form("ack"))
    assert response.status_code == 401


def test_parse_explains_mistakes() -> None:
    assert parse("ack INC-20261126-7QK3", "random").incident_id == "INC-20261126-7QK3"
    assert parse("resolve", "inc-20261126-7qk3-api").incident_id == "INC-20261126-7QK3"
    with pytest.raises(CommandError, match="Which incident"):
        parse("ack", "random")
    with pytest.raises(CommandError, match="Usage"):
        parse("dance INC-20261126-7QK3", "random")
    with pytest.raises(CommandError, match="Usage"):
        parse("update INC-20261126-7QK3", "random")
    for verb in ("rootcause", "resolution", "check"):
        with pytest.raises(CommandError, match="Usage"):
            parse(f"{verb} INC-20261126-7QK3", "random")
    assert parse("rootcause disk full", "inc-20261126-7qk3-api").rest == "disk full"


async def test_unknown_incident_is_reported(slack_app) -> None:
    http, _ = slack_app
    response = await post(http, form("ack INC-19990101-AAAA"))
    assert response.json()["text"].startswith("⚠️ incident INC-19990101-AAAA not found on ")


def test_http_service_serves_status_always_and_slash_commands_with_a_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    from domain.settings import Settings
    from starters.http_app import create_app

    def paths() -> set[str]:
        app = create_app(settings=Settings(data_dir=tmp_path), policy=Policy())
        return set(app.openapi()["paths"])

    monkeypatch.delenv("SLACK_SIGNING_SECRET", raising=False)
    assert "/status" in paths() and "/slack/commands" not in paths()
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    assert {"/status", "/status.json", "/slack/commands"} <= paths()


# ------------------------------------------------------------ the edge


class GroupSlack(FakeSlack):
    """The fake Slack Web API with user groups (``usergroups.users.list``)."""

    def __init__(self) -> None:
        super().__init__()
        self.groups: dict[str, list[str]] = {}

    def _m_usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        members = self.groups.get(str(args.get("usergroup", "")))
        if members is None:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": members}


@pytest_asyncio.fixture(loop_scope="session")
async def edge(dev_env: WorkflowEnvironment, terminate_later: list) -> AsyncIterator[Any]:
    """Factory: ``async with edge(access=...) as (http, handle)`` for a fresh incident."""
    from contextlib import asynccontextmanager

    client = dev_env.client
    groups = GroupSlack()
    await groups.start()
    groups.groups["S0ONCALL"] = ["UCAROL"]

    @asynccontextmanager
    async def make(**router: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
        worker = build_worker(client, task_queue=f"tq-{uuid.uuid4()}", policy=Policy(), channels=[])
        async with worker:
            handle = await declare(client, worker)
            terminate_later.append(handle)

            async def get_client() -> Client:
                return client

            app = fastapi.FastAPI()
            router.setdefault("policy", SlackPolicy(users={"alice": "UALICE"}))
            if "access" in router:
                router["group_members"] = SlackGroups(token=groups.token, api_url=groups.api_url)
            app.include_router(slack_command_router(get_client, signing_secret=SECRET, **router))
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://slack.test") as http:
                yield http, handle

    try:
        yield make
    finally:
        await groups.stop()


class CountingBody:
    """A streamed request body that counts how much of it the server pulled."""

    def __init__(self, chunks: int, size: int = 64 * 1024) -> None:
        self.sent = 0
        self._chunks = chunks
        self._size = size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self._chunks):
            self.sent += 1
            yield b"a" * self._size


async def test_requests_without_fresh_slack_headers_are_refused_before_reading(edge) -> None:
    async with edge() as (http, _):
        for headers in (
            {},
            {"X-Slack-Signature": "v0=00"},
            {"X-Slack-Request-Timestamp": str(int(time.time()) - 301), "X-Slack-Signature": "v0"},
            {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"},
        ):
            body = CountingBody(1024)  # 64 MiB if it were read
            response = await http.post("/slack/commands", content=body, headers=headers)
            assert response.status_code == 401, headers
            assert body.sent <= 1, (headers, body.sent)


async def test_a_large_signed_looking_body_is_cut_at_the_cap(edge) -> None:
    async with edge() as (http, _):
        body = CountingBody(1024)
        headers = {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=0"}
        response = await http.post("/slack/commands", content=body, headers=headers)
        assert response.status_code == 413
        assert body.sent <= 2, body.sent


async def test_non_ascii_signature_is_401_not_500(edge) -> None:
    async with edge() as (http, _):
        body = form("ack")
        headers = {
            "X-Slack-Request-Timestamp": str(int(time.time())).encode(),
            "X-Slack-Signature": b"v0=\xe9\xe9",
            "Content-Type": b"application/x-www-form-urlencoded",
        }
        response = await http.post("/slack/commands", content=body, headers=headers)
        assert response.status_code == 401


async def test_signed_but_undecodable_body_is_400(edge) -> None:
    async with edge() as (http, _):
        for body in (b"text=ack\xff", b"text=ack&user_name=%ff%fe&user_id=UALICE"):
            timestamp = str(int(time.time()))
            signature = (
                "v0="
                + hmac.new(
                    SECRET.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256
                ).hexdigest()
            )
            response = await http.post(
                "/slack/commands",
                content=body,
                headers={"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature},
            )
            assert response.status_code == 400, body
            assert "malformed form body" in response.json()["text"]


async def test_a_replayed_command_is_refused(edge) -> None:
    async with edge() as (http, handle):
        body = form(f"update {handle.id} first update")
        headers = signed(body)
        first = await http.post("/slack/commands", content=body, headers=headers)
        assert first.json()["text"].startswith("✅")
        replay = await http.post("/slack/commands", content=body, headers=headers)
        assert replay.status_code == 409
        updates = [e for e in (await view(handle)).timeline if "first update" in e.text]
        assert len(updates) == 1


async def test_identity_is_the_user_id_never_the_claimed_user_name(edge) -> None:
    async with edge() as (http, handle):
        body = form(f"ack {handle.id}", user_id="UMALLORY", user_name="alice")
        response = await post(http, body)
        assert response.json()["text"].startswith("✅")
        incident = await view(handle)
        assert incident.commander == "UMALLORY"


async def test_only_allowed_users_and_group_members_run_commands(edge) -> None:
    access = SlackCommandAccess(users=["UALICE"], groups=["S0ONCALL"])
    async with edge(access=access) as (http, handle):
        refused = await post(http, form(f"ack {handle.id}", user_id="UBOB", user_name="bob"))
        assert refused.status_code == 200
        assert refused.json() == {
            "response_type": "ephemeral",
            "text": "⛔ You are not allowed to run incident commands; ask an incident lead.",
        }
        assert (await view(handle)).phase is Phase.DETECT
        by_group = await post(http, form(f"ack {handle.id}", user_id="UCAROL"))
        assert by_group.json()["text"].startswith("✅"), by_group.text
        assert (await view(handle)).commander == "UCAROL"


async def test_slack_certificate_check_is_answered(edge) -> None:
    async with edge() as (http, _):
        response = await post(http, "ssl_check=1&token=x")
        assert response.status_code == 200
