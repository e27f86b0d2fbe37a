"""Real `newsletter send` processes with several variants, killed with SIGKILL mid-run against a
real SMTP server (aiosmtpd) and the Resend batch API stub, then run again after every reader
changed their sections: per recipient, what the server got against what `deliveries` says.
Everyone gets exactly their variant, once; a row claimed before the kill keeps the variant of
that claim (a repeat is the same request, a resend the same message); a row not yet claimed
gets the reader's new choice."""

from __future__ import annotations

import json
import re
import time

from provider_stubs import Resend, StubServer
from test_send_kill import _counts, _kill, _run, _start, _wait_for
from test_send_support import WEEK, Sink, SmtpServer, add_subscribers, ready_week
from variant_support import Mail, choose

from newsletter.settings import Settings
from newsletter.store import Store

#: three section sets, turned off (the sample week: AI, Energy, Markets)
CHOICES = [(), ("Markets",), ("AI", "Markets")]
KEYS = [("AI", "Energy", "Markets"), ("AI", "Energy"), ("Energy",)]


def _sections(text: str) -> tuple[str, ...]:
    return tuple(sorted(set(re.findall(r"^--- Signal · ([^·]+?) ·", text, re.M))))


def _readers(store: Store, count: int) -> tuple[dict[str, int], list[str]]:
    """`count` readers spread over the three sets (reader -> index into CHOICES), and two who
    get nothing: one paused, one who turned every section of this week off."""
    emails = add_subscribers(store, count)
    spread = {address: i % 3 for i, address in enumerate(emails)}
    for address, n in spread.items():
        choose(store, address, off=CHOICES[n])
    skipped = add_subscribers(store, 2, start=900_000)
    choose(store, skipped[0], paused_until=time.time() + 30 * 86_400)
    choose(store, skipped[1], off=("AI", "Energy", "Markets"))
    return spread, skipped


def _recorded(store: Store) -> dict[str, tuple[str, tuple[str, ...] | None]]:
    """Per reader: the delivery's status and the sections of the variant it records."""
    dispatch_id = store.dispatches.get(str(WEEK))["id"]
    return {
        row[0]: (row[1], tuple(json.loads(row[2])) if row[2] else None)
        for row in store.db.execute(
            "SELECT s.email, d.status, v.key FROM deliveries d JOIN subscribers s"
            " ON s.id = d.subscriber_id LEFT JOIN dispatch_variants v ON v.id = d.variant_id"
            " WHERE d.dispatch_id = ?",
            [dispatch_id],
        )
    }


def _change_everyone(store: Store, spread: dict[str, int]) -> None:
    for address, n in spread.items():
        choose(store, address, off=CHOICES[(n + 1) % 3])


def _check(
    got: dict[str, list[tuple[str, ...]]],
    store: Store,
    spread: dict[str, int],
    skipped: list[str],
    claimed_before: set[str],
) -> None:
    recorded = _recorded(store)
    assert set(got) == set(spread), "someone was missed, or a skipped reader got mail"
    for address, copies in got.items():
        status, key = recorded[address]
        assert status == "sent", address
        assert all(copy == key for copy in copies), f"{address} got {copies}, recorded {key}"
        n = spread[address] if address in claimed_before else (spread[address] + 1) % 3
        assert key == KEYS[n], address
    for address in skipped:
        assert recorded[address][0] == "skipped" and recorded[address][1] is None
    assert store.dispatches.get(str(WEEK))["status"] == "sent"
    dispatch_id = store.dispatches.get(str(WEEK))["id"]
    assert {v.key for v in store.variants.of(dispatch_id)} == set(KEYS)


def test_a_killed_smtp_send_with_variants(
    store: Store, settings: Settings, env: dict[str, str]
) -> None:
    ready_week(store, settings)
    spread, skipped = _readers(store, 240)
    sink = Sink(delay=0.004)
    with SmtpServer(sink) as server:
        first = _start(env, server.env())
        _wait_for(lambda: len(sink.received) >= 50)
        _kill(first)
        assert len(sink.received) < 240, "the run finished before it could be killed"
        claimed_before = {a for a, (_, key) in _recorded(store).items() if key is not None}
        in_flight = {a for a, (status, _) in _recorded(store).items() if status == "sending"}
        assert in_flight and claimed_before < set(spread)
        _change_everyone(store, spread)

        second = _run(env, server.env())
        assert second.returncode in (0, 3), second.stderr
        if second.returncode == 3:  # SMTP cannot be asked: the operator sends them again
            again = _run(env, server.env(), "send", "--retry-unknown")
            assert again.returncode == 0, again.stderr
    got: dict[str, list[tuple[str, ...]]] = {}
    for received in sink.received:
        mail = Mail.read(received.data)
        for rcpt in received.rcpt:
            got.setdefault(rcpt, []).append(_sections(mail.text))
    twice = {a for a, copies in got.items() if len(copies) > 1}
    assert twice <= in_flight  # only what was in flight at the kill can arrive twice
    _check(got, store, spread, skipped, claimed_before)
    assert _counts(store)["skipped"] == 2


def test_a_killed_batch_api_send_with_variants_repeats_the_same_request(
    store: Store, settings: Settings, env: dict[str, str]
) -> None:
    """Resend's stub refuses a repeat whose body differs from the first request under the
    same Idempotency-Key (409): the repeat only settles if it holds the same variants."""
    ready_week(store, settings)
    spread, skipped = _readers(store, 240)
    stub = Resend()
    stub.delay = 0.2
    with StubServer(stub) as server:
        extra = {**server.env(), "NEWSLETTER_BATCH_SIZE": "10"}
        first = _start(env, extra)
        _wait_for(lambda: len(stub.accepted) >= 40)
        _kill(first)
        assert len(stub.accepted) < 240, "the run finished before it could be killed"
        claimed_before = {a for a, (_, key) in _recorded(store).items() if key is not None}
        assert _counts(store)["sending"] > 0 and claimed_before < set(spread)
        _change_everyone(store, spread)
        second = _run(env, extra)
        assert second.returncode == 0, second.stderr
        assert "repeated under their idempotency key" in second.stdout
    texts: dict[str, str] = {}
    for request in stub.requests:
        if request.method == "POST" and request.path == "/emails/batch":
            for email in request.json():
                texts[email["headers"]["Message-ID"]] = email["text"]
    got: dict[str, list[tuple[str, ...]]] = {}
    for accepted in stub.accepted:
        got.setdefault(accepted.recipient, []).append(_sections(texts[accepted.message_id]))
    assert max(len(copies) for copies in got.values()) == 1, "someone got two copies"
    _check(got, store, spread, skipped, claimed_before)
