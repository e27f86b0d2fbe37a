"""A real `newsletter send` through SES killed with SIGKILL mid-run, then started again: per
recipient, what the stub received against what `deliveries` recorded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ses_support import SesStub
from test_send_support import WEEK, add_subscribers, ready_week

from newsletter.settings import Settings
from newsletter.store import Store

NEWSLETTER = Path(sys.executable).parent / "newsletter"


def _send(env: dict[str, str], stub: SesStub) -> subprocess.Popen[str]:
    full = {**os.environ, **env, **stub.env(), "NEWSLETTER_CONCURRENCY": "2"}
    return subprocess.Popen(
        [str(NEWSLETTER), "send", "--week", str(WEEK), "--force"],
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_killed_ses_send_resumes_and_nobody_gets_two_copies(
    store: Store, settings: Settings, env: dict[str, str]
) -> None:
    ready_week(store, settings)
    emails = add_subscribers(store, 120)
    with SesStub(delay=0.005) as stub:
        first = _send(env, stub)
        deadline = time.monotonic() + 60
        while len(stub.received) < 30:
            assert time.monotonic() < deadline and first.poll() is None, "no progress"
            time.sleep(0.01)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        assert first.returncode == -signal.SIGKILL
        at_kill = len(stub.received)
        assert at_kill < 120, "the run finished before it could be killed"
        second = _send(env, stub)
        out, err = second.communicate(timeout=120)
    got = stub.recipients()
    rows = dict(
        store.db.execute(
            "SELECT s.email, d.status FROM deliveries d JOIN subscribers s"
            " ON s.id = d.subscriber_id WHERE d.dispatch_id = ?",
            [store.dispatches.get(str(WEEK))["id"]],
        ).fetchall()
    )
    sent = {e for e, status in rows.items() if status == "sent"}
    unknown = {e for e, status in rows.items() if status == "unknown"}
    assert max(got.values()) == 1, "someone got two copies"
    assert sent <= set(got), "recorded sent but SES never got it"
    assert set(got) - sent <= unknown, "SES got it but we recorded neither sent nor unknown"
    assert sent | unknown == set(emails) and len(unknown) <= 4  # in flight: 2 workers
    ids = {r.recipient: r.message_id for r in stub.received}
    recorded = dict(
        store.db.execute(
            "SELECT s.email, d.provider_message_id FROM deliveries d JOIN subscribers s"
            " ON s.id = d.subscriber_id WHERE d.status = 'sent'"
        ).fetchall()
    )
    assert recorded == {e: ids[e] for e in sent}  # each row holds SES's MessageId
    assert second.returncode == (3 if unknown else 0), err
    # SES can neither be asked nor repeated safely: what was in flight stays unknown, and the
    # dispatch says so until the operator decides (reconcile, or --retry-unknown)
    assert store.dispatches.get(str(WEEK))["status"] == ("partly sent" if unknown else "sent")
    assert "sent" in out
    if unknown:
        assert f"{len(unknown)} unknown" in err and "--retry-unknown" in err
