"""The Slack channel against a local Slack Web API server, through the real slack-sdk client."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from temporalio.exceptions import ApplicationError

from activities.notify import Notifier
from activities.slack import SlackApi, SlackChannel, new_slack_client
from activities.slack.directory import SlackDirectory
from activities.templates import standard_templates
from domain.comms import SlackPolicy, SlackSettings
from domain.models import (
    IncidentFacts,
    Notification,
    NotificationKind,
    Phase,
    Severity,
)
from tests.fakes.slack import FakeSlack

CHANNEL = "inc-20261126-7qk3-api-returns-500s"
POLICY = SlackPolicy(
    users={"alice": "UALICE", "bob": "UBOB"},
    groups={"oncall-sre": "SSRE"},
    channels={"#incidents": "CINCIDENTS"},
)


def slack_channel(fake: FakeSlack, *, token: str | None = None, policy=POLICY) -> SlackChannel:
    settings = SlackSettings(bot_token=token or fake.token, api_url=fake.api_url)
    return SlackChannel(SlackApi(new_slack_client(settings)), standard_templates(), policy)


def facts(**fields: object) -> IncidentFacts:
    base: dict[str, object] = {
        "id": "INC-20261126-7QK3",
        "title": "API returns 500s",
        "severity": Severity.P1,
        "phase": Phase.DETECT,
        "declared_at": datetime(2026, 11, 26, 14, 0, tzinfo=UTC),
        "status_page_url": "https://status.example.com",
    }
    return IncidentFacts.model_validate({**base, **fields})


def note(kind: NotificationKind, seq: int = 1, **fields: object) -> Notification:
    incident = fields.pop("incident", None) or facts()
    return Notification.model_validate(
        {
            "key": f"INC-20261126-7QK3/{seq}",
            "kind": kind,
            "incident": incident,
            "at": datetime(2026, 11, 26, 14, 0, tzinfo=UTC),
            **fields,
        }
    )


async def test_declared_creates_channel_invites_posts_and_announces(slack: FakeSlack) -> None:
    channel = slack_channel(slack)
    declared = note(
        NotificationKind.DECLARED,
        targets=["#incidents"],
        actor="bob",
        incident=facts(commander="alice", impact="all API calls fail"),
    )

    result = await channel.deliver(declared)

    created = slack.by_name(CHANNEL)
    assert [(c.method, c.args.get("channel"), c.args.get("users")) for c in slack.calls] == [
        ("conversations.create", None, None),
        ("conversations.invite", created.id, "UALICE"),
        ("conversations.invite", created.id, "UBOB"),
        ("chat.postMessage", created.id, None),
        ("conversations.join", "CINCIDENTS", None),
        ("chat.postMessage", "CINCIDENTS", None),
    ]
    assert slack.calls[0].args["name"] == CHANNEL
    assert result.refs == {
        "slack.channel": created.id,
        "slack.channel_name": CHANNEL,
        "slack.declared_ts": created.messages[0]["ts"],
    }
    assert result.failures == []
    posted = created.messages[0]
    assert posted["text"].splitlines() == [
        "🚨 *INCIDENT DECLARED*",
        "*INC-20261126-7QK3: API returns 500s*",
        "Severity: *P1*",
        "Impact: all API calls fail",
        "IC: <@UALICE>",
        f"Channel: <#{created.id}>",
        "Status page: https://status.example.com",
        "Acknowledge by: — · Resolve by: —",
    ]
    assert posted["metadata"] == {
        "event_type": "incident_notification",
        "event_payload": {
            "key": "INC-20261126-7QK3/1",
            "incident": "INC-20261126-7QK3",
            "kind": "declared",
        },
    }
    post_args = slack.calls[3].args
    assert post_args["unfurl_links"] is False and post_args["link_names"] is False
    assert slack.posts("CINCIDENTS")[0]["text"] == posted["text"]
    assert set(created.members) == {FakeSlack.BOT_USER, "UALICE", "UBOB"}


async def test_existing_channel_is_reused(slack: FakeSlack) -> None:
    existing = slack.add_channel(CHANNEL)
    channel = slack_channel(slack)

    result = await channel.deliver(note(NotificationKind.DECLARED))

    assert slack.methods()[:3] == [
        "conversations.create",
        "conversations.list",
        "conversations.join",
    ]
    assert slack.calls[0].error == "name_taken"
    assert result.refs["slack.channel"] == existing.id
    assert [c.name for c in slack.channels.values()].count(CHANNEL) == 1
    assert len(existing.messages) == 1


async def test_later_notifications_use_the_channel_from_refs(slack: FakeSlack) -> None:
    channel = slack_channel(slack)
    first = await channel.deliver(note(NotificationKind.DECLARED))
    slack.calls.clear()

    await channel.deliver(
        note(
            NotificationKind.PHASE_CHANGED,
            2,
            refs=first.refs,
            actor="alice",
            text="rolled back",
            incident=facts(phase=Phase.FIX),
        )
    )

    assert slack.methods() == ["chat.postMessage"]
    assert slack.calls[0].args["channel"] == first.refs["slack.channel"]
    assert slack.calls[0].args["text"] == (
        "➡️ *INC-20261126-7QK3* is now in *Fix* (Identified) — by alice\n> rolled back"
    )


async def test_hostile_text_cannot_ping_or_spoof(slack: FakeSlack) -> None:
    channel = slack_channel(slack)
    hostile = "<!channel> <!here> <https://evil.example|status.example.com> & <@UALICE>"
    refs = (await channel.deliver(note(NotificationKind.DECLARED))).refs

    await channel.deliver(
        note(
            NotificationKind.UPDATE,
            2,
            refs=refs,
            text=hostile,
            targets=["#incidents"],
            incident=facts(title=hostile, impact=hostile, eta="<!everyone>", commander="alice"),
        )
    )

    for message in slack.posts(CHANNEL)[1:] + slack.posts("CINCIDENTS"):
        text = message["text"]
        for raw in ("<!channel>", "<!here>", "<!everyone>", "<https://evil", "<@UALICE>"):
            assert raw not in text
        assert "&lt;!channel&gt; &lt;!here&gt;" in text
        assert "&lt;https://evil.example|status.example.com&gt; &amp; &lt;@UALICE&gt;" in text
        assert f"Channel: <#{refs['slack.channel']}>" in text


async def test_page_mentions_targets_invites_them_and_sends_direct_messages(
    slack: FakeSlack,
) -> None:
    channel = slack_channel(slack)
    refs = (await channel.deliver(note(NotificationKind.DECLARED))).refs
    slack.calls.clear()

    await channel.deliver(
        note(
            NotificationKind.PAGE,
            2,
            refs=refs,
            targets=["@alice", "@oncall-sre", "@nobody"],
            text="escalation level 1/3, round 1",
        )
    )

    incident_channel = refs["slack.channel"]
    assert [(c.method, c.args.get("channel"), c.args.get("users")) for c in slack.calls] == [
        ("conversations.invite", incident_channel, "UALICE"),
        ("chat.postMessage", incident_channel, None),
        ("conversations.open", None, "UALICE"),
        ("chat.postMessage", slack.calls[3].args["channel"], None),
    ]
    text = slack.calls[1].args["text"]
    assert text.startswith("📟 *PAGE* <@UALICE> <!subteam^SSRE> @nobody: *INC-20261126-7QK3*")
    assert slack.calls[3].args["channel"].startswith("D")
    assert slack.calls[3].args["text"] == text


async def test_unknown_people_are_looked_up_by_email(slack: FakeSlack) -> None:
    slack.users_by_email["carol@example.com"] = "UCAROL"
    policy = SlackPolicy(email_domain="example.com", channels={"#incidents": "CINCIDENTS"})
    channel = slack_channel(slack, policy=policy)

    await channel.deliver(note(NotificationKind.DECLARED, incident=facts(commander="carol")))

    lookups = [c.args["email"] for c in slack.calls if c.method == "users.lookupByEmail"]
    assert lookups == ["carol@example.com"]
    assert "UCAROL" in slack.by_name(CHANNEL).members
    assert "IC: <@UCAROL>" in slack.by_name(CHANNEL).messages[0]["text"]


async def test_rate_limit_asks_temporal_to_retry_after_the_header(slack: FakeSlack) -> None:
    slack.fail("chat.postMessage", status=429, retry_after=7)
    channel = slack_channel(slack)

    with pytest.raises(ApplicationError) as raised:
        await channel.deliver(note(NotificationKind.DECLARED))

    assert not raised.value.non_retryable
    assert raised.value.next_retry_delay is not None
    assert raised.value.next_retry_delay.total_seconds() == 7


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("bad-token", "Slack conversations.create failed: invalid_auth (the bot token is invalid)"),
        ("archived", "Slack chat.postMessage failed: is_archived (the channel is archived)"),
    ],
)
async def test_permanent_errors_are_not_retried_and_explain_themselves(
    slack: FakeSlack, setup: str, expected: str
) -> None:
    refs: dict[str, str] = {}
    token = None
    if setup == "bad-token":
        token = "xoxb-revoked"
    else:
        archived = slack.add_channel(CHANNEL, archived=True, members=[FakeSlack.BOT_USER])
        refs = {"slack.channel": archived.id}
    channel = slack_channel(slack, token=token)

    with pytest.raises(ApplicationError) as raised:
        await channel.deliver(note(NotificationKind.UPDATE, refs=refs))
    assert raised.value.non_retryable
    assert raised.value.message == expected

    other = Notifier([channel])
    result = await other.notify(note(NotificationKind.UPDATE, refs=refs))
    assert result.failures == [f"slack: {expected}"]


async def test_a_missing_channel_is_listed_once_not_once_per_message(slack: FakeSlack) -> None:
    settings = SlackSettings(bot_token=slack.token, api_url=slack.api_url)
    directory = SlackDirectory(SlackApi(new_slack_client(settings)), SlackPolicy())
    slack.add_channel("payments", channel_id="CPAY")

    found = [await directory.channel_id("#no-such-team") for _ in range(50)]
    assert found == [None] * 50
    assert slack.methods().count("conversations.list") == 1
    assert await directory.channel_id("#payments") == "CPAY", "listed channels are remembered"
    assert slack.methods().count("conversations.list") == 1
    directory.remember_channel("no-such-team", "CNEW")
    assert await directory.channel_id("#no-such-team") == "CNEW"
