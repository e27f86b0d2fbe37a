"""Sending a dispatch to every active subscriber exactly once: the delivery state machine.

A delivery row per (dispatch, subscriber) moves like this, each step one durable commit:

    queued --claim--> sending --answer--> sent
      ^  ^                |        +----> failed, permanent (final) or temporary (out of retries)
      |  |                |        +----> unknown (handed over, no readable answer)
      |  +-- retry_at ----+ a temporary failure waits here, `queued`, until its backoff is over
      +--- not handed over after all (the sender stopped, a request split, a run paused)
    unknown --resolve--> sent (the provider's record has it, or an idempotent repeat answered)
                     --> queued (the record shows it never arrived)

Identity is fixed at the first claim: the Message-ID (kept on every retry and repeat) and the
batch key (the same messages in the same order; an idempotent provider's key). A run killed at
any point leaves `sending` only what was in flight, at most (concurrency + 1) hand-offs (the
batch composed ahead while every hand-off thread is busy is claimed only when handed over); the
next run (or `deliveries reconcile`) resolves those from evidence before anything else is sent,
and never sends a second copy unless the operator asks (`--retry-unknown`). Waits for a retry
happen here, with the row `queued`, so a kill during one loses nothing and duplicates nothing.

A lease in the database keeps a second process off the same dispatch. Worker threads only talk
to the sender, one attempt each; every database write and every decision happens here, on the
calling thread (of each process, when a large send is split over forked processes, each with
its share of the rows: `_Run.split_loop`; each adds its one batch ready to the bound above).
After `error_threshold` hand-offs in a row fail for reasons not about any
recipient (a broken server, refused credentials), the run pauses and leaves the rest queued.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime

from newsletter.delivery import forks
from newsletter.delivery.message import Message, check_recipient
from newsletter.delivery.pacing import RetryPolicy, RunClock, TokenBucket
from newsletter.delivery.resolve import (
    ACCEPTED,
    NEVER_ARRIVED,
    cannot_resolve_why,
    lookup_verdict,
    may_repeat,
    not_yet_why,
)
from newsletter.delivery.senders.base import (
    RejectedRequest,
    Sender,
    SenderUnavailable,
    SendResult,
    UnknownOutcome,
    batch_key,
)
from newsletter.delivery.variants import VariantSet
from newsletter.dispatch.build import load_dispatch, no_dispatch
from newsletter.dispatch.variants import Key, describe, nothing_left
from newsletter.errors import (
    DispatchError,
    PermanentSendError,
    SendError,
    StoreError,
    TemporarySendError,
)
from newsletter.models import Dispatch
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.store.deliveries import Claim, Lease, Outcome, Pending, Share, Unresolved
from newsletter.store.dispatches import FROZEN
from newsletter.weeks import Week

__all__ = [
    "DeliveryReport",
    "Progress",
    "ProgressCallback",
    "Resolution",
    "RetryPolicy",
    "TokenBucket",
    "reconcile_dispatch",
    "send_dispatch",
]

log = logging.getLogger(__name__)

#: errors kept for the summary (the rest are counted, and `deliveries` lists them all)
MAX_ERRORS = 1000
#: a send is split over processes from this many rows on (NEWSLETTER_SEND_PROCESSES=0), over
#: at most this many
SPLIT_FROM = 2000
AUTO_PROCESSES = 2
#: the interpreter's switch interval in the processes of a split send (seconds)
HANDOFF_SWITCH = 0.001


@dataclass
class Resolution:
    """What became of the `unknown` rows found at the start of a run."""

    accepted: int = 0  # in the provider's record: sent
    never_arrived: int = 0  # not in it, and it has had time: queued again
    repeated: int = 0  # the same request again, for an idempotent provider to answer
    left: int = 0  # still unknown
    why: str = ""  # why those are left

    @property
    def found(self) -> int:
        return self.accepted + self.never_arrived + self.repeated + self.left


@dataclass
class DeliveryReport:
    week: str
    total: int = 0
    sent: int = 0
    failed: int = 0  # this run: permanent failures and temporary ones out of retries
    failed_temporary: int = 0
    unknown: int = 0  # at the end, the whole dispatch
    skipped: int = 0
    remaining: int = 0  # still queued at the end
    bounced: int = 0
    dry_run: bool = False
    already_sent: bool = False
    stopped: bool = False
    paused: str = ""  # why the error threshold paused the run
    unavailable: str = ""  # why the sender could take nothing more
    status: str = ""  # the dispatch's status at the end
    elapsed: float = 0.0
    resolution: Resolution = field(default_factory=Resolution)
    unresolved: Unresolved = field(default_factory=Unresolved)
    unknown_why: str = ""  # why the unknown rows could not be resolved (yet)
    errors: list[str] = field(default_factory=list)
    #: messages per variant (dry run: built; a run: the dispatch's deliveries sent), full first
    variants: dict[Key, int] = field(default_factory=dict)
    full: Key = ()
    #: why readers were skipped, with how many (a dry run: paused / nothing left)
    skip_reasons: dict[str, int] = field(default_factory=dict)
    compiles: int = 0  # variants this run rendered (MJML compiles)

    def variant_lines(self) -> list[str]:
        """`  AI, Markets: 120` per variant, then the skipped readers by reason."""
        lines = [f"  {describe(key, self.full)}: {n}" for key, n in self.variants.items()]
        lines += [f"  skipped, {reason}: {n}" for reason, n in self.skip_reasons.items()]
        return lines

    @property
    def skipped_unknown(self) -> int:
        return self.unknown

    @property
    def ok(self) -> bool:
        """Everyone this run was asked to reach got the message, and nothing is unresolved."""
        return (
            self.failed == 0
            and self.unresolved.total == 0
            and not self.stopped
            and not self.paused
            and not self.unavailable
        )


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
#: what one attempt came back with: an answer per message, and the error if the call failed whole
Answer = tuple[list[SendResult], SendError | None]


def _attempt(sender: Sender, messages: Sequence[Message]) -> Answer:
    """One hand-off, on a worker thread. It never retries and never sleeps."""
    try:
        answered = sender.send(messages)
    except SendError as exc:
        return [SendResult(m, error=exc) for m in messages], exc
    if len(answered) != len(messages):
        lost = UnknownOutcome(
            f"{sender.name}: {len(answered)} answers for {len(messages)} messages"
        )
        return [SendResult(m, error=lost) for m in messages], lost
    return list(answered), None


@dataclass
class _Handoff:
    rows: list[Pending]  # as claimed: identity, batch key and attempts of this hand-off
    messages: Sequence[Message]  # as the sender prepared them (`Sender.prepare`)
    key: str
    repeat: bool = False  # the same request as an unanswered one, for an idempotent sender
    repeats: int = 0


@dataclass
class _Composed:
    """A batch composed and its request prepared, not yet claimed (its rows still `queued`)."""

    items: list[tuple[Pending, Message]]
    variant_of: dict[int, int]  # delivery id -> the variant its message is composed from
    key: str
    prepared: Sequence[Message]


@dataclass(order=True)
class _Repeat:
    due: float
    seq: int
    rows: list[Pending] = field(compare=False)
    repeats: int = field(compare=False, default=0)


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


def _lease(store: Store, settings: Settings, dispatch: Dispatch) -> Lease:
    lease = store.deliveries.acquire_lease(dispatch.id, settings.send_lease)
    if lease is None:
        holder = store.deliveries.lease_of(dispatch.id) or {}
        raise DispatchError(
            f"dispatch {dispatch.week} is being sent by another process (pid"
            f" {holder.get('pid')} on {holder.get('host')}); nothing was done by this one"
        )
    return lease


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
    now: Callable[[], float] = time.time,
    make_sender: Callable[[], Sender] | None = None,
) -> DeliveryReport:
    """Send the week's dispatch to every active subscriber not yet sent it, each the variant
    of the sections they chose; a paused reader, or one whose choices leave nothing this week,
    is skipped (with the reason).

    Unknown rows from earlier runs are resolved first (the sender's record, or an idempotent
    repeat); `retry_unknown` then queues the rest again (which may duplicate them) and
    `retry_failed` the failed ones. `sleep` replaces the waits and `now` the calendar readers'
    pauses are read against (tests). `make_sender` makes another `sender` (its own connections):
    given, a large send may be split over processes (`_Run.processes`).
    """
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
        report.status = "sent"
        return report
    if dry_run:
        return _dry_run(store, settings, dispatch, report, limit, now())
    _leased_run(
        store,
        settings,
        sender,
        dispatch,
        report,
        stop=stop,
        sleep=sleep,
        now=now,
        resolve_only=False,
        retry_unknown=retry_unknown,
        retry_failed=retry_failed,
        limit=limit,
        progress=progress,
        make_sender=make_sender,
    )
    return report


def reconcile_dispatch(
    store: Store,
    settings: Settings,
    sender: Sender,
    week: Week,
    *,
    stop: threading.Event | None = None,
    sleep: Callable[[float], None] | None = None,
) -> DeliveryReport:
    """Resolve the week's unknown deliveries from evidence, sending nothing new.

    Rows left `sending` by a killed run become unknown; each is looked up in the provider's
    record, or (idempotent providers) its batch is repeated for the provider to answer. Rows
    found never to have arrived are queued again for the next `send`.
    """
    report = DeliveryReport(str(week))
    dispatch = load_dispatch(store, settings, week)
    if dispatch is None:
        raise DispatchError(f"no dispatch for {week}")
    if dispatch.status not in FROZEN:
        raise DispatchError(f"dispatch {week} is {dispatch.status}: nothing has been sent yet")
    _leased_run(
        store, settings, sender, dispatch, report, stop=stop, sleep=sleep, resolve_only=True
    )
    return report


def _leased_run(
    store: Store,
    settings: Settings,
    sender: Sender,
    dispatch: Dispatch,
    report: DeliveryReport,
    *,
    stop: threading.Event | None,
    sleep: Callable[[float], None] | None,
    resolve_only: bool,
    now: Callable[[], float] = time.time,
    retry_unknown: bool = False,
    retry_failed: bool = False,
    limit: int | None = None,
    progress: ProgressCallback | None = None,
    make_sender: Callable[[], Sender] | None = None,
) -> None:
    """One run under the dispatch's lease, released whatever happens."""
    lease = _lease(store, settings, dispatch)
    try:
        stop = stop or threading.Event()
        run = _Run(store, settings, sender, dispatch, report, lease, stop, RunClock(stop, sleep))
        run.resolve_only = resolve_only
        run.today = now()
        run.prepare(retry_unknown=retry_unknown, retry_failed=retry_failed, limit=limit)
        processes = run.processes(limit, make_sender)
        if processes > 1 and make_sender is not None:
            run.split_loop(processes, make_sender, progress)
        else:
            run.loop(limit=limit, progress=progress)
        run.finish()
    finally:
        store.deliveries.release_lease(lease)


