"""The customer e-mail against a real local SMTP server (aiosmtpd) with STARTTLS and AUTH."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.email import CustomerEmailChannel, SmtpSender
from activities.templates import standard_templates
from domain.comms import CommsPolicy, EmailPolicy, SmtpSettings
from domain.models import (
    AcknowledgeInput,
    EventKind,
    IncidentFacts,
    Notification,
    NotificationKind,
    NotifyResult,
    Phase,
    PhaseInput,
    Severity,
)
from domain.policy import Policy
from tests.helpers import declare, view
from workers.wiring import build_worker
from workflows.incident import IncidentWorkflow

RECIPIENTS = ["customers@example.com", "status-list@example.com"]


@dataclass
class Mailbox:
    """What the SMTP server received."""

    port: int
    ca_file: Path
    messages: list[tuple[Envelope, Message, bool, bool]] = field(default_factory=list)
    """(envelope, parsed message, came over TLS, authenticated)."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        parsed = message_from_bytes(envelope.content)
        self.messages.append((envelope, parsed, session.ssl is not None, session.authenticated))
        return "250 OK"


def _authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"mailer", b"s3cret")
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed; it makes the SMTP server's test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest_asyncio.fixture(loop_scope="session")
async def mailbox(certificate: tuple[Path, Path]) -> AsyncIterator[Mailbox]:
    cert, key = certificate
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    box = Mailbox(port=0, ca_file=cert)
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(
            box,
            tls_context=tls,
            require_starttls=True,
            auth_required=True,
            authenticator=_authenticate,
            hostname="localhost",
        ),
        "127.0.0.1",
        0,
    )
    box.port = server.sockets[0].getsockname()[1]
    try:
        yield box
    finally:
        server.close()
        await server.wait_closed()


def email_channel(box: Mailbox, *, password: str = "s3cret", **policy: Any) -> CustomerEmailChannel:
    settings = SmtpSettings(
        host="127.0.0.1",
        port=box.port,
        username="mailer",
        password=SecretStr(password),
        sender="status@example.com",
        timeout=10,
    )
    sender = SmtpSender(settings, ssl.create_default_context(cafile=str(box.ca_file)))
    rules = EmailPolicy.model_validate({"recipients": RECIPIENTS, **policy})
    return CustomerEmailChannel(sender, standard_templates(), rules, settings.sender)


DECLARED = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)


def resolved(after: timedelta, *, severity: Severity = Severity.P1, **fields: Any) -> Notification:
    facts = IncidentFacts(
        id="INC-20261126-7QK3",
        title="Checkout fails for card payments",
        severity=severity,
        phase=Phase.RESOLVE,
        impact="Customers could not pay by card.",
        declared_at=DECLARED,
        resolved_at=DECLARED + after,
        public_resolution="Rolled back the payment gateway release.",
    )
    return Notification(
        key="INC-20261126-7QK3/9",
        kind=NotificationKind.RESOLVED,
        incident=facts,
        at=DECLARED + after,
        text="internal: bob's deploy 4411 broke the gateway",
        **fields,
    )


async def test_customer_email_goes_out_over_starttls_with_login(mailbox: Mailbox) -> None:
    result = await email_channel(mailbox).deliver(resolved(timedelta(hours=1, minutes=5)))

    assert result == NotifyResult(
        refs={"email.customer": "INC-20261126-7QK3/9"},
        sent=["customer e-mail sent to 2 recipients (downtime 1h 05m)"],
    )
    [(envelope, message, over_tls, authenticated)] = mailbox.messages
    assert over_tls and authenticated
    assert envelope.mail_from == "status@example.com"
    assert envelope.rcpt_tos == RECIPIENTS
    assert message["Subject"] == "Service Disruption - November 26, 2026"
    assert message["To"] == ", ".join(RECIPIENTS)
    assert message["Message-ID"].endswith("@example.com>")
    assert message.get_payload(decode=True).decode().splitlines() == [
        "We experienced a service disruption today from 14:00 UTC to 15:05 UTC (1h 05m).",
        "",
        "What happened:",
        "Checkout fails for card payments",
        "",
        "Impact:",
        "Customers could not pay by card.",
        "",
        "Resolution:",
        "Rolled back the payment gateway release.",
        "",
        "Prevention:",
        "We are reviewing this incident in a post-mortem and will put measures in place "
        "to prevent it from happening again.",
        "",
        "We apologize for the inconvenience.",
    ]
    assert "4411" not in message.as_string(), "an internal note reached customers"


@pytest.mark.parametrize(
    ("after", "severity", "refs", "sent"),
    [
        (timedelta(hours=1), Severity.P1, {}, False),
        (timedelta(hours=1, seconds=1), Severity.P1, {}, True),
        (timedelta(minutes=20), Severity.P0, {}, False),
        (timedelta(hours=3), Severity.P3, {}, False),
        (timedelta(hours=3), Severity.P0, {"email.customer": "INC-20261126-7QK3/8"}, False),
    ],
    ids=["exactly-1h", "over-1h", "short", "p3-not-customer-visible", "already-sent"],
)
async def test_one_hour_rule(
    mailbox: Mailbox, after: timedelta, severity: Severity, refs: dict[str, str], sent: bool
) -> None:
    result = await email_channel(mailbox).deliver(resolved(after, severity=severity, refs=refs))
    assert len(mailbox.messages) == (1 if sent else 0)
    assert bool(result.sent) is sent


async def test_threshold_is_configurable(mailbox: Mailbox) -> None:
    channel = email_channel(mailbox, min_downtime="15m")
    await channel.deliver(resolved(timedelta(minutes=20)))
    assert len(mailbox.messages) == 1


