"""Sending through a real SMTP server on 127.0.0.1 (aiosmtpd): everyone once, headers right,
faults injected by the server still end with everyone delivered once or reported.
"""

from __future__ import annotations

import re
import threading
from collections import Counter

import pytest
from test_send_support import WEEK, Sink, SmtpServer, add_subscribers, ready_week

from newsletter.delivery.deliver import send_dispatch
from newsletter.delivery.senders import SmtpConfig, SmtpSender
from newsletter.settings import Settings
from newsletter.store import Store


def _sender(server: SmtpServer, **kwargs) -> SmtpSender:
    return SmtpSender(SmtpConfig("127.0.0.1", server.port, security="none", **kwargs))


def test_a_thousand_subscribers_each_get_exactly_one_clean_message(
    store: Store, settings: Settings
) -> None:
    ready_week(store, settings)
    active = add_subscribers(store, 1000)
    add_subscribers(store, 20, status="unsubscribed", start=5000)
    add_subscribers(store, 5, status="pending", start=6000)
    settings = settings.replace(concurrency=4)
    with SmtpServer(Sink()) as server, _sender(server, messages_per_connection=300) as sender:
        report = send_dispatch(store, settings, sender, WEEK)
    assert report.ok and report.sent == 1000 and report.failed == 0
    got = server.handler.recipients()
    assert set(got) == set(active)
    assert max(got.values()) == 1
    ids = set()
    for received in server.handler.received:
        parsed = received.parsed()
        assert not parsed.defects
        assert parsed.get_content_type() == "multipart/alternative"
        plain, html = parsed.iter_parts()
        assert plain.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
        assert plain.get_content_charset() == "utf-8" and html.get_content_charset() == "utf-8"
        assert parsed["To"].addresses[0].addr_spec == received.rcpt[0]
        assert parsed["From"].addresses[0].display_name == "The Brief"
        assert parsed["Date"] and parsed["Subject"]
        unsubscribe = parsed["List-Unsubscribe"]
        assert re.fullmatch(
            r"<http://localhost:8000/unsubscribe/[\w.-]+>, <mailto:.+>", unsubscribe
        )
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert parsed["List-Id"]
        ids.add(parsed["Message-ID"])
        assert all(len(line) <= 998 for line in received.data.split(b"\r\n"))
    assert len(ids) == 1000  # unique Message-IDs
    deliveries = store.deliveries.counts(store.dispatches.get(str(WEEK))["id"])
    assert deliveries["sent"] == 1000 and deliveries["queued"] == 0
    assert store.dispatches.get(str(WEEK))["status"] == "sent"


def test_a_faulty_server_still_ends_with_everyone_delivered_once_or_reported(
    store: Store, settings: Settings
) -> None:
    """421 on some connections, 451 on some recipients, 550 on one, connections dropped before
    and after the message data."""
    ready_week(store, settings)
    emails = add_subscribers(store, 120)
    lock = threading.Lock()
    seen: Counter[str] = Counter()
    mails = [0]
    rejected, deferred = emails[7], set(emails[10:20])
    cut_early, cut_late = emails[33], emails[44]

    def on_mail(server, session, address):
        with lock:
            mails[0] += 1
            if mails[0] % 25 == 0:
                return "421 4.7.0 too busy, closing connection"
        return None

    def on_rcpt(server, session, address):
        with lock:
            seen[address] += 1
            first = seen[address] == 1
        if address == rejected:
            return "550 5.1.1 no such user here"
        if address in deferred and first:
            return "451 4.3.0 try again later"
        if address == cut_early and first:
            server.transport.close()  # dies before any message data: safe to retry
            return "451 dropped"
        return None

    def on_data(server, session, envelope):
        if envelope.rcpt_tos == [cut_late]:
            server.transport.close()  # the data arrived, the answer never leaves
            return "451 dropped"
        return None

    sink = Sink(on_mail=on_mail, on_rcpt=on_rcpt, on_data=on_data)
    settings = settings.replace(concurrency=3, retry_backoff=0.01, retry_limit=4)
    with SmtpServer(sink) as server, _sender(server) as sender:
        report = send_dispatch(store, settings, sender, WEEK)
    got = sink.recipients()
    assert max(got.values()) == 1
    assert set(got) == set(emails) - {rejected, cut_late}
    assert report.sent == 118 and report.failed == 1 and report.unknown == 1
    assert not report.ok
    assert any("550 5.1.1" in e for e in report.errors)
    dispatch_id = store.dispatches.get(str(WEEK))["id"]
    failures = {f["email"]: f for f in store.deliveries.failures(dispatch_id)}
    assert failures[rejected]["status"] == "failed" and "550" in failures[rejected]["last_error"]
    # whether the server kept it cannot be known: reported, not sent a second time
    assert failures[cut_late]["status"] == "unknown" and seen[cut_late] == 1
    # a hard bounce stops mail to that address
    assert store.subscribers.get_by_email(rejected)["status"] == "bounced"
    retried = store.db.execute(
        "SELECT count(*) FROM deliveries WHERE dispatch_id = ? AND attempts > 1", [dispatch_id]
    ).fetchone()[0]
    assert retried >= len(deferred) + 1


