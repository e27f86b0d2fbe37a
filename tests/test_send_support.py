"""Shared pieces of the delivery tests (no tests here): a week ready to send, subscribers in
bulk, and real SMTP servers on 127.0.0.1 built on aiosmtpd, including one that injects faults.
"""

from __future__ import annotations

import email
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from newsletter.demo import load_sample
from newsletter.dispatch.build import approve, build_dispatch
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.store._rows import now_iso
from newsletter.weeks import Week

SAMPLE = Path(__file__).parent.parent / "newsletter" / "sample"
WEEK = Week(2026, 24)


def ready_week(store: Store, settings: Settings, *, approved: bool = True) -> None:
    """The bundled sample week, collected, annotated, built and (by default) approved."""
    load_sample(store, now=datetime(2026, 6, 14, tzinfo=UTC))
    build_dispatch(store, settings, WEEK)
    if approved:
        approve(store, settings, WEEK)


def add_subscribers(
    store: Store, count: int, *, status: str = "active", start: int = 0
) -> list[str]:
    """`count` subscribers in one transaction (fast enough for thousands)."""
    now = now_iso()
    emails = [f"reader{i:06d}@example.com" for i in range(start, start + count)]
    with store.transaction():
        for i, address in zip(range(start, start + count), emails, strict=True):
            store.db.execute(
                "INSERT INTO subscribers (email, name, status, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [address, f"Reader {i}", status, now, now],
            )
    return emails


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    rcpt: list[str]
    data: bytes

    def parsed(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value]


@dataclass
class Sink:
    """An aiosmtpd handler that keeps every message it accepts (thread-safe)."""

    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: hooks for fault injection: return an SMTP reply to refuse, None to accept
    on_rcpt: Callable[[Any, Any, str], str | None] | None = None
    on_data: Callable[[Any, Any, Any], str | None] | None = None
    on_mail: Callable[[Any, Any, str], str | None] | None = None

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.on_mail and (reply := self.on_mail(server, session, address)):
            return reply
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.on_rcpt and (reply := self.on_rcpt(server, session, address)):
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.on_data and (reply := self.on_data(server, session, envelope)):
            return reply
        if self.delay:
            time.sleep(self.delay)  # a slow server: keeps a run going long enough to kill it
        with self.lock:
            self.received.append(Received(list(envelope.rcpt_tos), envelope.content))
            n = len(self.received)
        return f"250 2.0.0 Ok: queued as Q{n:06d}"

    def recipients(self) -> Counter[str]:
        with self.lock:
            return Counter(r for m in self.received for r in m.rcpt)


class SmtpServer:
    """aiosmtpd on 127.0.0.1, started in a thread of the test process."""

    def __init__(self, handler: Sink, **kwargs: Any) -> None:
        self.handler = handler
        self.port = free_port()
        self.controller = Controller(
            handler, hostname="127.0.0.1", port=self.port, data_size_limit=10_000_000, **kwargs
        )

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def env(self) -> dict[str, str]:
        return {
            "NEWSLETTER_SENDER": "smtp",
            "NEWSLETTER_SMTP_HOST": "127.0.0.1",
            "NEWSLETTER_SMTP_PORT": str(self.port),
            "NEWSLETTER_SMTP_SECURITY": "none",
        }


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (no CA trusts it)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
