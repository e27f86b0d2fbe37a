"""Small shared pieces of the store: timestamps, row conversion, reference checks."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlite_utils import Database


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def rows(db: Database, sql: str, params: Iterable[Any] = ()) -> Iterator[dict[str, Any]]:
    cursor: sqlite3.Cursor = db.execute(sql, list(params))
    names = [d[0] for d in cursor.description]
    for row in cursor:
        yield dict(zip(names, row, strict=True))


def one(db: Database, sql: str, params: Iterable[Any] = ()) -> dict[str, Any] | None:
    return next(rows(db, sql, params), None)


@contextmanager
def references_unchecked(conn: sqlite3.Connection) -> Iterator[bool]:
    """SQLite's foreign-key checks off for what runs inside, and on again after, whatever
    happens; whether they were turned off. Not inside a transaction, where SQLite ignores the
    pragma: there they stay as they are (on, in every store)."""
    if conn.in_transaction or not conn.execute("PRAGMA foreign_keys").fetchone()[0]:
        yield False
        return
    conn.execute("PRAGMA foreign_keys=OFF")
    try:
        yield True
    finally:
        conn.execute("PRAGMA foreign_keys=ON")
