"""Notices (confirmation mails) leave on a small pool of background threads, so a sign-up's
answer takes the same time whether or not a mail is owed: the timing tells a visitor nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait

from newsletter.delivery.senders.base import Sender
from newsletter.readers.notices import send_notices
from newsletter.readers.subscriptions import Notice
from newsletter.settings import Settings
from subscribers.stores import ThreadStores

log = logging.getLogger(__name__)


class Mailer:
    def __init__(
        self,
        settings: Settings,
        stores: ThreadStores,
        make_sender: Callable[[Settings], Sender],
        threads: int = 2,
    ) -> None:
        self.settings = settings
        self.stores = stores
        self.make_sender = make_sender
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="notices")
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()

    def submit(self, notice: Notice) -> Future[None]:
        future = self.pool.submit(self._send, notice)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)
        return future

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until every notice handed over so far has been sent (or has failed)."""
        with self._lock:
            pending = list(self._pending)
        wait(pending, timeout=timeout)

    def _send(self, notice: Notice) -> None:
        try:
            with self.make_sender(self.settings) as sender:
                _, errors = send_notices(self.stores.get(), self.settings, sender, [notice])
        except Exception:  # a background thread has nobody else to tell
            log.exception("notice %s for subscriber %d failed", notice.kind, notice.subscriber_id)
            self.stores.get().subscribers.release_notice(notice.subscriber_id, notice.claimed_at)
            return
        for error in errors:
            log.warning("notice not sent: %s", error)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True)
