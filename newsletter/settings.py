"""Every setting, read once from the environment (and an optional `.env`) into an immutable object.

The table `SETTINGS` is the single list: it drives parsing, validation, `.env.example`
and the README's settings section, so a setting cannot exist in one place and not another.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from email.utils import getaddresses, parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from newsletter.errors import SettingsError

SENDERS = ("file", "smtp", "postmark", "sendgrid", "mailgun", "resend", "ses")
SMTP_SECURITY = ("starttls", "tls", "none")


def _text(value: str) -> str:
    return value.strip()


def _path(value: str) -> Path:
    return Path(value).expanduser()


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _int(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value.strip())
        except ValueError:
            raise ValueError(f"expected a whole number, got {value!r}") from None
        if number < low or (high is not None and number > high):
            limit = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ValueError(f"must be {limit}, got {number}")
        return number

    return parse


def _float(low: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
        if number < low:
            raise ValueError(f"must be at least {low}, got {number}")
        return number

    return parse


def _choice(*options: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        lowered = value.strip().lower()
        if lowered not in options:
            raise ValueError(f"must be one of {', '.join(options)}, got {value!r}")
        return lowered

    return parse


def _timezone(value: str) -> ZoneInfo:
    try:
        return ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {value!r} (use an IANA name like Europe/Paris)"
        ) from None


def _address(value: str) -> str:
    if any(ch in value for ch in "\r\n"):
        raise ValueError("must not contain line breaks")
    if "=?" in value:
        raise ValueError("write the name as plain text (it is encoded for you), not as =?...?=")
    pairs = getaddresses([value])
    if len(pairs) != 1 or "@" not in pairs[0][1]:
        raise ValueError(
            f"expected one address like 'The Brief <brief@example.org>', got {value!r}"
        )
    return value.strip()


def _optional_address(value: str) -> str:
    return _address(value) if value.strip() else ""


def _optional_path(value: str) -> Path | None:
    return Path(value.strip()).expanduser() if value.strip() else None


def _url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(f"expected an absolute http(s) URL, got {value!r}")
    return value.strip().rstrip("/")


def _optional_url(value: str) -> str:
    return _url(value) if value.strip() else ""


def _colour(value: str) -> str:
    text = value.strip()
    if not (text.startswith("#") and len(text) in {4, 7}):
        raise ValueError(f"expected a hex colour like #1f3a5f, got {value!r}")
    try:
        int(text[1:], 16)
    except ValueError:
        raise ValueError(f"expected a hex colour like #1f3a5f, got {value!r}") from None
    return text.lower()


def _proxy_address(value: str) -> str:
    text = value.strip()
    if text in ("", "*"):
        return text
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError(f"expected an IP address or *, got {value!r}") from None


def _list(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


@dataclass(frozen=True)
class Spec:
    """How one setting is named, parsed and documented."""

    attr: str
    env: str
    default: str
    parse: Callable[[str], Any]
    help: str
    secret: bool = False


SETTINGS: tuple[Spec, ...] = (
    Spec("db", "NEWSLETTER_DB", "newsletter.db", _path, "SQLite database file"),
    Spec(
        "sender",
        "NEWSLETTER_SENDER",
        "file",
        _choice(*SENDERS),
        "how mail leaves: " + " | ".join(SENDERS),
    ),
    Spec(
        "from_addr",
        "NEWSLETTER_FROM",
        "The Brief <brief@example.org>",
        _address,
        "From: display name and address",
    ),
    Spec(
        "reply_to", "NEWSLETTER_REPLY_TO", "", _optional_address, "Reply-To address (empty: none)"
    ),
    Spec(
        "public_url",
        "NEWSLETTER_PUBLIC_URL",
        "http://localhost:8000",
        _url,
        "public base URL of the web service (links in mail point here)",
    ),
    Spec(
        "secret_key",
        "NEWSLETTER_SECRET_KEY",
        "",
        _text,
        "signs tokens; empty: a random key kept in the database",
        secret=True,
    ),
    Spec(
        "timezone",
        "NEWSLETTER_TIMEZONE",
        "UTC",
        _timezone,
        "IANA timezone that decides which ISO week a signal belongs to",
    ),
    Spec(
        "outbox",
        "NEWSLETTER_OUTBOX",
        "outbox",
        _path,
        "folder the file sender writes .eml files to",
    ),
    Spec("rate", "NEWSLETTER_RATE", "0", _float(0), "messages per second at most (0: no limit)"),
    Spec("concurrency", "NEWSLETTER_CONCURRENCY", "4", _int(1, 64), "messages in flight at once"),
    Spec(
        "send_processes",
        "NEWSLETTER_SEND_PROCESSES",
        "0",
        _int(0, 16),
        "processes a send is split over, sharing the connections (0: from 2,000 readers on, one a"
        " core, at most 2; 1: never split)",
    ),
    Spec(
        "min_score",
        "NEWSLETTER_MIN_SCORE",
        "0",
        _int(0, 100),
        "lowest signal score a dispatch takes",
    ),
    Spec(
        "max_signals", "NEWSLETTER_MAX_SIGNALS", "12", _int(1, 100), "most signals in one dispatch"
    ),
    Spec(
        "sections",
        "NEWSLETTER_SECTIONS",
        "AI,Markets,Policy,Energy,Science",
        _list,
        "order of the dispatch's sections (categories); others follow alphabetically",
    ),
    Spec(
        "auto_approve",
        "NEWSLETTER_AUTO_APPROVE",
        "false",
        _bool,
        "`weekly` sends without an editor's approval",
    ),
    Spec(
        "name",
        "NEWSLETTER_NAME",
        "The Brief",
        _text,
        "publication name in the header, footer and List-Id",
    ),
    Spec(
        "tagline",
        "NEWSLETTER_TAGLINE",
        "Stay ahead of the systems reshaping markets.",
        _text,
        "line under the name",
    ),
    Spec(
        "postal_address",
        "NEWSLETTER_POSTAL_ADDRESS",
        "The Brief, 1 Market Street, Springfield",
        _text,
        "sender's postal address in every footer",
    ),
    Spec(
        "logo_url",
        "NEWSLETTER_LOGO_URL",
        "",
        _optional_url,
        "logo image URL for the header (empty: the name as text)",
    ),
    Spec(
        "accent_color",
        "NEWSLETTER_ACCENT_COLOR",
        "#1f4e79",
        _colour,
        "accent colour of headings, scores and buttons",
    ),
    Spec(
        "list_id",
        "NEWSLETTER_LIST_ID",
        "",
        _text,
        "List-Id header value (empty: weekly.<From domain>)",
    ),
    Spec("smtp_host", "NEWSLETTER_SMTP_HOST", "localhost", _text, "SMTP server"),
    Spec("smtp_port", "NEWSLETTER_SMTP_PORT", "587", _int(1, 65535), "SMTP port"),
    Spec("smtp_username", "NEWSLETTER_SMTP_USERNAME", "", _text, "SMTP login (empty: no AUTH)"),
    Spec("smtp_password", "NEWSLETTER_SMTP_PASSWORD", "", _text, "SMTP password", secret=True),
    Spec(
        "smtp_security",
        "NEWSLETTER_SMTP_SECURITY",
        "starttls",
        _choice(*SMTP_SECURITY),
        "starttls | tls | none",
    ),
    Spec(
        "postmark_token", "POSTMARK_SERVER_TOKEN", "", _text, "Postmark server token", secret=True
    ),
    Spec("sendgrid_key", "SENDGRID_API_KEY", "", _text, "SendGrid API key", secret=True),
    Spec("mailgun_key", "MAILGUN_API_KEY", "", _text, "Mailgun API key", secret=True),
    Spec("mailgun_domain", "MAILGUN_DOMAIN", "", _text, "Mailgun sending domain"),
    Spec("resend_key", "RESEND_API_KEY", "", _text, "Resend API key", secret=True),
    Spec(
        "log_level",
        "NEWSLETTER_LOG_LEVEL",
        "INFO",
        _choice("debug", "info", "warning", "error"),
        "debug | info | warning | error",
    ),
    Spec(
        "confirm_days",
        "NEWSLETTER_CONFIRM_DAYS",
        "7",
        _int(1, 365),
        "days a confirmation link stays valid",
    ),
    Spec(
        "signup_ip_limit",
        "NEWSLETTER_SIGNUP_IP_LIMIT",
        "20",
        _int(0),
        "sign-ups accepted per client IP per hour (0: no limit)",
    ),
    Spec(
        "signup_address_limit",
        "NEWSLETTER_SIGNUP_ADDRESS_LIMIT",
        "5",
        _int(0),
        "sign-ups accepted per address per hour (0: no limit)",
    ),
    Spec(
        "check_deliverability",
        "NEWSLETTER_CHECK_DELIVERABILITY",
        "false",
        _bool,
        "look up the domain's MX records (DNS) when validating an address",
    ),
    Spec(
        "cors_origins",
        "NEWSLETTER_CORS_ORIGINS",
        "",
        _list,
        "comma-separated sites whose embedded form or JSON may post to /subscribe",
    ),
    Spec(
        "proxy_hops",
        "NEWSLETTER_PROXY_HOPS",
        "0",
        _int(0, 5),
        "reverse proxies in front of `serve` whose X-Forwarded-For is trusted",
    ),
    Spec(
        "consent_text",
        "NEWSLETTER_CONSENT_TEXT",
        "By subscribing, you agree to receive updates from {PUBLICATION}."
        " You can unsubscribe at any time.",
        _text,
        "consent shown under every sign-up form and stored with each sign-up"
        " ({publication} / {PUBLICATION}: the name)",
    ),
    Spec(
        "web_archive_dir",
        "NEWSLETTER_WEB_ARCHIVE_DIR",
        "archive",
        _path,
        "folder `serve` publishes at /archive/ (what `archive build` writes)",
    ),
    Spec(
        "postmark_webhook_user",
        "POSTMARK_WEBHOOK_USERNAME",
        "",
        _text,
        "basic-auth user in the Postmark webhook URL (empty: webhook off)",
    ),
    Spec(
        "postmark_webhook_password",
        "POSTMARK_WEBHOOK_PASSWORD",
        "",
        _text,
        "basic-auth password in the Postmark webhook URL",
        secret=True,
    ),
    Spec(
        "sendgrid_webhook_key",
        "SENDGRID_WEBHOOK_PUBLIC_KEY",
        "",
        _text,
        "SendGrid signed event webhook verification key (empty: webhook off)",
    ),
    Spec(
        "mailgun_webhook_key",
        "MAILGUN_WEBHOOK_SIGNING_KEY",
        "",
        _text,
        "Mailgun HTTP webhook signing key (empty: webhook off)",
        secret=True,
    ),
    Spec(
        "resend_webhook_secret",
        "RESEND_WEBHOOK_SECRET",
        "",
        _text,
        "Resend webhook signing secret, whsec_... (empty: webhook off)",
        secret=True,
    ),
    Spec(
        "smtp_verify",
        "NEWSLETTER_SMTP_VERIFY",
        "true",
        _bool,
        "verify the SMTP server's TLS certificate and host name (turn off only for a test server)",
    ),
    Spec(
        "smtp_timeout", "NEWSLETTER_SMTP_TIMEOUT", "30", _float(1), "SMTP socket timeout, seconds"
    ),
    Spec(
        "smtp_messages_per_connection",
        "NEWSLETTER_SMTP_MESSAGES_PER_CONNECTION",
        "100",
        _int(1),
        "messages sent over one SMTP connection before it is reopened",
    ),
    Spec(
        "dkim_key_file",
        "NEWSLETTER_DKIM_KEY_FILE",
        "",
        _optional_path,
        "PEM RSA private key to DKIM-sign SMTP mail with (empty: no signing)",
    ),
    Spec("dkim_selector", "NEWSLETTER_DKIM_SELECTOR", "", _text, "DKIM selector (s=)"),
    Spec(
        "dkim_domain",
        "NEWSLETTER_DKIM_DOMAIN",
        "",
        _text,
        "DKIM signing domain (d=; empty: the From domain)",
    ),
    Spec(
        "retry_limit",
        "NEWSLETTER_RETRY_LIMIT",
        "5",
        _int(1, 50),
        "attempts per message on temporary failures before it is recorded failed",
    ),
    Spec(
        "retry_backoff",
        "NEWSLETTER_RETRY_BACKOFF",
        "2",
        _float(0),
        "seconds before the first retry; doubles each attempt, with jitter",
    ),
    Spec(
        "retry_max_delay",
        "NEWSLETTER_RETRY_MAX_DELAY",
        "120",
        _float(0),
        "longest wait between attempts, seconds (caps Retry-After too)",
    ),
    Spec(
        "send_lease",
        "NEWSLETTER_SEND_LEASE",
        "60",
        _float(1),
        "seconds a send holds its dispatch without renewing (a killed run frees it after this)",
    ),
    Spec("http_timeout", "NEWSLETTER_HTTP_TIMEOUT", "30", _float(1), "email API timeout, seconds"),
    Spec(
        "postmark_stream",
        "NEWSLETTER_POSTMARK_STREAM",
        "broadcast",
        _text,
        "Postmark message stream (broadcast for newsletters)",
    ),
    Spec(
        "postmark_api_url",
        "NEWSLETTER_POSTMARK_API_URL",
        "https://api.postmarkapp.com",
        _url,
        "Postmark API base URL",
    ),
    Spec(
        "sendgrid_api_url",
        "NEWSLETTER_SENDGRID_API_URL",
        "https://api.sendgrid.com",
        _url,
        "SendGrid API base URL",
    ),
    Spec(
        "mailgun_api_url",
        "NEWSLETTER_MAILGUN_API_URL",
        "https://api.mailgun.net",
        _url,
        "Mailgun API base URL (EU: https://api.eu.mailgun.net)",
    ),
    Spec(
        "resend_api_url",
        "NEWSLETTER_RESEND_API_URL",
        "https://api.resend.com",
        _url,
        "Resend API base URL",
    ),
    Spec(
        "fetch_timeout",
        "NEWSLETTER_FETCH_TIMEOUT",
        "20",
        _float(1),
        "seconds `collect` waits for a feed server to send data (connect: at most 10)",
    ),
    Spec(
        "fetch_concurrency",
        "NEWSLETTER_FETCH_CONCURRENCY",
        "8",
        _int(1, 64),
        "feeds `collect` fetches at once",
    ),
    Spec(
        "fetch_max_mb",
        "NEWSLETTER_FETCH_MAX_MB",
        "10",
        _int(1, 200),
        "largest feed `collect` accepts, in MB after decompression",
    ),
    # editorial desk: machine-drafted reads, the ranker, the lead story, summary length
    Spec(
        "llm_url",
        "NEWSLETTER_LLM_URL",
        "",
        _optional_url,
        "OpenAI-compatible API base URL for `signals draft` (e.g. https://api.openai.com/v1,"
        " Ollama http://localhost:11434/v1, llama.cpp http://localhost:8080/v1)",
    ),
    Spec("llm_model", "NEWSLETTER_LLM_MODEL", "", _text, "model `signals draft` asks"),
    Spec(
        "llm_api_key",
        "NEWSLETTER_LLM_API_KEY",
        "",
        _text,
        "API key for NEWSLETTER_LLM_URL (empty: OPENAI_API_KEY, or none for a local server)",
        secret=True,
    ),
    Spec(
        "openai_api_key",
        "OPENAI_API_KEY",
        "",
        _text,
        "used for NEWSLETTER_LLM_URL when NEWSLETTER_LLM_API_KEY is empty",
        secret=True,
    ),
    Spec(
        "llm_timeout",
        "NEWSLETTER_LLM_TIMEOUT",
        "120",
        _float(1),
        "seconds `signals draft` waits for one answer",
    ),
    Spec(
        "llm_concurrency",
        "NEWSLETTER_LLM_CONCURRENCY",
        "4",
        _int(1, 64),
        "questions `signals draft` has in flight at once",
    ),
    Spec(
        "llm_retries",
        "NEWSLETTER_LLM_RETRIES",
        "3",
        _int(1, 20),
        "attempts per signal on 429, 5xx and timeouts before it is reported failed",
    ),
    Spec(
        "llm_max_wait",
        "NEWSLETTER_LLM_MAX_WAIT",
        "60",
        _float(0),
        "longest wait between attempts, seconds (caps Retry-After too)",
    ),
    Spec(
        "draft_auto_accept",
        "NEWSLETTER_DRAFT_AUTO_ACCEPT",
        "false",
        _bool,
        "accept machine drafts without the editor's review (they then reach readers)",
    ),
    Spec(
        "draft_disclosure",
        "NEWSLETTER_DRAFT_DISCLOSURE",
        "false",
        _bool,
        "show NEWSLETTER_DRAFT_DISCLOSURE_TEXT on signals whose read began as a machine draft",
    ),
    Spec(
        "draft_disclosure_text",
        "NEWSLETTER_DRAFT_DISCLOSURE_TEXT",
        "This read was drafted with the help of a language model.",
        _text,
        "the disclosure line",
    ),
    Spec(
        "summary_length",
        "NEWSLETTER_SUMMARY_LENGTH",
        "560",
        _int(0),
        "characters of a summary a card shows (email and signal pages), cut at a word with …"
        " (0: all; the store keeps it all); the seed pages show about 550",
    ),
    Spec(
        "select_unscored",
        "NEWSLETTER_SELECT_UNSCORED",
        "false",
        _bool,
        "let `dispatch build` select signals without an editorial score (pinned ones always go)",
    ),
    Spec(
        "rank_refit_after",
        "NEWSLETTER_RANK_REFIT_AFTER",
        "10",
        _int(0),
        "new editorial scores after which the ranker refits itself (0: only `signals rank --fit`)",
    ),
    # Amazon SES sender and its SNS webhook (issue 12); the AWS_* names are AWS's own
    Spec("aws_access_key_id", "AWS_ACCESS_KEY_ID", "", _text, "AWS access key id (SES sender)"),
    Spec(
        "aws_secret_access_key",
        "AWS_SECRET_ACCESS_KEY",
        "",
        _text,
        "AWS secret access key (SES sender)",
        secret=True,
    ),
    Spec(
        "aws_session_token",
        "AWS_SESSION_TOKEN",
        "",
        _text,
        "AWS session token, for temporary credentials (empty: none)",
        secret=True,
    ),
    Spec("aws_region", "AWS_REGION", "", _text, "AWS region of the SES account, e.g. eu-west-1"),
    Spec(
        "ses_configuration_set",
        "NEWSLETTER_SES_CONFIGURATION_SET",
        "",
        _text,
        "SES configuration set every message is sent with (empty: none)",
    ),
    Spec(
        "ses_api_url",
        "NEWSLETTER_SES_API_URL",
        "",
        _optional_url,
        "SES API base URL (empty: https://email.<AWS_REGION>.amazonaws.com)",
    ),
    Spec(
        "ses_topic_arns",
        "NEWSLETTER_SES_SNS_TOPIC_ARNS",
        "",
        _list,
        "comma-separated SNS topics whose SES bounces and complaints"
        " /webhooks/ses accepts (empty: webhook off)",
    ),
    # the signal stream (public signal pages)
    Spec(
        "stream_disclaimer",
        "NEWSLETTER_STREAM_DISCLAIMER",
        "This signal links to a primary source. {publication} monitors and indexes it as part"
        " of the live intelligence stream — we do not republish source content.",
        _text,
        "under Original report on each signal page ({publication}: the name)",
    ),
    Spec(
        "stream_tracked_by",
        "NEWSLETTER_STREAM_TRACKED_BY",
        "Tracked by {publication} · live intelligence network",
        _text,
        "last line of Original report on each signal page ({publication}: the name)",
    ),
    Spec(
        "stream_page_size",
        "NEWSLETTER_STREAM_PAGE_SIZE",
        "20",
        _int(1, 200),
        "signals per page of the stream (/signals/)",
    ),
    # web service hardening (security, issue 11)
    Spec(
        "trusted_proxy",
        "NEWSLETTER_TRUSTED_PROXY",
        "127.0.0.1",
        _proxy_address,
        "address the reverse proxy connects from; only its X-Forwarded-For is used"
        " (`*`: any peer, only if nothing else can reach `serve`)",
    ),
    Spec(
        "web_channel_timeout",
        "NEWSLETTER_WEB_CHANNEL_TIMEOUT",
        "30",
        _int(1, 3600),
        "seconds `serve` keeps a connection that sends nothing (slow or stalled clients)",
    ),
    Spec(
        "web_connection_limit",
        "NEWSLETTER_WEB_CONNECTION_LIMIT",
        "1000",
        _int(10, 100_000),
        "connections one `serve` worker keeps open at once (more wait in the listen queue)",
    ),
    # engagement: click counting (issue 16)
    Spec(
        "tracking",
        "NEWSLETTER_TRACKING",
        "aggregate",
        _choice("off", "aggregate", "per-reader"),
        "click counting: off (links as they are) / aggregate (clicks per link, nothing about"
        " a reader) / per-reader (also which reader clicked; stated in every footer)",
    ),
    Spec(
        "track_opens",
        "NEWSLETTER_TRACK_OPENS",
        "false",
        _bool,
        "add an open pixel (opens are inflated by privacy proxies and never counted per reader)",
    ),
    Spec(
        "click_retention_days",
        "NEWSLETTER_CLICK_RETENTION_DAYS",
        "90",
        _int(1, 3650),
        "days raw click rows are kept before they are folded into per-link counts",
    ),
    # delivery accounting (issue 10)
    Spec(
        "error_threshold",
        "NEWSLETTER_ERROR_THRESHOLD",
        "10",
        _int(0),
        "failed hand-offs in a row not about any recipient (connect, MAIL or DATA refused, API"
        " 5xx) that pause a send, the rest left queued (0: never pause)",
    ),
    Spec(
        "batch_size",
        "NEWSLETTER_BATCH_SIZE",
        "100",
        _int(1, 1000),
        "messages per email API call at most (the provider's own limit applies too); a killed"
        " run leaves at most (NEWSLETTER_CONCURRENCY + 1) calls unanswered, one more a further send"
        " process",
    ),
    # readers' preferences and the welcome mail (issue 14)
    Spec(
        "signup_sections",
        "NEWSLETTER_SIGNUP_SECTIONS",
        "false",
        _bool,
        "the sign-up form offers the sections as checkboxes (the JSON sign-up takes `sections`"
        " either way)",
    ),
    Spec(
        "welcome",
        "NEWSLETTER_WELCOME",
        "true",
        _bool,
        "a welcome mail on a reader's first confirmation",
    ),
    Spec(
        "welcome_note",
        "NEWSLETTER_WELCOME_NOTE",
        "",
        _text,
        "the publication's note opening the welcome mail, plain text ({publication} for the"
        " name; empty: the tagline)",
    ),
)

#: settings whose text may name the publication: {publication}, or {PUBLICATION} in capitals
NAMED_TEXTS = ("consent_text", "stream_disclaimer", "stream_tracked_by", "welcome_note")


def name_in(text: str, name: str) -> str:
    return text.replace("{publication}", name).replace("{PUBLICATION}", name.upper())


@dataclass(frozen=True)
class Settings:
    db: Path
    sender: str
    from_addr: str
    reply_to: str
    public_url: str
    secret_key: str = field(repr=False)
    timezone: ZoneInfo
    outbox: Path
    rate: float
    concurrency: int
    send_processes: int
    min_score: int
    max_signals: int
    sections: tuple[str, ...]
    auto_approve: bool
    name: str
    tagline: str
    postal_address: str
    logo_url: str
    accent_color: str
    list_id: str
    smtp_host: str
    smtp_port: int
    smtp_username: str
    smtp_password: str = field(repr=False)
    smtp_security: str
    postmark_token: str = field(repr=False)
    sendgrid_key: str = field(repr=False)
    mailgun_key: str = field(repr=False)
    mailgun_domain: str
    resend_key: str = field(repr=False)
    log_level: str
    confirm_days: int
    signup_ip_limit: int
    signup_address_limit: int
    check_deliverability: bool
    cors_origins: tuple[str, ...]
    proxy_hops: int
    consent_text: str
    web_archive_dir: Path
    postmark_webhook_user: str
    postmark_webhook_password: str = field(repr=False)
    sendgrid_webhook_key: str
    mailgun_webhook_key: str = field(repr=False)
    resend_webhook_secret: str = field(repr=False)
    smtp_verify: bool
    smtp_timeout: float
    smtp_messages_per_connection: int
    dkim_key_file: Path | None
    dkim_selector: str
    dkim_domain: str
    retry_limit: int
    retry_backoff: float
    retry_max_delay: float
    send_lease: float
    http_timeout: float
    postmark_stream: str
    postmark_api_url: str
    sendgrid_api_url: str
    mailgun_api_url: str
    resend_api_url: str
    fetch_timeout: float
    fetch_concurrency: int
    fetch_max_mb: int
    # editorial desk
    llm_url: str
    llm_model: str
    llm_api_key: str = field(repr=False)
    openai_api_key: str = field(repr=False)
    llm_timeout: float
    llm_concurrency: int
    llm_retries: int
    llm_max_wait: float
    draft_auto_accept: bool
    draft_disclosure: bool
    draft_disclosure_text: str
    summary_length: int
    select_unscored: bool
    rank_refit_after: int
    # Amazon SES sender and its SNS webhook
    aws_access_key_id: str
    aws_secret_access_key: str = field(repr=False)
    aws_session_token: str = field(repr=False)
    aws_region: str
    ses_configuration_set: str
    ses_api_url: str
    ses_topic_arns: tuple[str, ...]
    # the signal stream
    stream_disclaimer: str
    stream_tracked_by: str
    stream_page_size: int
    # web service hardening (security, issue 11)
    trusted_proxy: str
    web_channel_timeout: int
    web_connection_limit: int
    # engagement: click counting (issue 16)
    tracking: str
    track_opens: bool
    click_retention_days: int
    # delivery accounting (issue 10)
    error_threshold: int
    batch_size: int
    # readers' preferences and the welcome mail (issue 14)
    signup_sections: bool
    welcome: bool
    welcome_note: str

    @property
    def from_email(self) -> str:
        return parseaddr(self.from_addr)[1]

    @property
    def from_domain(self) -> str:
        return self.from_email.rpartition("@")[2]

    @property
    def list_id_value(self) -> str:
        return self.list_id or f"weekly.{self.from_domain}"

    @property
    def llm_key(self) -> str:
        """NEWSLETTER_LLM_API_KEY, else OPENAI_API_KEY (a local server needs neither)."""
        return self.llm_api_key or self.openai_api_key

    def replace(self, **changes: Any) -> Settings:
        """A copy with some values changed (tests, and `--db`-style overrides)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: str | os.PathLike[str] | None = ".env"
) -> Settings:
    """Read settings: the process environment wins over `.env`, which wins over defaults."""
    merged: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        from dotenv import dotenv_values  # ~20 ms: only when there is a file to read

        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    for spec in SETTINGS:
        raw = merged.get(spec.env, spec.default)
        try:
            values[spec.attr] = spec.parse(raw)
        except ValueError as exc:
            raise SettingsError(f"{spec.env}: {exc}") from None
    for attr in NAMED_TEXTS:
        values[attr] = name_in(values[attr], values["name"])
    settings = Settings(**values)
    _check_sender_credentials(settings)
    return settings


