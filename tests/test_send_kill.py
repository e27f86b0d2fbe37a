"""Real `newsletter send` processes killed with SIGKILL mid-run against real servers on 127.0.0.1
(aiosmtpd, the email API stubs, the file outbox), then started again: per recipient, what the
server got against what `deliveries` says. Nobody gets two copies unless the operator asks for
it knowingly, and everyone is sent or reported.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from provider_stubs import PROVIDERS, StubServer
from test_send_support import WEEK, Sink, SmtpServer, add_subscribers, ready_week

from newsletter.settings import Settings
from newsletter.store import Store

NEWSLETTER = Path(sys.executable).parent / "newsletter"
#: only the venv's programs: the pre-flight's SpamAssassin and Chromium checks (tested
#: elsewhere) are skipped, so each process starts in well under a second
ONLY_VENV = str(Path(sys.executable).parent)


def _env(env: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **env, "PATH": ONLY_VENV, "NEWSLETTER_CONCURRENCY": "2", **extra}


def _start(env: dict[str, str], extra: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(NEWSLETTER), *(args or ("send",)), "--week", str(WEEK)],
        env=_env(env, extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(env: dict[str, str], extra: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(NEWSLETTER), *(args or ("send",)), "--week", str(WEEK)],
        env=_env(env, extra),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL


def _by_status(store: Store, status: str) -> set[str]:
    dispatch_id = store.dispatches.get(str(WEEK))["id"]
    return {
        row[0]
        for row in store.db.execute(
            "SELECT s.email FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id"
            " WHERE d.dispatch_id = ? AND d.status = ?",
            [dispatch_id, status],
        )
    }


def _counts(store: Store) -> dict[str, int]:
    return store.deliveries.counts(store.dispatches.get(str(WEEK))["id"])


def test_a_killed_smtp_send_resumes_without_sending_anyone_twice(
    store: Store, settings: Settings, env: dict[str, str]
) -> None:
    ready_week(store, settings)
    emails = add_subscribers(store, 300)
    sink = Sink(delay=0.004)
    with SmtpServer(sink) as server:
        first = _start(env, server.env())
        _wait_for(lambda: len(sink.received) >= 60)
        _kill(first)
        assert len(sink.received) < 300, "the run finished before it could be killed"
        # in flight at the kill: at most 2 workers x 2 messages (one ready behind each)
        assert _counts(store)["sending"] <= 4

        second = _run(env, server.env())
        got = sink.recipients()
        assert max(got.values()) == 1, "someone got two copies"
        unknown = _by_status(store, "unknown")
        # everyone got it, except those in flight at the kill: reported, not re-sent
        assert set(got) | unknown == set(emails) and len(unknown) <= 4
        counts = _counts(store)
        assert counts["sent"] + counts["unknown"] == 300 and counts["failed"] == 0
        assert "handed over" in second.stderr and "sent" in second.stdout  # log lines
        if not unknown:
            assert second.returncode == 0, second.stderr
            assert store.dispatches.get(str(WEEK))["status"] == "sent"
            return
        assert second.returncode == 3, second.stderr
        assert store.dispatches.get(str(WEEK))["status"] == "partly sent"
        assert "smtp cannot be asked whether a message arrived" in second.stderr
        assert "--retry-unknown" in second.stderr and "two copies" in second.stderr
        # the operator decides: send them again, knowing some may have arrived
        again = _run(env, server.env(), "send", "--retry-unknown")
    assert again.returncode == 0, again.stderr
    final = sink.recipients()
    assert set(final) == set(emails)
    assert {r for r, n in final.items() if n > 1} <= unknown  # only those reported unknown
    assert store.dispatches.get(str(WEEK))["status"] == "sent"


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_a_killed_api_send_resolves_what_was_in_flight_from_the_provider(
    provider: str, store: Store, settings: Settings, env: dict[str, str]
) -> None:
    """Resend: repeated under the same Idempotency-Key; Postmark and Mailgun: looked up in the
    provider's record; SendGrid: reported unknown for the operator."""
    batch = 1 if provider == "mailgun" else 10
    total = 120 if batch == 1 else 300  # one message a call is slower to get through
    ready_week(store, settings)
    emails = add_subscribers(store, total)
    stub = PROVIDERS[provider]()
    stub.delay = 0.02 if batch == 1 else 0.2
    with StubServer(stub) as server:
        extra = {**server.env(), "NEWSLETTER_BATCH_SIZE": str(batch)}
        first = _start(env, extra)
        _wait_for(lambda: len(stub.accepted) >= total // 5)
        _kill(first)
        assert len(stub.accepted) < total, "the run finished before it could be killed"
        in_flight = _counts(store)["sending"]
        # what a kill can leave unanswered: (concurrency + 1) calls of the batch size
        # (one-message senders: 2 x concurrency), as the README states
        assert 0 < in_flight <= (4 if batch == 1 else 3 * batch)

        second = _run(env, extra)
        got = stub.recipients()
        assert max(got.values()) == 1, f"{provider}: someone got two copies"
        unknown = _by_status(store, "unknown")
        assert set(got) | unknown == set(emails)
        if provider == "resend":
            assert second.returncode == 0, second.stderr
            assert not unknown and "repeated under their idempotency key" in second.stdout
        elif provider in ("postmark", "mailgun"):
            # those in the provider's record are settled at once; those not in it stay unknown
            # until the record can be trusted (it lags), and they never reached the provider
            assert "found in the provider's record" in second.stdout
            assert unknown.isdisjoint(got)
            if unknown:
                assert second.returncode == 3 and "deliveries reconcile" in second.stderr
                # an hour later, as far as those rows are concerned
                store.db.execute(
                    "UPDATE deliveries SET handed_at = handed_at - 3600 WHERE status = 'unknown'"
                )
                settled = _run(env, extra, "deliveries", "reconcile")
                assert settled.returncode == 0, settled.stderr
                assert f"{len(unknown)} never arrived (queued again)" in settled.stdout
                third = _run(env, extra)
                assert third.returncode == 0, third.stderr
        else:
            assert second.returncode == 3
            assert "sendgrid cannot be asked" in second.stderr
            arrived_anyway = unknown & set(got)
            again = _run(env, extra, "send", "--retry-unknown")
            assert again.returncode == 0, again.stderr
            twice = {r for r, n in stub.recipients().items() if n > 1}
            assert twice == arrived_anyway and twice <= unknown
    final = stub.recipients()
    assert set(final) == set(emails)
    if provider != "sendgrid":
        assert max(final.values()) == 1
    assert _counts(store)["sent"] == total
    assert store.dispatches.get(str(WEEK))["status"] == "sent"


def test_a_killed_file_send_is_resolved_from_the_outbox(
    store: Store, settings: Settings, env: dict[str, str]
) -> None:
    ready_week(store, settings)
    emails = add_subscribers(store, 1500)
    outbox = settings.outbox / str(WEEK)
    extra = {"NEWSLETTER_SENDER": "file"}

    def written() -> int:
        return sum(1 for _ in outbox.glob("*.eml")) if outbox.is_dir() else 0

    first = _start(env, extra)
    _wait_for(lambda: written() >= 200)
    _kill(first)
    assert written() < 1500, "the run finished before it could be killed"
    second = _run(env, extra)
    assert second.returncode == 0, second.stderr
    files = sorted(outbox.glob("*.eml"))
    readers = [path.name[: len(emails[0])] for path in files]  # <address>.<Message-ID>.eml
    assert sorted(readers) == sorted(emails)  # one file each
    assert not list(outbox.glob("*.part")), "half-written files were left behind"
    assert _counts(store)["sent"] == 1500


def test_a_run_killed_while_waiting_for_a_retry_leaves_the_rows_queued(
    store: Store, settings: Settings, env: dict[str, str]
) -> None:
    """A row waiting out its backoff was not handed over: a kill then leaves it `queued`,
    never `unknown`, and the next run sends it once the backoff is over."""
    ready_week(store, settings)
    emails = add_subscribers(store, 12)
    refusing = {"on": True}
    tried: list[str] = []

    def on_rcpt(server, session, address):
        tried.append(address)
        return "451 4.3.0 try again later" if refusing["on"] else None

    sink = Sink(on_rcpt=on_rcpt)
    with SmtpServer(sink) as server:
        extra = {**server.env(), "NEWSLETTER_RETRY_BACKOFF": "3"}
        first = _start(env, extra)
        _wait_for(lambda: len(set(tried)) == 12)
        time.sleep(0.3)  # every row is now waiting out its backoff
        _kill(first)
        counts = _counts(store)
        assert counts["queued"] == 12 and counts["unknown"] == 0 and counts["sending"] == 0
        refusing["on"] = False
        second = _run(env, extra)
    assert second.returncode == 0, second.stderr
    assert sorted(sink.recipients()) == sorted(emails)
    assert max(sink.recipients().values()) == 1


def test_two_sends_at_once_cannot_both_send(
    store: Store, settings: Settings, env: dict[str, str]
) -> None:
    ready_week(store, settings)
    emails = add_subscribers(store, 150)
    second_done = threading.Event()

    def hold(server, session, envelope):  # the first run is mid-send until the second is done
        if len(sink.received) >= 10:
            second_done.wait(60)

    sink = Sink(on_data=hold)
    with SmtpServer(sink) as server:
        first = _start(env, server.env())
        _wait_for(lambda: len(sink.received) >= 10)
        second = _run(env, server.env())
        second_done.set()
        _, err1 = first.communicate(timeout=60)
    assert second.returncode == 1
    assert "being sent by another process" in second.stderr
    assert first.returncode == 0, err1
    got = sink.recipients()
    assert sorted(got) == sorted(emails) and max(got.values()) == 1
