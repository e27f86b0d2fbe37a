"""Senders: one small interface (`Sender`, see `base`), one module per way mail can leave."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from newsletter.delivery.dkim import DkimSigner
from newsletter.delivery.senders.base import (
    Lookup,
    RejectedRequest,
    Sender,
    SenderUnavailable,
    SendResult,
    UnknownOutcome,
    batch_key,
)
from newsletter.delivery.senders.file import FileSender
from newsletter.delivery.senders.http import make_client
from newsletter.delivery.senders.mailgun import MailgunSender
from newsletter.delivery.senders.memory import MemorySender
from newsletter.delivery.senders.postmark import PostmarkSender
from newsletter.delivery.senders.resend import ResendSender
from newsletter.delivery.senders.sendgrid import SendGridSender
from newsletter.delivery.senders.smtp import SmtpConfig, SmtpSender
from newsletter.errors import SettingsError
from newsletter.settings import Settings

__all__ = [
    "FileSender",
    "Lookup",
    "MailgunSender",
    "MemorySender",
    "PostmarkSender",
    "RejectedRequest",
    "ResendSender",
    "SendGridSender",
    "SendResult",
    "Sender",
    "SenderUnavailable",
    "SmtpConfig",
    "SmtpSender",
    "UnknownOutcome",
    "batch_key",
    "dkim_signer",
    "make_sender",
]


def dkim_signer(settings: Settings) -> DkimSigner | None:
    """The DKIM signer the settings ask for, or None when no key file is set."""
    if settings.dkim_key_file is None:
        return None
    return DkimSigner.from_file(
        settings.dkim_key_file, settings.dkim_selector, settings.dkim_domain or settings.from_domain
    )


def make_sender(settings: Settings, *, transport: httpx.BaseTransport | None = None) -> Sender:
    """The sender `NEWSLETTER_SENDER` names, configured from the settings."""
    kind = settings.sender
    if kind == "file":
        return FileSender(settings.outbox)
    if kind == "smtp":
        config = SmtpConfig(
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=settings.smtp_password,
            verify=settings.smtp_verify,
            timeout=settings.smtp_timeout,
            messages_per_connection=settings.smtp_messages_per_connection,
        )
        return SmtpSender(config, signer=dkim_signer(settings))

    def client(base_url: str) -> httpx.Client:
        return make_client(base_url, timeout=settings.http_timeout, transport=transport)

    if kind == "postmark":
        return PostmarkSender(
            settings.postmark_token,
            client(settings.postmark_api_url),
            stream=settings.postmark_stream,
            batch_size=settings.batch_size,
        )
    if kind == "sendgrid":
        return SendGridSender(
            settings.sendgrid_key,
            client(settings.sendgrid_api_url),
            batch_size=settings.batch_size,
        )
    if kind == "mailgun":
        return MailgunSender(
            settings.mailgun_key, settings.mailgun_domain, client(settings.mailgun_api_url)
        )
    if kind == "resend":
        return ResendSender(
            settings.resend_key, client(settings.resend_api_url), batch_size=settings.batch_size
        )
    if kind == "ses":
        return _ses(settings, client)
    raise SettingsError(f"NEWSLETTER_SENDER: unknown sender {kind!r}")


def _ses(settings: Settings, client: Callable[[str], httpx.Client]) -> Sender:
    # imported here: only an SES send loads its signer (botocore, ~100 ms)
    from newsletter.delivery.senders.ses import SesSender, endpoint
    from newsletter.delivery.senders.sigv4 import AwsCredentials, SigV4

    credentials = AwsCredentials(
        settings.aws_access_key_id, settings.aws_secret_access_key, settings.aws_session_token
    )
    return SesSender(
        client(settings.ses_api_url or endpoint(settings.aws_region)),
        SigV4(credentials, settings.aws_region, "ses"),
        configuration_set=settings.ses_configuration_set,
        dkim=dkim_signer(settings),
    )
