"""One database connection per thread: sqlite3 connections must stay in the thread that made
them, and opening one per request would cost more than the request itself."""

from __future__ import annotations

import threading
from pathlib import Path

from newsletter.store import Store


class ThreadStores:
    def __init__(self, path: Path, *, migrate: bool = True) -> None:
        self.path = path
        self._local = threading.local()
        if migrate:  # once, up front (worker processes leave it to the parent)
            Store.open(path).close()

    def get(self) -> Store:
        store: Store | None = getattr(self._local, "store", None)
        if store is None:
            store = Store.open(self.path, migrate=False)
            self._local.store = store
        return store