def paused_reason(settings: Settings, until: float) -> str:
    day = datetime.fromtimestamp(until, settings.timezone)
    return f"paused until {day:%b} {day.day}, {day.year}"


def _dry_run(
    store: Store,
    settings: Settings,
    dispatch: Dispatch,
    report: DeliveryReport,
    limit: int | None,
    today: float,
) -> DeliveryReport:
    """Build every message a real run would send (and sign none of them), each reader's
    variant; send nothing, freeze nothing."""
    started = time.perf_counter()
    variants = VariantSet(store, settings, dispatch, freeze=False)
    report.full = variants.full
    report.variants[variants.full] = 0
    paused = nothing = 0
    for subscriber in store.subscribers.iter_active():
        if limit is not None and report.sent >= limit:
            break
        if subscriber.paused_at(today):
            paused += 1
            continue
        key = variants.key_of(subscriber)
        if not key:
            nothing += 1
            continue
        _, composer = variants.for_key(key)
        composer.compose(subscriber).as_bytes()
        report.sent += 1
        report.variants[key] = report.variants.get(key, 0) + 1
    if not report.variants[variants.full]:
        del report.variants[variants.full]
    for reason, count in (("paused", paused), (nothing_left(variants.sections), nothing)):
        if count:
            report.skip_reasons[reason] = count
    report.skipped = paused + nothing
    report.total = report.sent
    report.compiles = variants.rendered
    report.elapsed = time.perf_counter() - started
    return report


