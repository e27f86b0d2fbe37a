"""Rendered pages kept in memory while nothing they show has changed.

A page is kept under the stream's version (`store.stream.version()`: the newest change to a
signal or a dispatch, and row counts). That is written in whole seconds, so while the newest
change is under `SETTLE_S` old nothing is kept: a second change in the same second could not
be told from the first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from newsletter.store import Store

T = TypeVar("T")
SETTLE_S = 2.0
MAX_PAGES = 4096


def _newest(version: tuple[Any, ...]) -> float:
    stamps = [datetime.fromisoformat(v).timestamp() for v in version if isinstance(v, str)]
    return max(stamps, default=0.0)


class PageCache:
    def __init__(self, max_pages: int = MAX_PAGES, settle_s: float = SETTLE_S) -> None:
        self.max_pages = max_pages
        self.settle_s = settle_s
        self._version: tuple[Any, ...] | None = None
        self._pages: dict[Any, Any] = {}
        self._making: dict[Any, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, store: Store, key: Any, make: Callable[[], T]) -> T:
        """The page under `key`, made by `make()` when the data changed since it was kept.
        Threads asking for the same missing page wait for one of them to make it."""
        version = store.stream.version()
        if time.time() - _newest(version) < self.settle_s:
            return make()
        with self._lock:
            if version != self._version:
                self._pages.clear()
                self._version = version
            if key in self._pages:
                return self._pages[key]
            making = self._making.setdefault(key, threading.Lock())
        with making:
            with self._lock:
                if version == self._version and key in self._pages:
                    return self._pages[key]
            page = make()
            with self._lock:
                if version == self._version:
                    if len(self._pages) >= self.max_pages:
                        self._pages.clear()
                    self._pages[key] = page
                self._making.pop(key, None)
        return page
