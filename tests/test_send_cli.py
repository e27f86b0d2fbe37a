"""`newsletter send` at the command line against aiosmtpd: approval, dry run, exit codes and
the closing summary."""

from __future__ import annotations

import pytest
from test_send_support import WEEK, Sink, SmtpServer, add_subscribers, ready_week

from newsletter.settings import Settings
from newsletter.store import Store


@pytest.fixture
def draft(store: Store, settings: Settings) -> list[str]:
    ready_week(store, settings, approved=False)
    return add_subscribers(store, 6)


def test_send_refuses_an_unapproved_dispatch_unless_told(run, draft: list[str]) -> None:
    sink = Sink()
    with SmtpServer(sink) as server:
        refused = run("send", "--week", str(WEEK), extra_env=server.env())
        assert refused.exit_code == 1
        assert "not approved" in refused.output and "--unapproved" in refused.output
        assert sink.received == []
        sent = run("send", "--week", str(WEEK), "--unapproved", extra_env=server.env())
    assert sent.exit_code == 0, sent.output
    assert f"dispatch {WEEK}: 6 sent, 0 failed" in sent.output
    assert sorted(sink.recipients()) == draft


def test_dry_run_builds_everything_and_sends_nothing(run, draft: list[str]) -> None:
    sink = Sink()
    with SmtpServer(sink) as server:
        result = run(
            "send", "--week", str(WEEK), "--unapproved", "--dry-run", extra_env=server.env()
        )
    assert result.exit_code == 0, result.output
    assert "6 messages built (dry run), none sent" in result.output
    assert sink.received == []


def test_failures_give_exit_code_3_and_their_reasons(run, draft: list[str]) -> None:
    refused = draft[2]
    sink = Sink(on_rcpt=lambda s, sess, a: "550 5.1.1 no such user" if a == refused else None)
    with SmtpServer(sink) as server:
        result = run("send", "--week", str(WEEK), "--unapproved", extra_env=server.env())
        again = run("send", "--week", str(WEEK), extra_env=server.env())
    assert result.exit_code == 3
    assert "5 sent, 1 failed" in result.output and "1 hard bounces marked bounced" in result.output
    assert f"{refused}: SMTP RCPT TO: 550 5.1.1 no such user" in result.output
    assert again.exit_code == 0 and "already sent" in again.output


def test_send_help_documents_the_options(run) -> None:
    result = run("send", "--help")
    for option in ("--dry-run", "--unapproved", "--limit", "--retry-unknown", "--retry-failed"):
        assert option in result.output