async def test_wrong_password_is_permanent(mailbox: Mailbox) -> None:
    with pytest.raises(ApplicationError) as raised:
        await email_channel(mailbox, password="nope").deliver(resolved(timedelta(hours=2)))
    assert raised.value.non_retryable
    assert raised.value.message.startswith(f"SMTP 127.0.0.1:{mailbox.port}: authentication failed")
    assert mailbox.messages == []


class FlakyChannel:
    """Fails its first delivery of each notification with a retryable error."""

    name = "flaky"

    def __init__(self) -> None:
        self.failed: set[str] = set()
        self.delivered: list[NotificationKind] = []

    async def deliver(self, notification: Notification) -> NotifyResult:
        if notification.key not in self.failed:
            self.failed.add(notification.key)
            raise ApplicationError("temporarily unavailable", next_retry_delay=timedelta(seconds=1))
        self.delivered.append(notification.kind)
        return NotifyResult()


async def resolve_incident(
    env: WorkflowEnvironment, box: Mailbox, *, min_downtime: str, cleanup: list
) -> list[str]:
    """Declare (a sender claims the problem began two hours ago), acknowledge and resolve
    after two seconds, with every delivery retried once; returns the timeline's
    ``notification_sent`` texts."""
    client = env.client
    rules = EmailPolicy.model_validate({"recipients": RECIPIENTS, "min_downtime": min_downtime})
    policy = Policy(comms=CommsPolicy(email=rules))
    flaky = FlakyChannel()
    worker = build_worker(
        client,
        task_queue=f"tq-{uuid.uuid4()}",
        policy=policy,
        channels=[email_channel(box, min_downtime=min_downtime), flaky],
    )
    async with worker:
        handle = await declare(client, worker, detected_at=datetime.now(UTC) - timedelta(hours=2))
        cleanup.append(handle)
        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bob"))
        await asyncio.sleep(2)
        await handle.execute_update(
            IncidentWorkflow.set_phase, PhaseInput(responder="bob", phase="resolve", note="fixed")
        )
        for _ in range(400):
            if NotificationKind.RESOLVED in flaky.delivered:
                description = await handle.describe()
                if not description.raw_description.pending_activities:
                    break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        incident = await view(handle)
    assert NotificationKind.RESOLVED in flaky.delivered
    return [e.text for e in incident.timeline if e.kind is EventKind.NOTIFICATION_SENT]


async def test_resolution_after_long_downtime_mails_customers_once_and_records_it(
    dev_env: WorkflowEnvironment, mailbox: Mailbox, terminate_later: list
) -> None:
    sent = await resolve_incident(dev_env, mailbox, min_downtime="1s", cleanup=terminate_later)
    assert len(sent) == 1
    assert sent[0].startswith("email: customer e-mail sent to 2 recipients (downtime ")
    assert "2h" not in sent[0], "downtime counts from the declaration, not the sender's clock"
    assert len(mailbox.messages) == 1


async def test_short_downtime_sends_nothing(
    dev_env: WorkflowEnvironment, mailbox: Mailbox, terminate_later: list
) -> None:
    """The sender's start time two hours back does not make a two-second incident long."""
    sent = await resolve_incident(dev_env, mailbox, min_downtime="1h", cleanup=terminate_later)
    assert sent == []
    assert mailbox.messages == []


class SendThenHang(SmtpSender):
    """Hands the message to the SMTP server, then never returns: a worker dying mid-send."""

    async def send(self, message: EmailMessage) -> None:
        await super().send(message)
        await asyncio.Event().wait()


async def test_a_worker_stopped_after_sending_does_not_mail_customers_twice(
    dev_env: WorkflowEnvironment, mailbox: Mailbox, terminate_later: list
) -> None:
    client = dev_env.client
    rules = EmailPolicy.model_validate({"recipients": RECIPIENTS, "min_downtime": "1s"})
    policy = Policy(comms=CommsPolicy(email=rules))
    queue = f"tq-{uuid.uuid4()}"
    healthy = email_channel(mailbox, min_downtime="1s")
    settings = SmtpSettings(
        host="127.0.0.1",
        port=mailbox.port,
        username="mailer",
        password=SecretStr("s3cret"),
        sender="status@example.com",
        timeout=10,
    )
    hanging = CustomerEmailChannel(
        SendThenHang(settings, ssl.create_default_context(cafile=str(mailbox.ca_file))),
        standard_templates(),
        EmailPolicy.model_validate({"recipients": RECIPIENTS, "min_downtime": "1s"}),
        settings.sender,
    )
    first = build_worker(
        client,
        task_queue=queue,
        policy=policy,
        channels=[hanging],
        graceful_shutdown_timeout=timedelta(seconds=0),
    )
    async with first:
        handle = await declare(client, first)
        terminate_later.append(handle)
        await handle.execute_update(IncidentWorkflow.acknowledge, AcknowledgeInput(responder="bob"))
        await asyncio.sleep(1.5)
        await handle.execute_update(
            IncidentWorkflow.set_phase, PhaseInput(responder="bob", phase="resolve")
        )
        for _ in range(200):
            if mailbox.messages:
                break
            await asyncio.sleep(0.05)
        assert len(mailbox.messages) == 1, "the first attempt sent the e-mail"
    # The first worker is gone with the attempt unfinished; the retry runs elsewhere.
    async with build_worker(client, task_queue=queue, policy=policy, channels=[healthy]):
        failures: list[str] = []
        for _ in range(300):
            incident = await view(handle)
            failures = [
                e.text for e in incident.timeline if e.kind is EventKind.NOTIFICATION_FAILED
            ]
            if failures:
                break
            await asyncio.sleep(0.05)

    assert len(mailbox.messages) == 1, "customers got the e-mail twice"
    assert failures and "not sent again" in failures[0], failures
