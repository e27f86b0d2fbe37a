"""Exactly-once bookkeeping: the lease, unsubscribes landing mid-run, limits, dry runs, the
rate limiter and the retry policy, and the `deliveries` report."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from test_send_support import WEEK, add_subscribers, ready_week

from newsletter.delivery.deliver import RetryPolicy, TokenBucket, send_dispatch
from newsletter.delivery.message import Message
from newsletter.delivery.senders import MemorySender
from newsletter.errors import DispatchError, PermanentSendError, TemporarySendError
from newsletter.settings import Settings
from newsletter.store import Store


def _dispatch_id(store: Store) -> int:
    return store.dispatches.get(str(WEEK))["id"]


def test_a_second_lease_is_refused_until_the_first_expires_or_is_released(
    store: Store, settings: Settings
) -> None:
    ready_week(store, settings)
    dispatch_id = _dispatch_id(store)
    first = store.deliveries.acquire_lease(dispatch_id, ttl=60)
    assert first is not None
    assert store.deliveries.acquire_lease(dispatch_id, ttl=60) is None
    store.deliveries.release_lease(first)
    again = store.deliveries.acquire_lease(dispatch_id, ttl=-1)  # expires at once
    assert again is not None
    taken = store.deliveries.acquire_lease(dispatch_id, ttl=60)
    assert taken is not None
    assert not store.deliveries.renew_lease(again, ttl=60)  # the old holder learns it lost it


def test_a_lease_left_by_a_dead_process_on_this_host_is_taken_at_once(
    store: Store, settings: Settings
) -> None:
    ready_week(store, settings)
    dispatch_id = _dispatch_id(store)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    store.db.execute(
        "INSERT INTO delivery_leases (dispatch_id, holder, host, pid, acquired_at, expires_at)"
        " VALUES (?, 'x', ?, ?, 'now', 9e18)",
        [dispatch_id, socket.gethostname(), int(dead.stdout)],
    )
    assert store.deliveries.acquire_lease(dispatch_id, ttl=60) is not None
    # a live holder (another process: our parent) keeps it
    store.db.execute(
        "UPDATE delivery_leases SET holder = 'y', pid = ? WHERE dispatch_id = ?",
        [os.getppid(), dispatch_id],
    )
    assert store.deliveries.acquire_lease(dispatch_id, ttl=60) is None
    # a lease of this process that no run of it holds (its release failed on a full disk) is
    # taken at once; one a run of this process holds is not
    store.db.execute(
        "UPDATE delivery_leases SET holder = 'z', pid = ? WHERE dispatch_id = ?",
        [os.getpid(), dispatch_id],
    )
    held = store.deliveries.acquire_lease(dispatch_id, ttl=60)
    assert held is not None
    assert store.deliveries.acquire_lease(dispatch_id, ttl=60) is None
    store.deliveries.release_lease(held)


def test_send_refuses_while_another_process_holds_the_dispatch(
    store: Store, settings: Settings
) -> None:
    ready_week(store, settings)
    add_subscribers(store, 3)
    assert store.deliveries.acquire_lease(_dispatch_id(store), ttl=60) is not None
    sender = MemorySender()
    with pytest.raises(DispatchError, match="being sent by another process"):
        send_dispatch(store, settings, sender, WEEK)
    assert sender.sent == []


def test_someone_who_unsubscribes_mid_run_is_not_mailed(store: Store, settings: Settings) -> None:
    ready_week(store, settings)
    emails = add_subscribers(store, 10)
    leaving = store.subscribers.get_by_email(emails[6])["id"]

    def unsubscribe_during_first(message: Message) -> None:
        if message.to_addr == emails[0]:
            # the web service, in another connection, records the unsubscribe
            other = Store.open(settings.db)
            other.subscribers.set_status(leaving, "unsubscribed", actor="web")
            other.close()

    sender = MemorySender(fail=lambda m: unsubscribe_during_first(m))
    report = send_dispatch(store, settings.replace(concurrency=1), sender, WEEK)
    mailed = {m.to_addr for m in sender.sent}
    assert emails[6] not in mailed and len(mailed) == 9
    assert report.sent == 9 and report.ok
    counts = store.deliveries.counts(_dispatch_id(store))
    assert counts["skipped"] == 1 and counts["sent"] == 9


def test_limit_sends_part_and_the_next_run_the_rest(store: Store, settings: Settings) -> None:
    ready_week(store, settings)
    emails = add_subscribers(store, 10)
    sender = MemorySender()
    first = send_dispatch(store, settings, sender, WEEK, limit=3)
    assert first.sent == 3 and first.remaining == 7 and not first.ok
    # readers are still queued: not "sent", and the next run says so until they are reached
    assert store.dispatches.get(str(WEEK))["status"] == "partly sent"
    second = send_dispatch(store, settings, sender, WEEK)
    assert second.sent == 7 and second.remaining == 0
    assert sorted(m.to_addr for m in sender.sent) == emails
    assert store.dispatches.get(str(WEEK))["status"] == "sent"


def test_dry_run_builds_every_message_and_records_nothing(store: Store, settings: Settings) -> None:
    ready_week(store, settings)
    add_subscribers(store, 12)
    sender = MemorySender()
    report = send_dispatch(store, settings, sender, WEEK, dry_run=True)
    assert report.sent == 12 and report.dry_run
    assert sender.sent == []
    assert sum(store.deliveries.counts(_dispatch_id(store)).values()) == 0
    assert store.dispatches.get(str(WEEK))["status"] == "approved"


def test_temporary_failures_are_retried_then_recorded_with_attempts(
    store: Store, settings: Settings
) -> None:
    ready_week(store, settings)
    emails = add_subscribers(store, 3)
    tries: dict[str, int] = {}

    def flaky(message: Message) -> TemporarySendError | None:
        tries[message.to_addr] = tries.get(message.to_addr, 0) + 1
        if message.to_addr == emails[0] and tries[message.to_addr] < 3:
            return TemporarySendError("451 later")
        if message.to_addr == emails[1]:
            return TemporarySendError("451 never")
        return None

    settings = settings.replace(retry_limit=4)
    report = send_dispatch(store, settings, MemorySender(fail=flaky), WEEK, sleep=lambda s: None)
    assert report.sent == 2 and report.failed == 1
    (failure,) = store.deliveries.failures(_dispatch_id(store))
    assert failure["email"] == emails[1] and failure["attempts"] == 4
    assert "451 never" in failure["last_error"]
    assert tries == {emails[0]: 3, emails[1]: 4, emails[2]: 1}


def test_a_retry_waits_the_longest_retry_after_of_its_batch(
    store: Store, settings: Settings
) -> None:
    ready_week(store, settings)
    emails = add_subscribers(store, 2)
    asked = {emails[0]: 9.0, emails[1]: 3.0}

    def limited(message: Message) -> TemporarySendError | None:
        wait = asked.pop(message.to_addr, None)
        return None if wait is None else TemporarySendError("429", retry_after=wait)

    waits: list[float] = []
    sender = MemorySender(batch_size=2, fail=limited)
    settings = settings.replace(retry_backoff=1, retry_max_delay=60)
    report = send_dispatch(store, settings, sender, WEEK, sleep=waits.append)
    assert report.ok and report.sent == 2
    # the longer of the two, waited out once, by the run (less the moments since the answer)
    assert len(waits) == 1 and 8.5 < waits[0] <= 9.0
    attempts = store.db.execute("SELECT attempts FROM deliveries ORDER BY id").fetchall()
    assert attempts == [(2,), (2,)]


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(attempts=10, backoff=2, max_delay=30)
    for attempt, ceiling in [(1, 2), (2, 4), (3, 8), (6, 30), (9, 30)]:
        delays = [policy.delay(attempt) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered
    assert policy.delay(1, retry_after=500) == 30


def test_token_bucket_holds_the_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(10, clock=lambda: now[0], sleep=sleep)
    for _ in range(50):
        bucket.take()
    # a one-second burst of 10, then 40 more at 10 a second
    assert now[0] == pytest.approx(4.0, abs=0.01)
    TokenBucket(0, clock=lambda: 0.0, sleep=sleep).take(1000)  # 0: no limit
    assert now[0] == pytest.approx(4.0, abs=0.01)


def test_deliveries_command_shows_counts_and_reasons(run, env) -> None:
    settings = __import__("newsletter.settings", fromlist=["load_settings"]).load_settings(
        env, env_file=None
    )
    store = Store.open(settings.db)
    ready_week(store, settings)
    emails = add_subscribers(store, 4)

    sender = MemorySender(
        fail=lambda m: (
            PermanentSendError("550 5.1.1 unknown user") if m.to_addr == emails[2] else None
        )
    )
    send_dispatch(store, settings, sender, WEEK)
    store.close()
    result = run("deliveries", "--week", str(WEEK))
    assert result.exit_code == 0, result.output
    assert "sent     3" in result.output and "failed   1" in result.output
    assert f"{emails[2]}" in result.output and "550 5.1.1 unknown user" in result.output


def test_a_stop_leaves_the_batch_composed_ahead_queued_without_an_identity(
    store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While every hand-off thread is busy the next batch is composed ahead; it is claimed only
    when handed over, so a stop (or a kill) then leaves its rows queued, with no Message-ID, and
    the next run sends each reader once."""
    import threading
    import time

    ready_week(store, settings)
    emails = add_subscribers(store, 12)
    stop = threading.Event()
    first = True

    def slow_first(message: Message) -> None:
        nonlocal first
        if first:  # long enough for the run to fill its window and compose the next batch
            first = False
            time.sleep(0.5)
            stop.set()
        return None

    from newsletter.delivery import deliver

    composed_ahead = []
    compose_ahead = deliver._Run._compose_ahead

    def spy(self: deliver._Run, chunk: int) -> None:
        compose_ahead(self, chunk)
        if self.ahead is not None:
            composed_ahead.append([r.delivery_id for r, _ in self.ahead.items])

    monkeypatch.setattr(deliver._Run, "_compose_ahead", spy)
    sender = MemorySender(batch_size=2, fail=slow_first)
    report = send_dispatch(store, settings.replace(concurrency=1), sender, WEEK, stop=stop)
    assert composed_ahead  # the case this is about happened
    assert report.stopped and report.sent == len(sender.sent) == 4  # in flight and waiting
    dispatch_id = _dispatch_id(store)
    counts = store.deliveries.counts(dispatch_id)
    assert counts["sent"] == 4 and counts["queued"] == 8 and counts["sending"] == 0
    named = store.db.execute(
        "SELECT count(*) FROM deliveries WHERE dispatch_id = ? AND status = 'queued'"
        " AND message_id IS NOT NULL",
        [dispatch_id],
    ).fetchone()[0]
    assert named == 0
    again = send_dispatch(store, settings.replace(concurrency=1), sender, WEEK)
    assert again.sent == 8 and again.ok
    assert sorted(m.to_addr for m in sender.sent) == emails
