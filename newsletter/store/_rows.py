"""Small shared pieces of the store: timestamps and row conversion."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
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
