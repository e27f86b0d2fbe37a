"""Sending a dispatch to every active subscriber exactly once.

Each (dispatch, subscriber) delivery row is committed as `sending` before the hand-off and as
`sent` or `failed` after it, so a run killed at any point can be resumed without a second copy:
rows found `sending` at the next start were in flight at the kill and become `unknown`, which
are not sent again unless the operator asks. A lease in the database keeps a second process off
the same dispatch. Worker threads only talk to the sender (one SMTP connection each); every
database write happens here on the calling thread.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from newsletter.delivery.compose import Composer
from newsletter.delivery.message import Message
from newsletter.delivery.senders.base import Sender, SenderUnavailable, SendResult, UnknownOutcome
from newsletter.dispatch.build import load_dispatch, no_dispatch
from newsletter.dispatch.render import Rendered, frozen_rendering
from newsletter.engagement.tracking import keep_links, render_tracked
from newsletter.errors import DispatchError, PermanentSendError, SendError, TemporarySendError
from newsletter.models import Dispatch, Subscriber
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.store.deliveries import Lease, Outcome
from newsletter.weeks import Week

log = logging.getLogger(__name__)


@dataclass
class DeliveryReport:
    week: str
    total: int = 0
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    skipped: int = 0
    remaining: int = 0
    bounced: int = 0
    dry_run: bool = False
    already_sent: bool = False
    stopped: bool = False
    elapsed: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def skipped_unknown(self) -> int:
        return self.unknown

    @property
    def ok(self) -> bool:
        """Everyone this run was asked to reach got the message (nothing failed or unknown)."""
        return self.failed == 0 and self.unknown == 0 and not self.stopped


@dataclass(frozen=True)
class Progress:
    sent: int
    failed: int
    total: int
    elapsed: float

    @property
    def done(self) -> int:
        return self.sent + self.failed

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        return (self.total - self.done) / self.rate if self.rate > 0 else None


ProgressCallback = Callable[[Progress], None]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter; a Retry-After is waited out (up to max_delay)."""

    attempts: int = 5
    backoff: float = 2.0
    max_delay: float = 120.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(settings.retry_limit, settings.retry_backoff, settings.retry_max_delay)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        ceiling = min(self.max_delay, self.backoff * 2 ** (attempt - 1))
        wait_for = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            wait_for = max(wait_for, min(retry_after, self.max_delay))
        return wait_for


