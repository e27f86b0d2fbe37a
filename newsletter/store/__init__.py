"""All SQL lives in this package: one SQLite file, opened in WAL mode with foreign keys on.

`Store` opens and migrates the file; its attributes group the queries by table
(`store.signals`, `store.subscribers`, ...). Nothing outside this package writes SQL.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, cast

from newsletter.errors import StoreError
from newsletter.private_files import make_dirs, open_file, tighten
from newsletter.store.clicks import Clicks
from newsletter.store.deliveries import Deliveries
from newsletter.store.dispatches import Dispatches
from newsletter.store.drafts import Drafts, RankerModels
from newsletter.store.events import Events
from newsletter.store.lazydb import LazyDatabase
from newsletter.store.notices import Notices
from newsletter.store.receipts import Receipts
from newsletter.store.schema import MIGRATIONS
from newsletter.store.signals import Signals
from newsletter.store.sources import Sources
from newsletter.store.stream import Stream
from newsletter.store.subscribers import Subscribers
from newsletter.store.variants import Variants

if TYPE_CHECKING:
    from sqlite_utils import Database

__all__ = ["Store", "storage_error"]

BUSY_TIMEOUT_S = 30.0


class Store:
    def __init__(self, db: Database, path: Path | None = None) -> None:
        self.db = db
        self.path = path
        self.sources = Sources(db)
        self.signals = Signals(db)
        self.dispatches = Dispatches(db)
        self.subscribers = Subscribers(db)
        self.deliveries = Deliveries(db, self.subscribers.writing)
        self.notices = Notices(db)
        self.events = Events(db)
        self.drafts = Drafts(db)
        self.rankers = RankerModels(db)
        self.receipts = Receipts(db)
        self.stream = Stream(db)
        self.clicks = Clicks(db)
        self.variants = Variants(db)

    @classmethod
    def open(cls, path: str | Path, *, migrate: bool = True) -> Store:
        """Open (creating if needed) and migrate the database; refuse anything that is not ours."""
        path = Path(path)
        if path.exists() and path.is_dir():
            raise StoreError(f"{path}: is a folder, not a database file")
        # 0600 whatever the umask: it holds the subscribers (and maybe the signing key).
        # SQLite gives its -wal and -shm files the database file's mode.
        if not path.exists():
            make_dirs(path.parent)
            open_file(path, "ab").close()
        for own in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}.writers")):
            if own.exists():
                tighten(own)
        try:
            conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA recursive_triggers=ON")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc):
                raise StoreError(f"{path}: not a newsletter database ({exc})") from None
            raise storage_error(path, exc) from None
        store = cls(_database(conn), path)
        if migrate:
            store.migrate()
        return store

    @classmethod
    def memory(cls) -> Store:
        conn = sqlite3.connect(":memory:", isolation_level=None)
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA recursive_triggers=ON")
        store = cls(_database(conn))
        store.migrate()
        return store

    def migrate(self) -> None:
        applied = MIGRATIONS.applied_names(self.db.conn)
        if applied is None and self.db.table_names():
            raise StoreError(f"{self.path}: an SQLite file, but not a newsletter database")
        known = MIGRATIONS.names
        newer = [name for name in applied or () if name not in known]
        if newer:
            raise StoreError(
                f"{self.path}: made by a newer release (migration {newer[-1]}); upgrade newsletter"
            )
        if applied is not None and set(known) <= set(applied):
            return  # the usual case: up to date, and sqlite-utils never loaded
        try:
            MIGRATIONS.apply(cast(LazyDatabase, self.db).database)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: migration failed ({exc})") from None

    def schema_version(self) -> list[str]:
        return MIGRATIONS.applied_names(self.db.conn) or []

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing: used wherever a half-written result would mislead."""
        with self.db.atomic():
            yield

    def secret_key(self, configured: str = "") -> str:
        """The configured key, or one made at random on first use and kept in this database."""
        if configured:
            return configured
        row = self.db.execute("SELECT value FROM meta WHERE key = 'secret_key'").fetchone()
        if row:
            return row[0]
        key = secrets.token_urlsafe(32)
        self.db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('secret_key', ?)", [key])
        return self.db.execute("SELECT value FROM meta WHERE key = 'secret_key'").fetchone()[0]

    def close(self) -> None:
        self.db.conn.close()


def _database(conn: sqlite3.Connection) -> Database:
    """The store's `Database`: sqlite-utils' API, its import deferred (see store/lazydb.py)."""
    return cast("Database", LazyDatabase(conn))


def storage_error(path: Path | str | None, exc: sqlite3.DatabaseError) -> StoreError:
    """One line naming the file and what is wrong with its storage, and what to do about it.

    SQLite rolls back whatever the failing statement's transaction had written, so the file is
    as it was before that transaction: the line says so.
    """
    text = str(exc)
    lowered = text.lower()
    folder = Path(path).parent if path else None
    writable = path is None or (
        (not Path(path).exists() or os.access(path, os.W_OK))
        and (folder is None or os.access(folder, os.W_OK))
    )
    if "full" in lowered:
        hint = "the disk holding it is full: free some space and run the command again"
    elif "readonly" in lowered or "read-only" in lowered or not writable:
        hint = "the file or its folder is read-only: check the disk and their permissions"
    elif "unable to open" in lowered:
        hint = "it cannot be opened: check the file, its folder and their permissions"
    elif "malformed" in lowered or "not a database" in lowered or "corrupt" in lowered:
        hint = "the file is damaged: restore a backup, or try `sqlite3 FILE .recover`"
    elif "i/o" in lowered:
        hint = "the disk failed to read or write it"
    elif "locked" in lowered or "busy" in lowered:
        hint = "another process held it too long: try again"
    else:
        hint = "a database error"
    name = path or "the database"
    return StoreError(f"{name}: {text} ({hint}; nothing was half-written)")
