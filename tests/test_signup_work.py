"""A sign-up does the same work whether the address is new or known, so its timing tells a
visitor nothing (the figures are measured in benchmarks/bench_signup_timing.py, not here)."""

from __future__ import annotations

import re

import pytest
from test_web_live import Live

from newsletter.readers.subscriptions import request_signup
from newsletter.settings import Settings
from newsletter.store import Store


def _statements(store: Store, settings: Settings, email: str) -> list[str]:
    seen: list[str] = []
    store.db.conn.set_trace_callback(seen.append)
    try:
        request_signup(store, settings, email, ip="192.0.2.1", form="form at /", now=1e9)
    finally:
        store.db.conn.set_trace_callback(None)
    # the statement shapes, without their values; the clean-up of old rate-limit windows runs on
    # one call in a thousand, whoever signs up (hit_rate_limit): not part of the comparison
    return [
        re.sub(r"'[^']*'|\b\d+(\.\d+)?\b", "?", s)
        for s in seen
        if "DELETE FROM rate_limits" not in s
    ]


@pytest.mark.parametrize("status", ["pending", "active", "unsubscribed", "bounced"])
def test_new_and_known_addresses_run_the_same_statements(
    store: Store, settings: Settings, status: str
) -> None:
    store.subscribers.add("known@example.org", name=None, status=status, actor="test")
    request_signup(store, settings, "warm@example.org")  # opens the writers' lock file once
    assert _statements(store, settings, "new@example.org") == _statements(
        store, settings, "known@example.org"
    )


def test_when_no_mail_is_owed_the_workers_are_nudged_all_the_same(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    mailer = live.app.extensions["newsletter"].mailer
    nudges: list[str] = []
    real = mailer.nudge
    monkeypatch.setattr(mailer, "nudge", lambda: nudges.append("x") or real())
    first = live.sign_up("twice@example.org")  # a mail is owed: the real one is sent
    second = live.sign_up("twice@example.org")  # within the hour: nothing owed
    assert mailer.drain()
    assert (first.status_code, first.text) == (second.status_code, second.text)
    assert nudges == ["x", "x"]
    assert len(list(live.settings.outbox.rglob("*.eml"))) == 1
    assert live.store.notices.counts()["sent"] == 1