_CREDENTIALS = {
    "postmark": ("postmark_token",),
    "sendgrid": ("sendgrid_key",),
    "mailgun": ("mailgun_key", "mailgun_domain"),
    "resend": ("resend_key",),
    "ses": ("aws_access_key_id", "aws_secret_access_key", "aws_region"),
}


def _check_sender_credentials(settings: Settings) -> None:
    by_attr = {spec.attr: spec.env for spec in SETTINGS}
    for attr in _CREDENTIALS.get(settings.sender, ()):
        if not getattr(settings, attr):
            raise SettingsError(
                f"{by_attr[attr]}: required when NEWSLETTER_SENDER={settings.sender}"
            )


def env_example() -> str:
    """The text of `.env.example`: every setting, its default and what it means."""
    lines = [
        "# Every setting of newsletter, with its default. Copy to .env and change what you need;",
        "# the process environment wins over .env. Generated from newsletter/settings.py.",
        "",
    ]
    for spec in SETTINGS:
        lines.append(f"# {spec.help}")
        lines.append(f"{spec.env}={spec.default}")
        lines.append("")
    return "\n".join(lines)


def settings_table() -> str:
    """The README's settings table (between its `settings:start` and `settings:end` markers)."""
    lines = ["| setting | default | meaning |", "| --- | --- | --- |"]
    for spec in SETTINGS:
        default = f"`{spec.default}`" if spec.default else "(empty)"
        lines.append(f"| `{spec.env}` | {default} | {spec.help.replace('|', '/')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(settings_table() if "--markdown" in sys.argv else env_example())
