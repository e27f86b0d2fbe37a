"""The store's handle on SQLite: sqlite-utils' `Database`, imported only when it is needed.

Every command opens the store, and importing sqlite_utils costs 70-100 ms here (its 4,000-line
`db` module, dateutil, pluggy): more than everything else `newsletter sources list` does. The
store's queries need three things of it, `execute`, `atomic` and `table_names`, which this
class does on the connection itself, the way sqlite-utils does them. Anything else (the table
API a migration uses) builds the real `Database` on first use, on the same connection.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlite_utils import Database


class LazyDatabase:
    def __init__(self, conn: sqlite3.Connection) -> None:
        # Autocommit: no statement opens a transaction on its own, so `execute` needs none of
        # sqlite-utils' bookkeeping for implicit transactions; `atomic` opens them explicitly.
        if conn.isolation_level is not None:
            raise ValueError("the store's connection must be autocommit (isolation_level=None)")
        self.conn = conn
        self._database: Database | None = None

    def execute(
        self, sql: str, parameters: Sequence[Any] | dict[str, Any] | None = None
    ) -> sqlite3.Cursor:
        if parameters is None:
            return self.conn.execute(sql)
        return self.conn.execute(sql, parameters)

    @contextmanager
    def atomic(self) -> Iterator[LazyDatabase]:
        """A write transaction; nested blocks are savepoints (as `Database.atomic`)."""
        conn = self.conn
        if conn.in_transaction:
            savepoint = f"store_{secrets.token_hex(8)}"
            conn.execute(f"SAVEPOINT {savepoint}")
            try:
                yield self
            except BaseException:
                if conn.in_transaction:  # a RAISE(ROLLBACK) may have ended it already
                    conn.execute(f"ROLLBACK TO SAVEPOINT {savepoint}")
                    conn.execute(f"RELEASE SAVEPOINT {savepoint}")
                raise
            conn.execute(f"RELEASE SAVEPOINT {savepoint}")
            return
        # IMMEDIATE: the write lock from the start. A deferred transaction that reads, then
        # writes after another connection committed, fails at once with "database is locked"
        # (its snapshot is stale: SQLite does not wait); this one waits its turn instead
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def table_names(self) -> list[str]:
        return [
            row[0] for row in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]

    @property
    def database(self) -> Database:
        """sqlite-utils' own `Database` on this connection (imported on first use)."""
        if self._database is None:
            from sqlite_utils import Database

            from newsletter.store import _lean  # noqa: F401  (sqlite-utils without numpy)

            self._database = Database(self.conn)
        return self._database

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # never recurse through a half-built instance
            raise AttributeError(name)
        return getattr(self.database, name)

    def __getitem__(self, name: str) -> Any:
        return self.database[name]
