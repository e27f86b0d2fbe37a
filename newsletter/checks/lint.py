"""Message lint: the headers, MIME structure and line lengths mailbox providers insist on."""

from __future__ import annotations

import re
from email.message import EmailMessage

from newsletter.checks.htmlscan import scan_html
from newsletter.checks.parsed import Parsed
from newsletter.checks.report import Finding, error, info, warning

REQUIRED = ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe", "List-Id")
ONE_CLICK = "List-Unsubscribe=One-Click"
SMTP_LINE = 998  # RFC 5322 2.1.1
QP_LINE = 76  # RFC 2045 6.7
SUBJECT_LONG = 78
ENCODINGS = {"7bit", "8bit", "quoted-printable", "base64"}
_ANGLE_URLS = re.compile(r"<([^>]*)>")
_FIX_BUILD = "build messages with newsletter.delivery.compose.Composer (it sets every list header)"


def check_lint(message: Parsed, *, production: bool) -> list[Finding]:
    return [
        *_headers(message.mime, production),
        *_structure(message.mime),
        *_lines(message),
        *_subject(message.subject),
        *_preheader(message.html),
    ]


def _headers(mime: EmailMessage, production: bool) -> list[Finding]:
    found = [
        error("lint", f"header {name} is missing", _FIX_BUILD)
        for name in REQUIRED
        if not str(mime.get(name, "")).strip()
    ]
    post = " ".join(str(mime.get("List-Unsubscribe-Post", "")).split())
    if not post:
        found.append(
            error(
                "lint",
                "header List-Unsubscribe-Post is missing: Gmail and Yahoo require one-click"
                " unsubscribe (RFC 8058) from bulk senders",
                f"add 'List-Unsubscribe-Post: {ONE_CLICK}'",
            )
        )
    elif post != ONE_CLICK:
        found.append(
            error("lint", f"List-Unsubscribe-Post is {post!r}", f"it must be exactly {ONE_CLICK!r}")
        )
    unsubscribe = str(mime.get("List-Unsubscribe", ""))
    if unsubscribe:
        urls = _ANGLE_URLS.findall(unsubscribe)
        if not any(u.startswith("https://") for u in urls):
            text = "List-Unsubscribe has no https URL, so one-click unsubscribe cannot work"
            fix = "set NEWSLETTER_PUBLIC_URL to the https address of the web service"
            if production:
                found.append(error("lint", text, fix))
            else:
                found.append(
                    info(
                        "lint",
                        f"{text} (fine with test settings: the public URL is not https)",
                        fix,
                    )
                )
    message_id = str(mime.get("Message-ID", "")).strip()
    if message_id and not re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", message_id):
        found.append(error("lint", f"Message-ID {message_id!r} is not <id@domain>", _FIX_BUILD))
    return found


def _structure(mime: EmailMessage) -> list[Finding]:
    found: list[Finding] = []
    if mime.get_content_type() != "multipart/alternative":
        found.append(
            error(
                "lint",
                f"message is {mime.get_content_type()}, not multipart/alternative",
                "send a plain-text part and an HTML part as alternatives",
            )
        )
    kinds = [p.get_content_type() for p in mime.walk() if not p.is_multipart()]
    for needed in ("text/plain", "text/html"):
        if needed not in kinds:
            found.append(
                error("lint", f"no {needed} part", "send both a plain-text and an HTML part")
            )
    for part in mime.walk():
        if part.is_multipart():
            continue
        kind = part.get_content_type()
        charset = (part.get_content_charset() or "us-ascii").lower()
        if kind.startswith("text/") and charset not in ("utf-8", "us-ascii"):
            found.append(warning("lint", f"{kind} part is in {charset}", "encode text as UTF-8"))
        cte = str(part.get("Content-Transfer-Encoding", "7bit")).strip().lower()
        if cte not in ENCODINGS:
            found.append(
                error("lint", f"{kind} part has unknown transfer encoding {cte!r}", _FIX_BUILD)
            )
            continue
        payload = part.get_payload()
        if cte == "7bit" and isinstance(payload, str) and not payload.isascii():
            found.append(
                error(
                    "lint",
                    f"{kind} part is declared 7bit but holds 8-bit characters",
                    "encode it as quoted-printable or base64",
                )
            )
        if cte == "quoted-printable" and isinstance(payload, str):
            longest = max((len(line) for line in payload.splitlines()), default=0)
            if longest > QP_LINE:
                found.append(
                    error(
                        "lint",
                        f"{kind} part has a quoted-printable line of {longest} characters"
                        f" (RFC 2045 allows {QP_LINE})",
                        "serialise with email.policy.SMTP.clone(max_line_length=76)",
                    )
                )
    return found


def _lines(message: Parsed) -> list[Finding]:
    head, _, _ = message.raw.partition(b"\r\n\r\n" if b"\r\n\r\n" in message.raw else b"\n\n")
    found: list[Finding] = []
    if not head.isascii():
        found.append(
            error(
                "lint",
                "a header holds raw 8-bit characters",
                "encode non-ASCII header text (RFC 2047); the email package does this",
            )
        )
    longest = max((len(line.rstrip(b"\r")) for line in message.raw.split(b"\n")), default=0)
    if longest > SMTP_LINE:
        found.append(
            error(
                "lint",
                f"a line of the message is {longest} characters; SMTP allows {SMTP_LINE}",
                "use quoted-printable or base64 for long HTML lines",
            )
        )
    return found


def _subject(subject: str) -> list[Finding]:
    subject = " ".join(subject.split())
    if not subject:
        return [
            error(
                "lint", "the subject is empty", "set one with `newsletter dispatch set --subject`"
            )
        ]
    found: list[Finding] = []
    if len(subject) > SUBJECT_LONG:
        found.append(
            warning(
                "lint",
                f"subject is {len(subject)} characters; phones show about 40-60",
                f"keep it under {SUBJECT_LONG} characters, the point first",
            )
        )
    letters = [c for c in subject if c.isalpha()]
    if len(letters) >= 5 and all(c.isupper() for c in letters):
        found.append(
            warning(
                "lint",
                f"subject is all capitals ({subject!r}): filters and readers take it as shouting",
                "write the subject in sentence case",
            )
        )
    return found


def _preheader(html: str) -> list[Finding]:
    preheader = scan_html(html).preheader if html else None
    if not preheader:
        return [
            warning(
                "lint",
                "no preheader: inboxes will show the email's first words (often 'View in browser')",
                "set the dispatch's preheader; the template hides it at the top of the body",
            )
        ]
    return []