class _Run:
    """One run: resolves what an earlier run left unknown, claims rows, feeds the worker pool,
    decides what each answer means, and records it."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        sender: Sender,
        dispatch: Dispatch,
        report: DeliveryReport,
        lease: Lease,
        stop: threading.Event,
        clock: RunClock,
    ) -> None:
        self.store = store
        self.settings = settings
        self.sender = sender
        self.dispatch = dispatch
        self.report = report
        self.lease = lease
        self.stop = stop
        self.clock = clock
        self.deliveries = store.deliveries
        self.policy = RetryPolicy.from_settings(settings)
        self.started = time.perf_counter()
        self.resolve_only = False
        self.repeats: list[_Repeat] = []  # unanswered batches to repeat (idempotent senders)
        self.splits: deque[list[Pending]] = deque()  # halves of a refused request
        self.waiting = 0  # rows queued with a retry time
        self.page: list[Pending] = []
        self.ahead: _Composed | None = None  # fresh rows composed while the hand-offs were busy
        self.after_id = 0
        self.exhausted = False
        self.streak = 0  # hand-offs in a row that failed for reasons not about a recipient
        self.streak_rows: list[tuple[int, str]] = []  # (delivery id, failure) of those
        self.hold_until = 0.0  # the provider asked us to slow down: no hand-off before this
        self.outcomes: list[Outcome] = []  # settled, not yet recorded (one commit per wait)
        self.bounces: list[tuple[int, str]] = []
        self._seq = 0
        self.today = time.time()  # the calendar readers' pauses are read against
        self.share: Share = None  # this process's rows when the send is split (`_split_loop`)

    # -- before the loop ----------------------------------------------------------------------

    def prepare(self, *, retry_unknown: bool, retry_failed: bool, limit: int | None) -> None:
        self.variants = VariantSet(self.store, self.settings, self.dispatch)
        self.variants.for_key(self.variants.full)  # the dispatch's own copy, frozen as always
        dispatch_id, deliveries = self.dispatch.id, self.deliveries
        if not self.resolve_only:
            deliveries.queue(dispatch_id)
            if self.dispatch.status == "partly sent":
                self.store.dispatches.update(dispatch_id, status="sending")
            self._skip_unwanted()
        found = deliveries.sending_to_unknown(dispatch_id)
        if found:
            log.warning(
                "%d deliveries were being handed over when an earlier run stopped; resolving"
                " them before sending anything else",
                found,
            )
        if retry_failed:
            deliveries.requeue(dispatch_id, "failed")
        self._resolve_unknown()
        if retry_unknown:  # what a repeat will settle is left to it: that cannot duplicate
            repeating = {p.delivery_id for r in self.repeats for p in r.rows}
            deliveries.requeue(dispatch_id, "unknown", keep=repeating)
        deliveries.skip_inactive(dispatch_id)
        self.waiting, _ = deliveries.waiting(dispatch_id)
        queued = deliveries.counts(dispatch_id)["queued"] if not self.resolve_only else 0
        repeating_rows = sum(len(r.rows) for r in self.repeats)
        self.report.total = (queued if limit is None else min(queued, limit)) + repeating_rows

    def _skip_unwanted(self) -> None:
        """Skip the readers who are paused, or whose choices leave nothing this week, and
        render the variants the others need (once each) before anything is handed over.
        Rows claimed before keep their variant: they are neither skipped nor changed."""
        store, dispatch_id, variants = self.store, self.dispatch.id, self.variants
        paused = store.variants.paused(dispatch_id, now=self.today)
        store.variants.skip((d, paused_reason(self.settings, until)) for d, until in paused)
        for stored, off in store.variants.unassigned_choices(dispatch_id):
            key = variants.key_for(off)
            if key:
                variants.for_key(key)
            else:
                store.variants.skip_choice(dispatch_id, stored, nothing_left(variants.sections))

    def _compose(self, row: Pending) -> tuple[Message, int] | str:
        """The row's message and the variant it is composed from (the one of its first
        claim), or why a row never claimed is skipped after all (the reader paused, or
        turned off every section of this week, since the run began)."""
        reader, variants = row.subscriber, self.variants
        if row.variant_id:
            variant_id, composer = row.variant_id, variants.by_id(row.variant_id)
        else:
            if reader.paused_at(self.today) and reader.paused_until is not None:
                return paused_reason(self.settings, reader.paused_until)
            key = variants.key_of(reader)
            if not key:
                return nothing_left(variants.sections)
            variant_id, composer = variants.for_key(key)
        return composer.compose(reader, message_id=row.message_id), variant_id

    def _again(self, row: Pending) -> tuple[Message, int]:
        """The message of a row handed over before (a repeat, a lookup), from its claim's
        variant: the same message whatever the reader chose since."""
        if row.variant_id:
            variant_id, composer = row.variant_id, self.variants.by_id(row.variant_id)
        else:  # claimed by a version before variants: the dispatch's own copy
            variant_id, composer = self.variants.for_key(self.variants.full)
        return composer.compose(row.subscriber, message_id=row.message_id), variant_id

    def _message(self, row: Pending) -> Message:
        return self._again(row)[0]

    def _resolve_unknown(self) -> None:
        """Settle what an earlier run left unknown, from the provider's record or by repeating
        the same request (idempotent providers); the rest stays unknown, with the reason."""
        rows = self.deliveries.unknown(self.dispatch.id)
        if not rows:
            return
        sender, resolution, now = self.sender, self.report.resolution, self.clock.now()
        if sender.can_look_up:
            workers = max(1, min(self.settings.concurrency, len(rows)))
            with ThreadPoolExecutor(workers, thread_name_prefix="lookup") as pool:
                answers = list(
                    pool.map(lambda r: sender.look_up(self._message(r), r.handed_at or 0.0), rows)
                )
            outcomes = []
            for row, found in zip(rows, answers, strict=True):
                verdict = lookup_verdict(sender, found, row.handed_at, now)
                if verdict == ACCEPTED:
                    outcomes.append(Outcome(row.delivery_id, "sent", provider_id=found.provider_id))
                    resolution.accepted += 1
                elif verdict == NEVER_ARRIVED:
                    why = f"never arrived ({found.detail}); queued again"
                    outcomes.append(Outcome(row.delivery_id, "queued", error=why))
                    resolution.never_arrived += 1
                else:
                    resolution.left += 1
                    resolution.why = not_yet_why(sender, found, row.handed_at)
            self.deliveries.record(outcomes)
            return
        if not sender.idempotent:
            resolution.left = len(rows)
            resolution.why = cannot_resolve_why(sender)
            return
        groups: dict[str | None, list[Pending]] = {}
        for row in rows:
            groups.setdefault(row.batch_key, []).append(row)
        for key, group in groups.items():
            members = self.deliveries.batch(self.dispatch.id, key) if key else []
            same = [m for m, _ in members] == [r.delivery_id for r in group]
            still = all(r.subscriber.status == "active" for r in group)
            if not may_repeat(sender, min(r.batch_since or 0.0 for r in group), now):
                resolution.left += len(group)
                resolution.why = (
                    f"handed over too long ago for {sender.name} to recognise a repeat"
                    f" (it honours a key for {sender.idempotency_window / 3600:.0f} h)"
                )
            elif not same or not still:
                resolution.left += len(group)
                resolution.why = "its batch changed since (a reader left): it cannot be repeated"
            else:
                resolution.repeated += len(group)
                self._schedule_repeat(group, due=now, repeats=0)

    def _schedule_repeat(self, rows: list[Pending], *, due: float, repeats: int) -> None:
        self._seq += 1
        self.repeats.append(_Repeat(due, self._seq, rows, repeats))
        self.repeats.sort()

    # -- the loop -----------------------------------------------------------------------------

    def loop(self, *, limit: int | None, progress: ProgressCallback | None) -> None:
        settings, report = self.settings, self.report
        chunk = max(1, self.sender.batch_size)
        if settings.rate > 0:  # a batch never needs more than a second's tokens: the lease
            chunk = min(chunk, max(1, int(settings.rate)))  # is renewed between waits
        # one batch ready beyond the busy workers keeps them fed; in flight at a kill: <= window
        window = settings.concurrency * 2 if chunk == 1 else settings.concurrency + 1
        bucket = TokenBucket(settings.rate)
        renew_every = max(0.2, settings.send_lease / 3)
        renewed = time.monotonic()
        self.limit_left = limit
        pending: dict[Future[Answer], _Handoff] = {}
        storage: sqlite3.DatabaseError | None = None
        pool = ThreadPoolExecutor(max_workers=settings.concurrency, thread_name_prefix="send")
        try:
            while True:
                try:
                    while len(pending) < window and not self.stop.is_set() and storage is None:
                        try:
                            handoff = self._next(chunk)
                        except sqlite3.DatabaseError as exc:
                            storage = exc
                            self.stop.set()
                            break
                        if handoff is None:
                            break
                        bucket.take(len(handoff.messages))
                        pending[pool.submit(_attempt, self.sender, handoff.messages)] = handoff
                    if len(pending) >= window and storage is None:
                        try:
                            self._compose_ahead(chunk)
                        except sqlite3.DatabaseError as exc:
                            storage = exc
                            self.stop.set()
                    if not pending:
                        due = None if self.stop.is_set() else self._next_due()
                        if due is None:
                            break
                        self.clock.pause(min(max(due - self.clock.now(), 0.0), renew_every))
                        done: set[Future[Answer]] = set()
                    else:
                        done, _ = wait(
                            pending, timeout=min(1.0, renew_every), return_when=FIRST_COMPLETED
                        )
                except KeyboardInterrupt:
                    log.warning("interrupted: finishing the messages in flight, sending no more")
                    self.stop.set()
                    report.stopped = True
                    continue
                if time.monotonic() - renewed >= renew_every and storage is None:
                    renewed = time.monotonic()
                    if not self.deliveries.renew_lease(self.lease, settings.send_lease):
                        report.errors.append("lost the send lease to another process; stopping")
                        report.stopped = True
                        self.stop.set()
                for future in done:
                    handoff = pending.pop(future)
                    if storage is None:
                        self._settle(handoff, future.result())
                if storage is None:
                    try:
                        self._flush()
                    except sqlite3.DatabaseError as exc:
                        storage = exc  # not recorded: those stay `sending`, resolved next run
                        self.stop.set()
                if progress:
                    elapsed = time.perf_counter() - self.started
                    progress(Progress(report.sent, report.failed, report.total, elapsed))
        finally:
            pool.shutdown(wait=True, cancel_futures=False)
        if storage is not None:
            path = self.store.path or "the database"
            raise StoreError(
                f"{path}: {storage}; the send stopped, and what was in flight will be resolved by"
                " the next `newsletter send` (nothing was half-written)"
            ) from None
        if self.stop.is_set() and not report.paused and not report.unavailable:
            report.stopped = True

    # -- a send split over processes ------------------------------------------------------------

    def processes(self, limit: int | None, make_sender: Callable[[], Sender] | None) -> int:
        """How many processes the loop is split over: one unless this is a large send of fresh
        rows and each process can make its own sender (`make_sender`, the CLI's).

        One interpreter lock bounds a send on one process: composing each reader's body and
        the JSON of a batch is Python work. `NEWSLETTER_SEND_PROCESSES` 0 splits a send of
        `SPLIT_FROM` rows or more over the cores (at most `AUTO_PROCESSES`).
        """
        settings = self.settings
        wanted = settings.send_processes or min(AUTO_PROCESSES, os.cpu_count() or 1)
        count = min(wanted, settings.concurrency)
        enough = SPLIT_FROM if not settings.send_processes else count * 2 * self.sender.batch_size
        if (
            count < 2
            or make_sender is None
            or self.resolve_only
            or limit is not None
            or self.repeats
            or self.splits
            or self.report.total < enough
            or not forks.supported()
        ):
            return 1
        return count

    def split_loop(
        self, count: int, make_sender: Callable[[], Sender], progress: ProgressCallback | None
    ) -> None:
        """The loop in `count` forked processes, each on the rows whose id % count is its index,
        with its share of the connections and of the rate, its own database connection and
        sender; every claim and record is theirs. This one shows progress from the database,
        passes a stop on, and adds up their reports."""
        settings, report, dispatch_id = self.settings, self.report, self.dispatch.id
        base = self.deliveries.counts(dispatch_id)
        log.info("sending from %d processes", count)

        def work(index: int) -> DeliveryReport:
            connections = settings.concurrency // count + (index < settings.concurrency % count)
            return self._share_loop((index, count), connections, make_sender)

        children = forks.start(count, work)
        forwarded = False
        try:
            while True:
                try:
                    if forks.wait(children, 0.5):
                        break
                except KeyboardInterrupt:
                    log.warning("interrupted: finishing the messages in flight, sending no more")
                    self.stop.set()
                    report.stopped = True
                if self.stop.is_set() and not forwarded:
                    forks.signal_all(children, signal.SIGTERM)  # each finishes what is in flight
                    forwarded = True
                if progress:
                    counts = self.deliveries.counts(dispatch_id)
                    sent, failed = counts["sent"] - base["sent"], counts["failed"] - base["failed"]
                    elapsed = time.perf_counter() - self.started
                    progress(Progress(sent, failed, report.total, elapsed))
        except BaseException:
            forks.stop_all(children)  # never sending without us: the lease goes on return
            raise
        failures = [c.error for c in children if c.error is not None]
        for child in children:
            if child.result is not None:
                self._merge(child.result)
        if not failures:
            return
        # what a process that died had in flight: nobody else is sending (the lease is ours)
        left = self.deliveries.sending_to_unknown(dispatch_id)
        report.stopped = True
        for error in failures:
            if isinstance(error, StoreError):
                raise error
            text = f"{error}; {left} deliveries in flight then are unknown"
            log.error("%s", text)
            report.errors.append(text)

    def _share_loop(
        self, share: tuple[int, int], connections: int, make_sender: Callable[[], Sender]
    ) -> DeliveryReport:
        """One process's part of a split send (in the forked process)."""
        gc.freeze()  # what the fork inherited (templates, modules) is never scanned again
        # a hand-off thread whose socket call returned waits for the interpreter lock while
        # this thread composes: at most 1 ms, not the default 5, each time (several a request)
        sys.setswitchinterval(HANDOFF_SWITCH)
        # a stop passed on finishes what is in flight, whoever called `send_dispatch`
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        store = Store.open(self.store.path or "", migrate=False)  # never the parent's connection
        settings = self.settings.replace(
            concurrency=connections, rate=self.settings.rate / share[1]
        )
        report = DeliveryReport(self.report.week)  # what this process adds (a skip: total - 1)
        sender = make_sender()
        try:
            run = _Run(
                store, settings, sender, self.dispatch, report, self.lease, self.stop, self.clock
            )
            run.started, run.today, run.share = self.started, self.today, share
            run.variants = self.variants
            self.variants.store = store
            run.waiting, _ = store.deliveries.waiting(self.dispatch.id, share=share)
            run.loop(limit=None, progress=None)
        finally:
            sender.close()
        return report

    def _merge(self, part: DeliveryReport) -> None:
        report, resolution, more = self.report, self.report.resolution, part.resolution
        report.total += part.total
        report.sent += part.sent
        report.failed += part.failed
        report.failed_temporary += part.failed_temporary
        report.bounced += part.bounced
        report.errors += part.errors[: max(0, MAX_ERRORS - len(report.errors))]
        report.stopped = report.stopped or part.stopped
        report.paused = report.paused or part.paused
        report.unavailable = report.unavailable or part.unavailable
        resolution.accepted += more.accepted
        resolution.never_arrived += more.never_arrived
        resolution.repeated += more.repeated
        resolution.left += more.left
        resolution.why = resolution.why or more.why

    def _next_due(self) -> float | None:
        """When the next retry or repeat comes due, or None when nothing is left to wait for.

        While the provider has asked us to slow down (`hold_until`), nothing is due before.
        """
        times = [r.due for r in self.repeats]
        if self.waiting and not self.resolve_only:
            count, earliest = self.deliveries.waiting(self.dispatch.id, share=self.share)
            self.waiting = count
            if earliest is not None:
                times.append(earliest)
        held = self.hold_until > self.clock.now()
        if held and (self.splits or not (self.exhausted or self.resolve_only)):
            times.append(self.hold_until)
        if not times:
            return None
        return max(min(times), self.hold_until)

    def _next(self, chunk: int) -> _Handoff | None:
        """The next hand-off: a repeat that is due, half of a refused request, a retry that is
        due, or fresh rows; None when nothing is ready now."""
        now = self.clock.now()
        if now < self.hold_until:
            return None
        while self.repeats and self.repeats[0].due <= now:
            repeat = self.repeats.pop(0)
            handoff = self._claim(repeat.rows, repeat=True)
            if handoff is not None:
                handoff.repeats = repeat.repeats
                return handoff
        while self.splits:
            handoff = self._claim(self.splits.popleft())
            if handoff is not None:
                return handoff
        if self.resolve_only:
            return None
        if self.waiting:
            due = self.deliveries.due(self.dispatch.id, now, chunk, share=self.share)
            if due:
                handoff = self._claim(due)
                self.waiting = max(0, self.waiting - len(due))
                if handoff is not None:
                    return handoff
        while self.ahead is not None or not self.exhausted:
            if self.ahead is not None:
                ahead, self.ahead = self.ahead, None
                handoff = self._claim_composed(ahead)
                if handoff is not None:
                    return handoff
                continue
            want = chunk if self.limit_left is None else min(chunk, self.limit_left)
            rows = self._fresh_rows(want)
            if not rows:
                break
            handoff = self._claim(rows)
            if handoff is None:
                continue
            if self.limit_left is not None:
                self.limit_left -= len(handoff.rows)
            return handoff
        return None

    def _fresh_rows(self, want: int) -> list[Pending]:
        """The next `want` fresh rows in id order (read a page at a time); [] once none are
        left, or `want` is 0."""
        if want <= 0:
            self.exhausted = True
            return []
        if len(self.page) < want:
            self.page += self.deliveries.fresh(
                self.dispatch.id, max(want, 200), after_id=self.after_id, share=self.share
            )
            if self.page:
                self.after_id = self.page[-1].delivery_id
        if not self.page:
            self.exhausted = True
            return []
        rows, self.page = self.page[:want], self.page[want:]
        return rows

    def _compose_ahead(self, chunk: int) -> None:
        """While every hand-off thread is busy and one batch waits for the next free one,
        compose the batch after it. A thread that frees then finds one waiting, the moment
        after its claim (a commit), not after the ~20 ms a batch takes to compose. It is
        claimed only then: a stop or a kill leaves its rows queued, with no identity yet."""
        if (
            self.ahead is not None
            or self.exhausted
            or self.resolve_only
            or self.limit_left is not None
            or self.stop.is_set()
            or self.clock.now() < self.hold_until
        ):
            return
        while self.ahead is None:
            rows = self._fresh_rows(chunk)
            if not rows:
                return
            self.ahead = self._composed(rows)

    def _claim(self, rows: list[Pending], *, repeat: bool = False) -> _Handoff | None:
        """Compose, then mark `sending` with the identity in one commit, before any hand-off."""
        composed = self._composed(rows, repeat=repeat)
        return self._claim_composed(composed, repeat=repeat) if composed is not None else None

    def _composed(self, rows: list[Pending], *, repeat: bool = False) -> _Composed | None:
        """Each row's message, and the request prepared for them: nothing claimed yet.

        A repeat is the same request again or nothing; fresh rows whose recipient no provider
        would take fail here, before they can spoil a batch.
        """
        items: list[tuple[Pending, Message]] = []
        refused: list[Outcome] = []
        variant_of: dict[int, int] = {}
        # members always in id order: a repeat rebuilt from the database is the same request
        for row in sorted(rows, key=lambda r: r.delivery_id):
            composed = self._compose(row) if not repeat else self._again(row)
            if isinstance(composed, str):
                refused.append(Outcome(row.delivery_id, "skipped", error=composed))
                self.report.total -= 1
                continue
            message, variant_of[row.delivery_id] = composed
            if not repeat:
                try:
                    check_recipient(message)
                except SendError as exc:
                    refused.append(
                        Outcome(row.delivery_id, "failed", error=str(exc), failure="permanent")
                    )
                    self._count_failed(message, str(exc), "permanent")
                    continue
            items.append((row, message))
        if refused:
            self.deliveries.record(refused)
        if not items:
            return None
        messages = [m for _, m in items]
        # built before the claim: nothing is marked `sending` if building the request fails
        return _Composed(items, variant_of, batch_key(messages), self.sender.prepare(messages))

    def _claim_composed(self, composed: _Composed, *, repeat: bool = False) -> _Handoff | None:
        """Mark the composed rows `sending` with their identity in one commit, before any
        hand-off; the rows claimed, as a hand-off (None when none could be)."""
        items, variant_of = composed.items, composed.variant_of
        key, prepared = composed.key, composed.prepared
        now = self.clock.now()
        claims = [
            Claim(r.delivery_id, m.message_id, key, variant_of[r.delivery_id]) for r, m in items
        ]
        if repeat:
            if not self.deliveries.claim_repeat(claims, now=now):
                self.report.resolution.left += len(items)
                self.report.resolution.repeated -= len(items)
                self.report.resolution.why = "its batch changed since: it cannot be repeated"
                return None
            claimed = {c.delivery_id for c in claims}
        else:
            claimed = self.deliveries.claim(claims, now=now)
        if len(claimed) != len(items):  # someone left in between: a smaller batch, its own key
            items = [(r, m) for r, m in items if r.delivery_id in claimed]
            if not items:
                return None
            messages = [m for _, m in items]
            key = batch_key(messages)
            prepared = self.sender.prepare(messages)
            self.deliveries.rekey([r.delivery_id for r, _ in items], key, now=now)
        claimed_rows = [  # as `replace` would, field by field: once a message
            Pending(
                r.delivery_id,
                r.subscriber,
                m.message_id,
                r.attempts + 1,
                key,
                r.batch_since if r.batch_key == key else now,
                now,
                variant_of[r.delivery_id],
            )
            for r, m in items
        ]
        return _Handoff(claimed_rows, prepared, key, repeat=repeat)

    # -- deciding what an answer means --------------------------------------------------------

    def _settle(self, handoff: _Handoff, answer: Answer) -> None:
        results, whole = answer
        now = self.clock.now()
        rows = handoff.rows
        if isinstance(whole, RejectedRequest) and len(rows) > 1 and not handoff.repeat:
            # refused for its content: some member may be at fault; each half goes on its own
            half = len(rows) // 2
            self.splits.extend([rows[:half], rows[half:]])
            self.outcomes += [
                Outcome(r.delivery_id, "queued", error=str(whole), handed=False) for r in rows
            ]
            self._streak_failed([], whole)
            return
        lost = isinstance(whole, UnknownOutcome) or (
            handoff.repeat and isinstance(whole, TemporarySendError)
        )
        if lost and may_repeat(self.sender, self._since(rows, now), now):
            if handoff.repeats + 1 < self.policy.attempts:
                due = now + self.policy.delay(handoff.repeats + 1)
                self._schedule_repeat(rows, due=due, repeats=handoff.repeats + 1)
            self.outcomes += [Outcome(r.delivery_id, "unknown", error=str(whole)) for r in rows]
            return
        outcomes = self.outcomes
        counted: list[tuple[int, str]] = []  # failures not about a recipient, for the streak
        retry_after = max(
            (
                r.error.retry_after
                for r in results
                if isinstance(r.error, TemporarySendError) and r.error.retry_after is not None
            ),
            default=None,
        )
        any_ok, systemic = False, False
        for row, result in zip(rows, results, strict=True):
            error = result.error
            if error is None:
                outcomes.append(Outcome(row.delivery_id, "sent", provider_id=result.provider_id))
                self.report.sent += 1
                any_ok = True
                continue
            text = str(error)
            if isinstance(error, SenderUnavailable):
                outcomes.append(Outcome(row.delivery_id, "queued", error=text, handed=False))
                self.report.unavailable = self.report.unavailable or text
                self.stop.set()
                continue
            if isinstance(error, UnknownOutcome) or (
                handoff.repeat and isinstance(error, TemporarySendError)
            ):
                outcomes.append(Outcome(row.delivery_id, "unknown", error=text))
                self._note(result.message, text)
                continue
            if isinstance(error, TemporarySendError):
                if not (error.about_recipient or error.throttled):
                    systemic = True
                delay = self.policy.delay(row.attempts, retry_after)
                if error.throttled:  # a rate limit holds back every hand-off, not only this one
                    self.hold_until = max(self.hold_until, now + delay)
                if row.attempts < self.policy.attempts:
                    retry_at = now + delay
                    outcomes.append(
                        Outcome(row.delivery_id, "queued", error=text, retry_at=retry_at)
                    )
                    self.waiting += 1
                    continue
                failure = "temporary"
            else:
                failure = "permanent"
                if not error.about_recipient:
                    systemic = True
                if isinstance(error, PermanentSendError) and error.hard_bounce:
                    self.bounces.append((row.subscriber.id, text))
            outcomes.append(Outcome(row.delivery_id, "failed", error=text, failure=failure))
            self._count_failed(result.message, text, failure)
            if not error.about_recipient:
                counted.append((row.delivery_id, failure))
        if any_ok:
            self.streak, self.streak_rows = 0, []
        elif systemic:
            first = next(r.error for r in results if r.error is not None)
            self._streak_failed(counted, first)

    def _flush(self) -> None:
        """Record what the hand-offs settled since the last flush, in one commit."""
        outcomes, self.outcomes = self.outcomes, []
        if outcomes:
            self.deliveries.record(outcomes)
        bounces, self.bounces = self.bounces, []
        for subscriber_id, text in bounces:
            self.store.subscribers.set_status(
                subscriber_id, "bounced", actor="send", reason=text[:200]
            )
            self.report.bounced += 1

    def _since(self, rows: list[Pending], now: float) -> float:
        """When this batch key was first handed over (this run's claim, or an earlier one)."""
        return min((r.batch_since for r in rows if r.batch_since is not None), default=now)

    def _count_failed(self, message: Message, text: str, failure: str) -> None:
        self.report.failed += 1
        if failure == "temporary":
            self.report.failed_temporary += 1
        self._note(message, text)

    def _note(self, message: Message, text: str) -> None:
        if len(self.report.errors) < MAX_ERRORS:
            self.report.errors.append(f"{message.to_addr}: {text}")

    def _streak_failed(self, rows: Sequence[tuple[int, str]], error: SendError | None) -> None:
        """One more hand-off failed for a reason not about any recipient; at the threshold the
        run pauses, and the readers of those hand-offs (and of any still in flight then) are
        queued again with the rest: the fault was not theirs."""
        self.streak += 1
        self.streak_rows.extend(rows)
        threshold = self.settings.error_threshold
        if not threshold or (self.streak < threshold and not self.report.paused):
            return
        if not self.report.paused:
            self.report.paused = (
                f"{self.streak} hand-offs in a row failed for reasons not about any recipient"
                f" (last: {error}); the rest stay queued (NEWSLETTER_ERROR_THRESHOLD={threshold})"
            )
            log.error("pausing the send: %s", self.report.paused)
            self.stop.set()
        if self.streak_rows:  # recorded after their failures, so they end up queued
            self.outcomes += [
                Outcome(d, "queued", error=f"paused: {error}") for d, _ in self.streak_rows
            ]
            self.report.failed -= len(self.streak_rows)
            self.report.failed_temporary -= sum(1 for _, f in self.streak_rows if f == "temporary")
        self.streak_rows = []

    # -- after the loop -----------------------------------------------------------------------

    def finish(self) -> None:
        dispatch_id, report = self.dispatch.id, self.report
        self.deliveries.skip_inactive(dispatch_id)
        counts = self.deliveries.counts(dispatch_id)
        report.unresolved = self.deliveries.unresolved(dispatch_id)
        report.unknown = counts["unknown"]
        report.skipped = counts["skipped"]
        report.remaining = counts["queued"]
        report.full = self.variants.full
        for variant_key, status, count in self.store.variants.counts(dispatch_id):
            if variant_key is not None and status == "sent":
                report.variants[variant_key] = count
        report.skip_reasons = dict(self.store.variants.skip_reasons(dispatch_id))
        report.compiles = self.variants.rendered
        report.elapsed = time.perf_counter() - self.started
        if report.unknown:
            report.unknown_why = report.resolution.why or _unknown_why(self.sender)
        status = "sent" if report.unresolved.total == 0 else "partly sent"
        self.store.dispatches.settle(dispatch_id, status)
        report.status = status
        self.store.events.log(
            f"dispatch.{status.replace(' ', '_')}",
            "dispatch",
            dispatch_id,
            actor="send",
            week=self.dispatch.week,
            counts=counts,
        )


def _unknown_why(sender: Sender) -> str:
    if sender.can_look_up:
        return f"no answer to their hand-off; {sender.name}'s record can tell"
    if sender.idempotent:
        return "no answer to their hand-off; a repeat within the key's lifetime is safe"
    return cannot_resolve_why(sender)
