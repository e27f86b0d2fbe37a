"""The built message as the checks see it: the raw bytes and its decoded parts."""

from __future__ import annotations

from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage


@dataclass(frozen=True)
class Parsed:
    raw: bytes
    mime: EmailMessage
    html: str
    text: str

    @classmethod
    def from_bytes(cls, raw: bytes) -> Parsed:
        mime = message_from_bytes(raw, policy=policy.default)
        assert isinstance(mime, EmailMessage)
        html = text = ""
        for part in mime.walk():
            if part.is_multipart() or part.get_content_disposition() == "attachment":
                continue
            kind = part.get_content_type()
            if kind == "text/html" and not html:
                html = _decoded(part)
            elif kind == "text/plain" and not text:
                text = _decoded(part)
        return cls(raw, mime, html, text)

    @property
    def subject(self) -> str:
        return str(self.mime.get("Subject", ""))


def _decoded(part: EmailMessage) -> str:
    try:
        return str(part.get_content())
    except (LookupError, UnicodeDecodeError):
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
