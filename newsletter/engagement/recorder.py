"""Counting without a database write per click: the web service's hits are kept in memory and
written in batches, and classified a few seconds later, when a scanner's burst has had time
to show.

Each web worker process has one `Recorder`: a request appends its hit to a queue in memory
(microseconds) and a thread of the recorder writes what has gathered every FLUSH_SECONDS in one
transaction, then classifies what has waited long enough (`settle`). A clean stop (SIGTERM,
Ctrl-C, the end of a test) writes everything first; a SIGKILL or a power cut loses at most the
hits of the last FLUSH_SECONDS of that worker (and, with `synchronous=NORMAL`, a power cut may
lose the last transactions SQLite had not synced). Hits written but not yet classified wait in
`click_queue` and are classified by the next flush, `stats`, `weekly` or `serve` start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from newsletter.engagement.bursts import BURST_SECONDS, SETTLE_AFTER, classify
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.store.clicks import Hit

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.25
SETTLE_EVERY = 1.0
DAY = 86400


def settle(store: Store, *, now: float | None = None, everything: bool = False) -> int:
    """Classify the queued hits whose burst window has closed (`everything`: all of them, when
    no hit can still arrive: at `serve` start and stop) and move them to the raw click rows;
    returns how many. One write transaction, so two workers never classify a hit twice."""
    now = time.time() if now is None else now
    due = None if everything else now - SETTLE_AFTER
    if not store.clicks.pending():  # idle: no write transaction
        return 0
    with store.subscribers.writing():  # the database's writer queue (all processes)
        queued = store.clicks.queued(before=due, upto=None if due is None else due + BURST_SECONDS)
        if not queued:
            return 0
        bursts, done = classify(queued, due_before=due)
        store.clicks.settle(bursts, done)
    return len(done)


def fold_old(store: Store, settings: Settings, *, now: float | None = None) -> int:
    """Raw click rows older than NEWSLETTER_CLICK_RETENTION_DAYS become per-link counts (and a
    per-reader row loses its reader); returns how many rows were folded."""
    now = time.time() if now is None else now
    cutoff = int(now - settings.click_retention_days * DAY)
    with store.subscribers.writing():
        return store.clicks.fold_before(cutoff)


def maintain(store: Store, settings: Settings, *, everything: bool = False) -> tuple[int, int]:
    """What `stats`, `weekly` and `serve` do first: classify what is due, fold what is old."""
    return settle(store, everything=everything), fold_old(store, settings)


class Recorder:
    """One process's hits on their way to the database (see the module docstring)."""

    def __init__(
        self,
        store: Callable[[], Store],
        *,
        flush_seconds: float = FLUSH_SECONDS,
        settles: bool = True,
    ) -> None:
        self._store = store  # the calling thread's connection (subscribers.stores.ThreadStores)
        self._settles = settles  # False: another process classifies (serve's parent)
        self._hits: deque[Hit] = deque()
        self._flush_seconds = flush_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()
        self._settled = 0.0

    def add(self, hit: Hit) -> None:
        self._hits.append(hit)  # deque.append is atomic: no lock on the request path
        if self._thread is None:
            self._begin()

    def _begin(self) -> None:
        with self._start:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="click-recorder", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._flush_seconds):
            try:
                self.flush()
                if self._settles and time.monotonic() - self._settled >= SETTLE_EVERY:
                    self._settled = time.monotonic()
                    settle(self._store())
            except Exception:  # keep counting: the hits stay queued for the next round
                log.exception("click counts not written yet; trying again")

    def flush(self) -> int:
        """Write the hits gathered so far in one transaction; returns how many."""
        batch: list[Hit] = []
        while self._hits:
            batch.append(self._hits.popleft())
        if not batch:
            return 0
        store = self._store()
        try:
            with store.subscribers.writing():
                store.clicks.enqueue(batch)
        except BaseException:
            self._hits.extendleft(reversed(batch))  # not lost: written next time
            raise
        return len(batch)

    def close(self) -> None:
        """Stop the thread and write what is left (a clean shutdown loses no click)."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(10)
        self.flush()
