"""A real `newsletter send` process killed with SIGKILL mid-run, then started again: the rest
are delivered, nobody twice; two sends at once cannot both send.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from test_send_support import WEEK, Sink, SmtpServer, add_subscribers, ready_week

from newsletter.settings import Settings
from newsletter.store import Store

NEWSLETTER = Path(sys.executable).parent / "newsletter"


def _send(env: dict[str, str], server: SmtpServer, *args: str) -> subprocess.Popen:
    full = {**os.environ, **env, **server.env(), "NEWSLETTER_CONCURRENCY": "2"}
    return subprocess.Popen(
        [str(NEWSLETTER), "send", "--week", str(WEEK), *args],
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_killed_send_resumes_without_sending_anyone_twice(
    store: Store, settings: Settings, env: dict[str, str]
) -> None:
    ready_week(store, settings)
    emails = add_subscribers(store, 300)
    sink = Sink(delay=0.004)
    with SmtpServer(sink) as server:
        first = _send(env, server)
        _wait_for(lambda: len(sink.received) >= 60)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        assert first.returncode == -signal.SIGKILL
        at_kill = len(sink.received)
        assert at_kill < 300, "the run finished before it could be killed"

        second = _send(env, server)
        out, err = second.communicate(timeout=60)
    dispatch_id = store.dispatches.get(str(WEEK))["id"]
    counts = store.deliveries.counts(dispatch_id)
    got = sink.recipients()
    assert max(got.values()) == 1, "someone got two copies"
    unknown = {
        row["email"] for row in store.deliveries.failures(dispatch_id) if row["status"] == "unknown"
    }
    # everyone got it, except those in flight at the kill, which are reported, not re-sent
    assert set(got) | unknown == set(emails)
    assert counts["sent"] + counts["unknown"] == 300 and counts["failed"] == 0
    assert counts["unknown"] <= 4  # at most the messages in flight (2 workers x 2)
    if counts["unknown"]:
        assert second.returncode == 3, err
        assert "unknown" in out
    else:
        assert second.returncode == 0, err
    assert store.dispatches.get(str(WEEK))["status"] == "sent"
    # not a terminal: progress comes as plain log lines
    assert "handed over" in err and "sent" in out


def test_two_sends_at_once_cannot_both_send(
    store: Store, settings: Settings, env: dict[str, str]
) -> None:
    ready_week(store, settings)
    emails = add_subscribers(store, 150)
    sink = Sink(delay=0.005)
    with SmtpServer(sink) as server:
        first = _send(env, server)
        _wait_for(lambda: len(sink.received) >= 10)
        second = _send(env, server)
        _, err2 = second.communicate(timeout=30)
        _, err1 = first.communicate(timeout=60)
    assert second.returncode == 1
    assert "being sent by another process" in err2
    assert first.returncode == 0, err1
    got = sink.recipients()
    assert sorted(got) == sorted(emails) and max(got.values()) == 1
