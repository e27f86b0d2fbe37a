"""A send split over processes (NEWSLETTER_SEND_PROCESSES): real `newsletter send` runs against
the Resend batch API stub on 127.0.0.1, run whole, stopped with SIGTERM, killed with SIGKILL,
and with one of its worker processes killed. Per recipient, what the stub accepted against what
`deliveries` records: everyone once, and nothing left `sending` by a run that has ended.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from provider_stubs import Resend, StubServer
from test_send_kill import _by_status, _counts, _kill, _run, _start, _wait_for
from test_send_support import WEEK, Sink, SmtpServer, add_subscribers, ready_week

from newsletter.delivery import forks
from newsletter.settings import Settings
from newsletter.store import Store

pytestmark = pytest.mark.skipif(not forks.supported(), reason="forked send processes: Linux")

READERS = 600
#: 30 batches of 20, two processes with one connection each
SPLIT = {"NEWSLETTER_SEND_PROCESSES": "2", "NEWSLETTER_BATCH_SIZE": "20"}


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _readers(store: Store, settings: Settings, *, delay: float = 0.0) -> tuple[list[str], Resend]:
    """The sample week ready, READERS readers, and a Resend stub taking `delay` a request."""
    ready_week(store, settings)
    emails = add_subscribers(store, READERS)
    stub = Resend()
    stub.delay = delay
    return emails, stub


def _sent_once(stub: Resend, emails: list[str]) -> None:
    got = stub.recipients()
    assert set(got) == set(emails), "someone was missed"
    assert max(got.values()) == 1, "someone got two copies"


def test_a_split_send_reaches_everyone_once_from_two_processes(
    store: Store, settings: Settings, env: dict[str, str]
) -> None:
    emails, stub = _readers(store, settings)
    with StubServer(stub) as server:
        done = _run(env, {**server.env(), **SPLIT})
    assert done.returncode == 0, done.stderr
    assert "sending from 2 processes" in done.stderr
    assert f"{READERS} sent, 0 failed" in done.stdout
    _sent_once(stub, emails)
    assert _counts(store)["sent"] == READERS
    # each process took its own rows (delivery id % 2): a batch never mixes the two shares
    dispatch = store.dispatches.get(str(WEEK))
    assert dispatch is not None
    delivery = dict(
        store.db.execute(
            "SELECT s.email, d.id FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id"
            " WHERE d.dispatch_id = ?",
            [dispatch["id"]],
        ).fetchall()
    )
    shares = {frozenset(delivery[a.recipient] % 2 for a in batch) for batch in _batches(stub)}
    assert shares == {frozenset({0}), frozenset({1})}


def test_a_split_smtp_send_is_killed_and_resumed_without_anyone_getting_two_copies(
    store: Store, settings: Settings, env: dict[str, str]
) -> None:
    """SMTP cannot be asked what it took: what was in flight at the kill stays unknown."""
    ready_week(store, settings)
    emails = add_subscribers(store, 300)
    sink = Sink(delay=0.004)
    split = {"NEWSLETTER_SEND_PROCESSES": "2"}
    with SmtpServer(sink) as server:
        first = _start(env, {**server.env(), **split})
        _wait_for(lambda: len(_children(first.pid)) == 2)
        _wait_for(lambda: len(sink.received) >= 60)
        _kill(first)
        assert len(sink.received) < 300, "the run finished before it could be killed"
        # in flight: each process's window, 2 x its one connection (one message ready behind)
        assert 0 < _counts(store)["sending"] <= 2 * 2
        second = _run(env, {**server.env(), **split})
    assert second.returncode == 3, second.stderr  # the unknown ones are for the operator
    got = sink.recipients()
    unknown = _by_status(store, "unknown")
    assert max(got.values()) == 1, "someone got two copies"
    assert set(got) | unknown == set(emails) and len(unknown) <= 4
    counts = _counts(store)
    assert counts["sent"] + counts["unknown"] == 300 and counts["sending"] == 0


def _under_way(env: dict[str, str], server: StubServer, stub: Resend, accepted: int):
    """A split send started, its two worker processes up, `accepted` emails taken."""
    first = _start(env, {**server.env(), **SPLIT})
    _wait_for(lambda: len(_children(first.pid)) == 2)
    _wait_for(lambda: len(stub.accepted) >= accepted)
    return first


def _resumed(env: dict[str, str], server: StubServer, stub: Resend, emails: list[str]) -> None:
    """The next run ends the send: everyone reached once."""
    second = _run(env, {**server.env(), **SPLIT})
    assert second.returncode == 0, second.stderr
    _sent_once(stub, emails)


def _batches(stub: Resend) -> list[list]:
    """The accepted emails, grouped by the request that carried them."""
    by_id = {a.message_id: a for a in stub.accepted}
    return [
        [by_id[e["headers"]["Message-ID"]] for e in request.json()]
        for request in stub.requests
        if request.method == "POST" and request.path == "/emails/batch"
    ]


def test_a_kill_of_a_split_send_stops_every_process_and_the_next_run_repeats_the_same_requests(
    store: Store, settings: Settings, env: dict[str, str]
) -> None:
    emails, stub = _readers(store, settings, delay=0.1)
    with StubServer(stub) as server:
        first = _under_way(env, server, stub, 100)
        workers = _children(first.pid)
        _kill(first)
        _wait_for(lambda: not any(_alive(pid) for pid in workers), timeout=10)
        settled = len(stub.requests)
        time.sleep(0.5)
        assert len(stub.requests) == settled, "a worker went on sending after its parent died"
        assert len(stub.accepted) < READERS, "the run finished before it could be killed"
        # in flight at the kill: each process's window, its connection and one batch ready
        assert 0 < _counts(store)["sending"] <= 2 * 2 * 20

        second = _run(env, {**server.env(), **SPLIT})
    assert second.returncode == 0, second.stderr
    assert "repeated under their idempotency key" in second.stdout
    _sent_once(stub, emails)
    counts = _counts(store)
    assert counts["sent"] == READERS and counts["sending"] == counts["unknown"] == 0


def test_sigterm_to_a_split_send_finishes_what_is_in_flight_and_leaves_the_rest_queued(
    store: Store, settings: Settings, env: dict[str, str]
) -> None:
    emails, stub = _readers(store, settings, delay=0.1)
    with StubServer(stub) as server:
        first = _under_way(env, server, stub, 100)
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=60)
        assert first.returncode == 3, err  # partly sent
        counts = _counts(store)
        assert counts["sending"] == counts["unknown"] == 0
        assert counts["sent"] == len(stub.accepted) < READERS
        assert counts["sent"] + counts["queued"] == READERS
        assert set(stub.recipients()) == _by_status(store, "sent")
        _resumed(env, server, stub, emails)


def test_a_worker_process_that_dies_is_reported_and_its_rows_in_flight_are_unknown(
    store: Store, settings: Settings, env: dict[str, str]
) -> None:
    emails, stub = _readers(store, settings, delay=0.1)
    with StubServer(stub) as server:
        first = _under_way(env, server, stub, 60)
        os.kill(_children(first.pid)[0], signal.SIGKILL)
        _, err = first.communicate(timeout=60)
        assert first.returncode == 3, err
        assert "ended with no report (killed by signal 9)" in err
        counts = _counts(store)
        assert counts["sending"] == 0 and 0 < counts["unknown"] <= 2 * 20
        # the other process went on to the end of its half
        assert counts["sent"] + counts["unknown"] + counts["queued"] == READERS
        assert len(stub.accepted) >= READERS // 2
        _resumed(env, server, stub, emails)


def test_forked_workers_hand_back_results_and_errors() -> None:
    def work(index: int) -> dict[str, int]:
        if index == 1:
            raise ValueError("the second one fails")
        if index == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return {"index": index, "pid": os.getpid()}

    children = forks.start(3, work)
    deadline = time.monotonic() + 30
    while not forks.wait(children, 0.2):
        assert time.monotonic() < deadline
    first, second, third = children
    assert first.result["index"] == 0 and first.result["pid"] != os.getpid()
    assert isinstance(second.error, ValueError) and "second one" in str(second.error)
    assert "killed by signal 9" in str(third.error)


def test_a_send_is_split_only_when_it_is_large_and_each_process_can_make_its_sender(
    store: Store, settings: Settings
) -> None:
    from newsletter.delivery.deliver import SPLIT_FROM, DeliveryReport, _Run
    from newsletter.delivery.pacing import RunClock
    from newsletter.delivery.senders.memory import MemorySender
    from newsletter.store.deliveries import Lease

    def processes(total: int, *, split: int = 0, limit: int | None = None, factory=True) -> int:
        tuned = settings.replace(send_processes=split, concurrency=4)
        sender = MemorySender(batch_size=100)
        report = DeliveryReport(str(WEEK), total=total)
        stop = threading.Event()
        run = _Run(store, tuned, sender, None, report, Lease(1, "h", "x", 1), stop, RunClock(stop))  # type: ignore[arg-type]
        return run.processes(limit, (lambda: sender) if factory else None)

    cores = min(2, os.cpu_count() or 1)
    assert processes(SPLIT_FROM) == cores and processes(SPLIT_FROM - 1) == 1
    assert processes(SPLIT_FROM * 10, factory=False) == 1  # a caller's own sender object
    assert processes(SPLIT_FROM * 10, limit=500) == 1  # --limit: one process counts exactly
    assert processes(SPLIT_FROM * 10, split=1) == 1
    # asked for: from two batches a process; never more processes than connections
    assert processes(400, split=2) == 2 and processes(399, split=2) == 1
    assert processes(SPLIT_FROM * 10, split=8) == 4
