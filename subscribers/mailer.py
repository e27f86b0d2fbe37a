"""Notices leave from worker threads of each web process, never from the request: a sign-up's
answer takes the same time whether or not a mail is owed (the timing tells a visitor nothing).

The sign-up queues its notice in its own transaction; a sign-up nudges the workers, and they
also look for owed notices every few seconds, so whatever another process left (or this one
before a restart) is sent too. Claims are atomic, so several processes share the queue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from newsletter.delivery.senders.base import Sender
from newsletter.readers.notices import send_owed_notices
from newsletter.settings import Settings
from subscribers.stores import ThreadStores

log = logging.getLogger(__name__)

#: seconds between looks at the queue when nothing nudges the workers
POLL = 5.0
#: seconds between attempts to settle unknown notices (lookups cost the provider a request)
RESOLVE_EVERY = 60.0
#: seconds a nudged worker waits for more notices to claim with the first
COALESCE = 0.02


class Mailer:
    def __init__(
        self,
        settings: Settings,
        stores: ThreadStores,
        make_sender: Callable[[Settings], Sender],
        threads: int = 2,
        poll: float = POLL,
    ) -> None:
        self.settings = settings
        self.stores = stores
        self.make_sender = make_sender
        self.poll = poll
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._state = threading.Condition()
        self._asked = 0  # drain requests so far
        self._answered = 0  # the latest request a pass found nothing owed for
        self._workers = [
            threading.Thread(target=self._work, name=f"notices-{n}", daemon=True)
            for n in range(threads)
        ]
        for worker in self._workers:
            worker.start()

    def nudge(self) -> None:
        """A notice was queued: look now rather than at the next poll."""
        self._wake.set()

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every notice owed now has been handed over (or has failed)."""
        with self._state:
            self._asked += 1
            target = self._asked
        self._wake.set()
        with self._state:
            return self._state.wait_for(lambda: self._answered >= target, timeout)

    def shutdown(self) -> None:
        """Send what is owed now, then stop the workers."""
        self._stopping.set()
        self._wake.set()
        for worker in self._workers:
            worker.join(timeout=60)

    def _work(self) -> None:
        sender: Sender | None = None
        resolved = 0.0
        try:
            while True:
                self._wake.clear()  # before reading what was asked: no nudge is lost
                with self._state:
                    asked = self._asked
                store = self.stores.get()
                try:
                    if sender is None:
                        sender = self.make_sender(self.settings)
                    resolve = time.monotonic() - resolved >= RESOLVE_EVERY
                    if resolve:
                        resolved = time.monotonic()
                    report = send_owed_notices(store, self.settings, sender, resolve=resolve)
                    for error in report.errors:
                        log.warning("notice not sent: %s", error)
                    if report.stopped:  # e.g. refused credentials: try afresh next time
                        log.error("notices stopped: %s", report.stopped)
                        sender.close()
                        sender = None
                except Exception:  # a background thread has nobody else to tell
                    log.exception("sending notices failed")
                due, idle = self._owed()
                if idle:
                    with self._state:
                        self._answered = max(self._answered, asked)
                        self._state.notify_all()
                if self._stopping.is_set():
                    return
                wait = self.poll if due is None else min(self.poll, max(0.05, due - time.time()))
                if self._wake.wait(wait) and not self._stopping.is_set():
                    # a nudge: let the sign-ups arriving with it queue theirs too, so one claim
                    # takes them all (fewer write transactions beside the sign-ups' own)
                    time.sleep(COALESCE)
        finally:
            if sender is not None:
                sender.close()

    def _owed(self) -> tuple[float | None, bool]:
        """When the next notice is due, and whether nothing is owed now or being sent."""
        try:
            notices = self.stores.get().notices
            due = notices.next_due()
            sending = notices.sending()
        except Exception:
            log.exception("cannot read the notice queue")
            return None, True
        return due, sending == 0 and (due is None or due > time.time())