def test_temporary_failures_past_the_limit_are_recorded_and_can_be_retried(
    store: Store, settings: Settings
) -> None:
    ready_week(store, settings)
    emails = add_subscribers(store, 5)
    refuse = {"on": True}
    sink = Sink(on_rcpt=lambda s, sess, a: "452 4.2.2 mailbox full" if refuse["on"] else None)
    settings = settings.replace(concurrency=1, retry_backoff=0.001, retry_limit=2)
    with SmtpServer(sink) as server:
        with _sender(server) as sender:
            first = send_dispatch(store, settings, sender, WEEK)
        assert first.failed == 5 and first.sent == 0
        assert all("452" in e for e in first.errors)
        refuse["on"] = False
        with _sender(server) as sender:
            second = send_dispatch(store, settings, sender, WEEK, retry_failed=True)
    assert second.sent == 5 and second.ok
    assert sorted(sink.recipients()) == sorted(emails)


def test_an_unreachable_server_fails_with_the_reason(store: Store, settings: Settings) -> None:
    ready_week(store, settings)
    add_subscribers(store, 2)
    settings = settings.replace(concurrency=1, retry_backoff=0.001, retry_limit=2)
    sender = SmtpSender(SmtpConfig("127.0.0.1", 9, security="none", timeout=2))
    report = send_dispatch(store, settings, sender, WEEK)
    assert report.failed == 2 and not report.ok
    assert "cannot connect" in report.errors[0]


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_certificates_are_verified_unless_turned_off(
    store: Store, settings: Settings, tmp_path, security: str
) -> None:
    import ssl

    from test_send_support import self_signed

    ready_week(store, settings)
    emails = add_subscribers(store, 3)
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    extra = {"tls_context": context} if security == "starttls" else {"ssl_context": context}
    if security == "starttls":
        extra["require_starttls"] = True
    sink = Sink()
    settings = settings.replace(concurrency=1, retry_limit=1)
    with SmtpServer(sink, **extra) as server:
        strict = SmtpSender(SmtpConfig("127.0.0.1", server.port, security=security))
        with strict:
            report = send_dispatch(store, settings, strict, WEEK)
        assert not report.ok and "certificate not trusted" in report.unavailable
        assert "NEWSLETTER_SMTP_VERIFY" in report.unavailable
        assert not sink.received
        assert report.remaining == 3 and report.failed == 0  # never handed over: still queued
        relaxed = SmtpSender(SmtpConfig("127.0.0.1", server.port, security=security, verify=False))
        with relaxed:
            report = send_dispatch(store, settings, relaxed, WEEK)
    assert report.ok and sorted(sink.recipients()) == sorted(emails)


def test_a_connection_the_server_closed_while_idle_is_reopened_at_once(
    store: Store, settings: Settings
) -> None:
    ready_week(store, settings)
    emails = add_subscribers(store, 3)
    # one message a second; the server drops a connection idle for 0.3 s
    settings = settings.replace(concurrency=1, rate=1.0, retry_backoff=30)
    sink = Sink()
    with SmtpServer(sink, timeout=0.3) as server, _sender(server) as sender:
        report = send_dispatch(store, settings, sender, WEEK)
    assert report.ok and sorted(sink.recipients()) == emails
    attempts = store.db.execute("SELECT max(attempts) FROM deliveries").fetchone()[0]
    assert attempts == 1  # reconnected without counting a failure or waiting out a backoff