class TokenBucket:
    """Holds the average rate at `rate` messages a second, with at most a second's burst."""

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self.tokens = max(rate, 1.0)
        self.stamp = clock()

    def take(self, count: int = 1) -> None:
        if self.rate <= 0:
            return
        now = self.clock()
        self.tokens = min(max(self.rate, 1.0), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= count
        if self.tokens < 0:
            self.sleep(-self.tokens / self.rate)


def hand_over(
    sender: Sender,
    messages: Sequence[Message],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    stop: threading.Event | None = None,
) -> list[tuple[SendResult, int]]:
    """Send, retrying temporary failures; one (final result, attempts) per message, in order.

    Runs on a worker thread. SenderUnavailable propagates: the whole run stops.
    """
    results: list[SendResult | None] = [None] * len(messages)
    attempts = [0] * len(messages)
    pending = list(range(len(messages)))
    for attempt in range(1, policy.attempts + 1):
        batch = [messages[i] for i in pending]
        try:
            answered = sender.send(batch)
        except SenderUnavailable:
            raise
        except SendError as exc:
            answered = [SendResult(m, error=exc) for m in batch]
        retry, retry_after = [], None
        for i, result in zip(pending, answered, strict=True):
            if isinstance(result.error, SenderUnavailable):
                raise result.error
            results[i], attempts[i] = result, attempt
            if isinstance(result.error, TemporarySendError):
                retry.append(i)
                if result.error.retry_after is not None:
                    retry_after = max(retry_after or 0.0, result.error.retry_after)
        if not retry or attempt == policy.attempts or (stop is not None and stop.is_set()):
            break
        delay = policy.delay(attempt, retry_after)
        log.info("%d temporary failures; retrying in %.1f s", len(retry), delay)
        sleep(delay)
        pending = retry
    return [(r, n) for r, n in zip(results, attempts, strict=True) if r is not None]


def _rendering(store: Store, settings: Settings, dispatch: Dispatch) -> Rendered:
    """The frozen copy when sending has begun; otherwise render now and freeze it."""
    frozen = frozen_rendering(dispatch)
    if frozen is not None:
        return frozen
    rendered = render_tracked(store, settings, dispatch)
    with store.transaction():  # the frozen copy and the links it carries, together
        store.dispatches.freeze(
            dispatch.id, rendered.compiled_html, rendered.compiled_text, rendered.nonce
        )
        keep_links(store, rendered, frozen=True)
    reloaded = load_dispatch(store, settings, Week.parse(dispatch.week))
    assert reloaded is not None
    return frozen_rendering(reloaded) or rendered  # a concurrent freeze wins: one copy for all


def _checked_dispatch(
    store: Store, settings: Settings, week: Week, *, force_unapproved: bool, resend: bool
) -> Dispatch | None:
    """The dispatch to send, None when it was sent already, or an error saying why not."""
    dispatch = load_dispatch(store, settings, week)
    if dispatch is None:
        raise no_dispatch(store, settings, week)
    if dispatch.status == "sent" and not resend:
        return None
    if not dispatch.signals:
        raise DispatchError(f"dispatch {week} has no signals; nothing to send")
    if dispatch.status == "draft" and not force_unapproved:
        raise DispatchError(
            f"dispatch {week} is not approved: run `newsletter dispatch approve --week {week}`"
            " (or send with --unapproved)"
        )
    return dispatch


def send_dispatch(
    store: Store,
    settings: Settings,
    sender: Sender,
    week: Week,
    *,
    dry_run: bool = False,
    force_unapproved: bool = False,
    retry_unknown: bool = False,
    retry_failed: bool = False,
    limit: int | None = None,
    progress: ProgressCallback | None = None,
    stop: threading.Event | None = None,
    sleep: Callable[[float], None] | None = None,
) -> DeliveryReport:
    """Send the week's dispatch to every active subscriber not yet sent it."""
    report = DeliveryReport(str(week), dry_run=dry_run)
    dispatch = _checked_dispatch(
        store,
        settings,
        week,
        force_unapproved=force_unapproved,
        resend=retry_unknown or retry_failed,
    )
    if dispatch is None:
        report.already_sent = True
        return report
    if dry_run:
        return _dry_run(store, settings, dispatch, report, limit)
    lease = store.deliveries.acquire_lease(dispatch.id, settings.send_lease)
    if lease is None:
        holder = store.deliveries.lease_of(dispatch.id) or {}
        raise DispatchError(
            f"dispatch {week} is being sent by another process (pid {holder.get('pid')} on"
            f" {holder.get('host')}); nothing was sent by this one"
        )
    try:
        run = _Run(store, settings, sender, dispatch, report, lease, stop or threading.Event())
        run.prepare(retry_unknown=retry_unknown, retry_failed=retry_failed, limit=limit)
        run.loop(limit=limit, progress=progress, sleep=sleep)
        run.finish()
    finally:
        store.deliveries.release_lease(lease)
    return report


def _dry_run(
    store: Store, settings: Settings, dispatch: Dispatch, report: DeliveryReport, limit: int | None
) -> DeliveryReport:
    """Build every message a real run would send (and sign none of them); send nothing."""
    started = time.perf_counter()
    rendered = frozen_rendering(dispatch) or render_tracked(store, settings, dispatch)
    composer = Composer(rendered, settings, store.secret_key(settings.secret_key), dispatch.week)
    for subscriber in store.subscribers.iter_active():
        if limit is not None and report.sent >= limit:
            break
        composer.compose(subscriber).as_bytes()
        report.sent += 1
    report.total = report.sent
    report.elapsed = time.perf_counter() - started
    return report


class _Run:
    """One sending run: claims rows, feeds the worker pool, records every answer."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        sender: Sender,
        dispatch: Dispatch,
        report: DeliveryReport,
        lease: Lease,
        stop: threading.Event,
    ) -> None:
        self.store = store
        self.settings = settings
        self.sender = sender
        self.dispatch = dispatch
        self.report = report
        self.lease = lease
        self.stop = stop
        self.deliveries = store.deliveries
        self.policy = RetryPolicy.from_settings(settings)
        self.started = time.perf_counter()

    def prepare(self, *, retry_unknown: bool, retry_failed: bool, limit: int | None) -> None:
        rendered = _rendering(self.store, self.settings, self.dispatch)
        secret = self.store.secret_key(self.settings.secret_key)
        self.composer = Composer(rendered, self.settings, secret, self.dispatch.week)
        dispatch_id = self.dispatch.id
        self.deliveries.queue(dispatch_id)
        found = self.deliveries.in_flight_to_unknown(dispatch_id)
        if found:
            log.warning(
                "%d deliveries were in flight when a previous run stopped: not sent again"
                " (send --retry-unknown to send them, which may duplicate)",
                found,
            )
        if retry_unknown:
            self.deliveries.requeue(dispatch_id, "unknown")
        if retry_failed:
            self.deliveries.requeue(dispatch_id, "failed")
        self.deliveries.skip_inactive(dispatch_id)
        queued = self.deliveries.counts(dispatch_id)["queued"]
        self.report.total = queued if limit is None else min(queued, limit)

    def loop(
        self,
        *,
        limit: int | None,
        progress: ProgressCallback | None,
        sleep: Callable[[float], None] | None,
    ) -> None:
        settings, report = self.settings, self.report

        # backoff waits end early when the run is told to stop
        def pause(seconds: float) -> None:
            self.stop.wait(seconds)

        if sleep is not None:
            pause = sleep  # type: ignore[assignment]
        chunk = max(1, self.sender.batch_size)
        if settings.rate > 0:  # a batch never needs more than a second's tokens: the lease
            chunk = min(chunk, max(1, int(settings.rate)))  # is renewed between waits
        # one batch ready beyond the busy workers keeps them fed; in flight at a kill: <= window
        window = settings.concurrency * 2 if chunk == 1 else settings.concurrency + 1
        bucket = TokenBucket(settings.rate)
        renew_every = max(0.2, settings.send_lease / 3)
        renewed = time.monotonic()
        page: list[tuple[int, Subscriber]] = []
        after_id, claimed_total, exhausted = 0, 0, False
        pending: dict[Future[list[tuple[SendResult, int]]], list[tuple[int, int, Message]]] = {}
        pool = ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="send")
        try:
            while True:
                try:
                    while not exhausted and len(pending) < window and not self.stop.is_set():
                        want = chunk if limit is None else min(chunk, limit - claimed_total)
                        if want <= 0:
                            exhausted = True
                            break
                        if len(page) < want:
                            page += self.deliveries.next_queued(
                                self.dispatch.id, max(want, 200), after_id=after_id
                            )
                            if page:
                                after_id = page[-1][0]
                        if not page:
                            exhausted = True
                            break
                        rows, page = page[:want], page[want:]
                        items = self._claim(rows)
                        if not items:
                            continue
                        claimed_total += len(items)
                        bucket.take(len(items))
                        future = pool.submit(
                            hand_over,
                            self.sender,
                            [m for _, _, m in items],
                            self.policy,
                            sleep=pause,
                            stop=self.stop,
                        )
                        pending[future] = items
                    if not pending:
                        break
                    done, _ = wait(
                        pending, timeout=min(1.0, renew_every), return_when=FIRST_COMPLETED
                    )
                except KeyboardInterrupt:
                    log.warning("interrupted: finishing the messages in flight, sending no more")
                    self.stop.set()
                    report.stopped = True
                    continue
                if time.monotonic() - renewed >= renew_every:
                    renewed = time.monotonic()
                    if not self.deliveries.renew_lease(self.lease, settings.send_lease):
                        report.errors.append("lost the send lease to another process; stopping")
                        report.stopped = True
                        self.stop.set()
                self._record({f: pending.pop(f) for f in done})
                if progress:
                    elapsed = time.perf_counter() - self.started
                    progress(Progress(report.sent, report.failed, report.total, elapsed))
        finally:
            pool.shutdown(wait=True, cancel_futures=False)
            if pending:  # an unexpected error: record what did come back
                self._record({f: pending.pop(f) for f in list(pending) if f.done()})
        if self.stop.is_set():
            report.stopped = True

    def _claim(self, rows: list[tuple[int, Subscriber]]) -> list[tuple[int, int, Message]]:
        """Compose, then mark `sending` in one commit: durable before any hand-off."""
        composed = [(delivery_id, s.id, self.composer.compose(s)) for delivery_id, s in rows]
        claimed = self.deliveries.claim([(d, m.message_id) for d, _, m in composed])
        return [item for item in composed if item[0] in claimed]

    def _record(self, finished: dict[Future, list[tuple[int, int, Message]]]) -> None:
        outcomes: list[Outcome] = []
        bounces: list[tuple[int, str]] = []
        report = self.report
        unexpected: BaseException | None = None
        for future, items in finished.items():
            try:
                answered = future.result()
            except SenderUnavailable as exc:
                report.errors.append(str(exc))
                self.stop.set()
                report.stopped = True
                answered = [(SendResult(m, error=exc), 1) for _, _, m in items]
            except Exception as exc:  # a bug: leave the rows `sending` (unknown next run)
                unexpected = exc
                continue
            for (delivery_id, subscriber_id, message), (result, attempts) in zip(
                items, answered, strict=True
            ):
                if result.ok:
                    outcomes.append(Outcome(delivery_id, "sent", attempts, result.provider_id))
                    report.sent += 1
                    continue
                error = str(result.error)
                if isinstance(result.error, UnknownOutcome):
                    outcomes.append(Outcome(delivery_id, "unknown", attempts, None, error))
                    report.errors.append(f"{message.to_addr}: {error}")
                    continue
                outcomes.append(Outcome(delivery_id, "failed", attempts, None, error))
                report.failed += 1
                if len(report.errors) < 1000:
                    report.errors.append(f"{message.to_addr}: {error}")
                if isinstance(result.error, PermanentSendError) and result.error.hard_bounce:
                    bounces.append((subscriber_id, error))
        if outcomes:
            self.deliveries.record(outcomes)
        for subscriber_id, error in bounces:
            self.store.subscribers.set_status(
                subscriber_id, "bounced", actor="send", reason=error[:200]
            )
            report.bounced += 1
        if unexpected is not None:
            raise unexpected

    def finish(self) -> None:
        dispatch_id, report = self.dispatch.id, self.report
        self.deliveries.skip_inactive(dispatch_id)
        counts = self.deliveries.counts(dispatch_id)
        report.unknown = counts["unknown"]
        report.skipped = counts["skipped"]
        report.remaining = counts["queued"]
        report.elapsed = time.perf_counter() - self.started
        if counts["queued"] == 0 and counts["sending"] == 0 and self.dispatch.status != "sent":
            self.store.dispatches.mark_sent(dispatch_id)
            self.store.events.log(
                "dispatch.sent", "dispatch", dispatch_id, week=self.dispatch.week, counts=counts
            )
