"""The customer e-mail: sent once on resolution when customer-visible downtime was long."""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from temporalio.exceptions import ApplicationError

from activities import progress
from activities.templates import Templates, humanize
from domain.comms import EmailPolicy, SmtpSettings, downtime
from domain.models import Notification, NotificationKind, NotifyResult

REF_SENT = "email.customer"
"""Ref holding the key of the notification that sent the customer e-mail."""


class SmtpSender:
    """Sends one message over SMTP (STARTTLS or implicit TLS, optional login).

    smtplib runs in a thread so the worker's event loop stays free. SMTP
    failures are mapped for Temporal: refused recipients, a refused sender and
    failed authentication are permanent; connection trouble and 4xx answers
    are retried.

    Args:
        settings: the ``SMTP_*`` settings.
        tls_context: TLS settings (default: the system's trusted CAs).
    """

    def __init__(self, settings: SmtpSettings, tls_context: ssl.SSLContext | None = None) -> None:
        self._settings = settings
        self._tls = tls_context or ssl.create_default_context()

    async def send(self, message: EmailMessage) -> None:
        """Send ``message`` to its To recipients."""
        await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        s = self._settings
        where = f"SMTP {s.host}:{s.port}"
        try:
            smtp: smtplib.SMTP
            if s.tls:
                smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=self._tls)
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            with smtp:
                smtp.ehlo()
                if s.starttls and not s.tls:
                    smtp.starttls(context=self._tls)
                    smtp.ehlo()
                if s.username:
                    password = s.password.get_secret_value() if s.password else ""
                    smtp.login(s.username, password)
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError as error:
            raise _permanent(
                f"{where}: authentication failed ({_reply(error)}); "
                "check SMTP_USERNAME and SMTP_PASSWORD"
            ) from None
        except smtplib.SMTPNotSupportedError as error:
            raise _permanent(
                f"{where}: {error} (set SMTP_STARTTLS=false or fix the server)"
            ) from None
        except smtplib.SMTPRecipientsRefused as error:
            refused = ", ".join(sorted(error.recipients))
            raise _permanent(f"{where}: recipients refused: {refused}") from None
        except smtplib.SMTPSenderRefused as error:
            raise _permanent(f"{where}: sender {error.sender} refused ({_reply(error)})") from None
        except smtplib.SMTPResponseException as error:
            if 500 <= error.smtp_code < 600:
                raise _permanent(f"{where}: {_reply(error)}") from None
            raise ApplicationError(f"{where}: {_reply(error)}", type="SmtpError") from None
        except (OSError, smtplib.SMTPException) as error:
            raise ApplicationError(f"{where}: {error!r}", type="SmtpError") from None


def _reply(error: smtplib.SMTPResponseException) -> str:
    text = error.smtp_error.decode(errors="replace") if isinstance(error.smtp_error, bytes) else ""
    return f"{error.smtp_code} {text}".strip()


def _permanent(message: str) -> ApplicationError:
    return ApplicationError(message, type="SmtpPermanentError", non_retryable=True)


class CustomerEmailChannel:
    """Sends the seed's customer e-mail when an incident is resolved after long downtime.

    Only ``resolved`` notifications of customer-visible severities whose
    downtime (detection or declaration to resolution) exceeded
    ``min_downtime`` qualify. The sending notification's key is kept in the
    incident's refs, and its Message-ID is derived from that key, so the
    e-mail goes out once per incident.

    Args:
        sender: the SMTP sender.
        templates: templates with the ``email`` medium.
        policy: the ``[comms.email]`` policy (recipients, threshold).
        from_address: the From address (``SMTP_FROM``).
    """

    name = "email"

    def __init__(
        self, sender: SmtpSender, templates: Templates, policy: EmailPolicy, from_address: str
    ) -> None:
        if not from_address:
            raise ValueError("SMTP_FROM is required when SMTP_HOST is set")
        self._sender = sender
        self._templates = templates
        self._policy = policy
        self._from = from_address

    def due(self, notification: Notification) -> bool:
        """Whether ``notification`` calls for the customer e-mail."""
        facts = notification.incident
        return (
            notification.kind is NotificationKind.RESOLVED
            and REF_SENT not in notification.refs
            and bool(self._policy.recipients)
            and facts.severity in self._policy.severities
            and downtime(facts, until=notification.at) > self._policy.min_downtime
        )

    async def deliver(self, notification: Notification) -> NotifyResult:
        """Send the customer e-mail if it is due, at most once even across worker crashes.

        An attempt that was interrupted while sending (the worker died, or stopped)
        may have sent it: the e-mail is then not sent again, and the timeline says so.
        """
        if not self.due(notification):
            return NotifyResult()
        sending = f"{REF_SENT}:{notification.key}"
        if progress.interrupted(sending):
            return NotifyResult(
                refs={REF_SENT: notification.key},
                failures=[
                    "customer e-mail not sent again: an earlier attempt was interrupted while "
                    "sending it, so it may have gone out (check the SMTP server's log)"
                ],
            )
        message = self.compose(notification)
        progress.mark(sending)
        try:
            await self._sender.send(message)
        except ApplicationError:
            progress.mark(None)  # the server refused it or was unreachable: not sent
            raise
        lasted = humanize(downtime(notification.incident, until=notification.at).total_seconds())
        count = len(self._policy.recipients)
        return NotifyResult(
            refs={REF_SENT: notification.key},
            sent=[
                f"customer e-mail sent to {count} recipient{'s' if count != 1 else ''} "
                f"(downtime {lasted})"
            ],
        )

    def compose(self, notification: Notification) -> EmailMessage:
        """The e-mail, rendered from the ``email`` templates."""
        context = email_context(notification)
        end = notification.incident.resolved_at or notification.at
        message = EmailMessage()
        message["From"] = self._from
        message["To"] = ", ".join(self._policy.recipients)
        message["Subject"] = self._templates.render_named("email", "customer_subject", **context)
        message["Date"] = format_datetime(end)
        digest = hashlib.sha256(notification.key.encode()).hexdigest()[:24]
        domain = self._from.rpartition("@")[2].strip("> ") or "incident-orchestrator"
        # The same notification always yields the same Message-ID, so mail systems
        # can drop a copy sent again after a worker died before recording the send.
        message["Message-ID"] = f"<incident-{digest}@{domain}>"
        message.set_content(self._templates.render_named("email", "customer_body", **context))
        return message


def email_context(notification: Notification) -> dict[str, Any]:
    """Variables of the ``email`` templates."""
    facts = notification.incident
    start = facts.declared_at
    end = facts.resolved_at or notification.at
    return {
        "i": facts,
        "text": facts.public_resolution,
        "start": _when(start),
        "end": _when(end),
        "start_date": f"{start:%B} {start.day}, {start:%Y}",
        "same_day": start.date() == end.date(),
        "downtime": humanize(downtime(facts, until=notification.at).total_seconds()),
    }


def _when(value: datetime) -> str:
    return f"{value:%H:%M} UTC" if value.tzinfo else f"{value:%H:%M}"
