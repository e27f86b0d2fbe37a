"""One reader's message: RFC 5322 multipart/alternative with the list headers, built from the
dispatch's compiled parts. Values that reach a header are checked for CR/LF first.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, localtime, parseaddr

from newsletter.errors import SendError

POLICY = SMTP.clone(max_line_length=76)


@dataclass(frozen=True)
class Message:
    """What a sender needs: envelope, headers and both bodies (API senders use the parts)."""

    from_addr: str
    to_addr: str
    to_name: str
    subject: str
    html: str
    text: str
    message_id: str
    headers: dict[str, str] = field(default_factory=dict)
    tag: str = ""

    @property
    def to_header(self) -> str:
        return formataddr((self.to_name, self.to_addr)) if self.to_name else self.to_addr

    def as_bytes(self) -> bytes:
        return build_mime(self).as_bytes(policy=POLICY)


def check_header_value(name: str, value: str) -> str:
    if "\r" in value or "\n" in value or "\x00" in value:
        raise SendError(f"{name}: line breaks are not allowed in a header value")
    return value


def new_message_id(domain: str) -> str:
    return f"<{int(time.time())}.{secrets.token_hex(12)}@{domain}>"


def build_mime(message: Message) -> EmailMessage:
    mime = EmailMessage(policy=POLICY)
    display, address = parseaddr(message.from_addr)
    local, _, domain = address.rpartition("@")
    mime["From"] = Address(check_header_value("From", display), local, domain)
    to_local, _, to_domain = message.to_addr.rpartition("@")
    mime["To"] = Address(
        check_header_value("name", message.to_name), check_header_value("To", to_local), to_domain
    )
    mime["Subject"] = check_header_value("Subject", message.subject)
    mime["Date"] = format_datetime(localtime())
    mime["Message-ID"] = message.message_id
    for name, value in message.headers.items():
        mime[name] = check_header_value(name, value)
    mime.set_content(message.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    mime.add_alternative(message.html, subtype="html", charset="utf-8", cte="quoted-printable")
    return mime
