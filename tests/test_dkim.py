"""DKIM: signatures made with an OpenSSL-backed key verify with dkimpy, cover the one-click
unsubscribe header, and break when a signed header is changed."""

from __future__ import annotations

from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from test_send_support import WEEK, Sink, SmtpServer, add_subscribers, ready_week

from newsletter.delivery.deliver import send_dispatch
from newsletter.delivery.dkim import DkimSigner
from newsletter.delivery.message import Message
from newsletter.delivery.senders import make_sender
from newsletter.errors import SettingsError
from newsletter.settings import Settings
from newsletter.store import Store


@pytest.fixture(scope="module")
def key_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture
def key_file(tmp_path: Path, key_pem: bytes) -> Path:
    path = tmp_path / "dkim.pem"
    path.write_bytes(key_pem)
    return path


def _dns(signer: DkimSigner) -> object:
    record = signer.public_txt().encode()

    def lookup(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"brief._domainkey.example.org."
        return record

    return lookup


def _message() -> bytes:
    return Message(
        from_addr="The Brief <brief@example.org>",
        to_addr="ann@example.com",
        to_name="Ann Ö",
        subject="Issue 1: Wafer capex — up 20 %",
        html="<p>" + "Hello " * 2000 + "</p>",
        text="Hello\n" * 50,
        message_id="<1.abc@example.org>",
        headers={
            "List-Unsubscribe": "<https://x.example/unsubscribe/t>, <mailto:brief@example.org>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "List-Id": "The Brief <weekly.example.org>",
        },
    ).as_bytes()


def test_signature_verifies_with_dkimpy_and_covers_one_click_unsubscribe(key_file: Path) -> None:
    signer = DkimSigner.from_file(key_file, "brief", "example.org")
    signed = signer.sign(_message())
    checker = dkim.DKIM(signed)
    assert checker.verify(dnsfunc=_dns(signer))
    signed_names = {name for name, _ in checker.signed_headers}
    for name in (b"from", b"to", b"subject", b"date", b"message-id", b"list-unsubscribe"):
        assert name in signed_names
    assert b"list-unsubscribe-post" in signed_names
    assert all(len(line) <= 998 for line in signed.split(b"\r\n"))


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"List-Unsubscribe=One-Click", b"List-Unsubscribe=Two-Click"),
        (b"To: ", b"To: Mallory <mallory@example.net>, "),
        (b"Hello Hello", b"Hullo Hello"),
    ],
)
def test_a_changed_header_or_body_fails_verification(
    key_file: Path, old: bytes, new: bytes
) -> None:
    signer = DkimSigner.from_file(key_file, "brief", "example.org")
    signed = signer.sign(_message())
    assert old in signed
    assert not dkim.verify(signed.replace(old, new, 1), dnsfunc=_dns(signer))


def test_every_message_sent_over_smtp_is_signed(
    store: Store, settings: Settings, key_file: Path
) -> None:
    ready_week(store, settings)
    add_subscribers(store, 25)
    sink = Sink()
    with SmtpServer(sink) as server:
        configured = settings.replace(
            sender="smtp",
            smtp_host="127.0.0.1",
            smtp_port=server.port,
            smtp_security="none",
            dkim_key_file=key_file,
            dkim_selector="brief",
        )
        with make_sender(configured) as sender:
            report = send_dispatch(store, configured, sender, WEEK)
    assert report.ok and len(sink.received) == 25
    signer = DkimSigner.from_file(key_file, "brief", "example.org")
    for received in sink.received:
        assert received.data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256;")
        assert dkim.verify(received.data, dnsfunc=_dns(signer))


def test_unusable_key_settings_are_named(tmp_path: Path, settings: Settings, key_file) -> None:
    with pytest.raises(SettingsError, match=r"^NEWSLETTER_DKIM_KEY_FILE: cannot read"):
        DkimSigner.from_file(tmp_path / "missing.pem", "brief", "example.org")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    with pytest.raises(
        SettingsError, match=r"^NEWSLETTER_DKIM_KEY_FILE: .* not an unencrypted PEM"
    ):
        DkimSigner.from_file(junk, "brief", "example.org")
    with pytest.raises(SettingsError, match=r"^NEWSLETTER_DKIM_SELECTOR: required"):
        make_sender(settings.replace(sender="smtp", dkim_key_file=key_file))


def test_send_with_a_missing_key_stops_with_one_line(run, tmp_path: Path) -> None:
    result = run(
        "send",
        "--week",
        str(WEEK),
        extra_env={
            "NEWSLETTER_SENDER": "smtp",
            "NEWSLETTER_DKIM_KEY_FILE": str(tmp_path / "nope.pem"),
            "NEWSLETTER_DKIM_SELECTOR": "brief",
        },
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: NEWSLETTER_DKIM_KEY_FILE: cannot read {tmp_path / 'nope.pem'} (No such file or"
        " directory)"
    ]
