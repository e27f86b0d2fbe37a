"""The store: one SQLite file, WAL, foreign keys, and an older file migrated in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlite_utils import Database

from newsletter.errors import StoreError
from newsletter.store import Store
from newsletter.store.schema import MIGRATIONS


def test_opens_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "n.db")
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    assert {"sources", "signals", "dispatches", "dispatch_signals", "subscribers"} <= set(
        store.db.table_names()
    )
    assert {"deliveries", "events"} <= set(store.db.table_names())


def test_older_database_is_migrated_in_place_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    # A database file as the first release left it: only the first migration applied.
    old = Database(sqlite3.connect(path, isolation_level=None))
    MIGRATIONS.apply(old, stop_before="m002_events_meta")
    old.execute(
        "INSERT INTO subscribers (email, status, created_at, updated_at)"
        " VALUES ('kept@example.org', 'active', '2026-01-01', '2026-01-01')"
    )
    assert "events" not in old.table_names()
    old.conn.close()

    store = Store.open(path)
    assert store.schema_version()[:2] == ["m001_core_tables", "m002_events_meta"]
    assert "events" in store.db.table_names()
    assert store.subscribers.get_by_email("kept@example.org")["status"] == "active"
    store.events.log("check", "subscriber", 1)
    assert store.events.recent()[0]["kind"] == "check"


def test_database_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    Store.open(path).db.execute(
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at)"
        " VALUES ('newsletter', 'm999_from_the_future', '2030-01-01')"
    )
    with pytest.raises(StoreError, match="newer release"):
        Store.open(path)


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 100)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a newsletter database"):
        Store.open(path)
    assert path.read_bytes() == before


def test_someone_elses_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not a newsletter database"):
        Store.open(path)


def test_secret_key_is_made_once_and_kept(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "n.db")
    first = store.secret_key()
    assert len(first) >= 32
    store.close()
    assert Store.open(tmp_path / "n.db").secret_key() == first
    assert Store.open(tmp_path / "n.db").secret_key("configured") == "configured"


def test_transaction_writes_nothing_when_it_fails(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.sources.add("a", "https://example.org/feed")
        raise RuntimeError("boom")
    assert store.sources.list() == []


def test_queueing_without_the_row_by_row_reference_checks_still_queues_only_what_exists(
    store: Store,
) -> None:
    active = store.subscribers.add("a@example.org", name="A", status="active", actor="t")
    store.subscribers.add("p@example.org", name="P", status="pending", actor="t")
    dispatch = store.dispatches.create("2026-W24")
    assert store.deliveries.queue(dispatch["id"] + 1) == 0  # no such dispatch: no orphans
    assert store.db.execute("SELECT count(*) FROM deliveries").fetchone() == (0,)
    assert store.deliveries.queue(dispatch["id"]) == 1
    assert store.deliveries.queue(dispatch["id"]) == 0  # once a reader
    with store.transaction():  # where the checks cannot be turned off, they run
        assert store.deliveries.queue(dispatch["id"]) == 0
    rows = store.db.execute("SELECT dispatch_id, subscriber_id, status FROM deliveries")
    assert rows.fetchall() == [(dispatch["id"], active, "queued")]
    assert store.db.execute("PRAGMA foreign_keys").fetchone() == (1,)
    assert store.db.execute("PRAGMA foreign_key_check").fetchall() == []
    with pytest.raises(sqlite3.IntegrityError):  # and stay on for everything else
        store.db.execute(
            "INSERT INTO deliveries (dispatch_id, subscriber_id, status, created_at, updated_at)"
            " VALUES (?, 999, 'queued', 'x', 'x')",
            [dispatch["id"]],
        )


def test_rebuilding_a_referenced_table_keeps_the_rows_that_point_at_it(tmp_path: Path) -> None:
    from newsletter.store.schema import rebuild_table

    store = Store.open(tmp_path / "n.db")
    subscriber = store.subscribers.add("a@example.org", name="A", status="active", actor="t")
    dispatch = store.dispatches.create("2026-W24")
    store.deliveries.queue(dispatch["id"])
    sql = store.db.execute("SELECT sql FROM sqlite_master WHERE name = 'subscribers'").fetchone()[0]
    rebuild_table(
        store.db,
        "subscribers",
        sql.replace("name TEXT,", "name TEXT CHECK (length(name) <= 500),"),
        ("CREATE INDEX subscribers_status ON subscribers(status, id)",),
    )
    # deliveries reference subscribers ON DELETE CASCADE: a plain DROP TABLE would empty them
    assert store.db.execute("SELECT subscriber_id FROM deliveries").fetchall() == [(subscriber,)]
    assert store.db.execute("PRAGMA foreign_keys").fetchone() == (1,)
    assert store.subscribers.get(subscriber)["email"] == "a@example.org"
    new_sql = store.db.execute("SELECT sql FROM sqlite_master WHERE name = 'subscribers'")
    assert "length(name) <= 500" in new_sql.fetchone()[0]
    store.close()


@pytest.mark.parametrize("later", [False, True], ids=["before-m006", "all-but-m006"])
def test_m006_upgrades_an_older_database_in_place(tmp_path: Path, later: bool) -> None:
    """A file from before delivery accounting: a dispatch marked `sent` with readers never
    reached becomes `partly sent`, old failures say whether they were final, and no row that
    references a dispatch is lost to the table rebuild. `later`: the file already has every
    migration after m006 (they were released first), so m006 runs on their tables."""
    from sqlite_utils import Database
    from sqlite_utils.migrations import Migrations

    from newsletter.store.schema import MIGRATIONS

    path = tmp_path / "old.db"
    db = Database(path)
    if later:
        others = Migrations(MIGRATIONS.name)
        for name, fn, transactional in MIGRATIONS._entries:
            if name != "m006_delivery_accounting":
                others(name=name, transactional=transactional)(fn)
        others.apply(db)
    else:
        MIGRATIONS.apply(db, stop_before="m006_delivery_accounting")
    now = "2026-06-15T07:00:00+00:00"
    for week, number in (("2026-W24", 1), ("2026-W25", 2)):
        db.execute(
            "INSERT INTO dispatches (week, issue_number, status, created_at, updated_at)"
            " VALUES (?, ?, 'sent', ?, ?)",
            [week, number, now, now],
        )
    for n in range(4):
        db.execute(
            "INSERT INTO subscribers (email, status, created_at, updated_at)"
            " VALUES (?, 'active', ?, ?)",
            [f"r{n}@example.org", now, now],
        )
    rows = [
        (1, 1, "sent", None),
        (1, 2, "unknown", "in flight when a run stopped"),
        (1, 3, "failed", "SMTP RCPT TO: 452 4.2.2 mailbox full"),
        (1, 4, "failed", "SMTP RCPT TO: 550 5.1.1 no such user"),
        (2, 1, "sent", None),
        (2, 2, "failed", "postmark: HTTP 503: unavailable"),
    ]
    for dispatch_id, subscriber_id, status, error in rows:
        db.execute(
            "INSERT INTO deliveries (dispatch_id, subscriber_id, status, last_error, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            [dispatch_id, subscriber_id, status, error, now, now],
        )
    db.conn.commit()
    db.close()

    store = Store.open(path)
    assert set(store.schema_version()) == set(MIGRATIONS.names)
    assert store.db.execute("SELECT count(*) FROM deliveries").fetchone() == (6,)
    assert store.dispatches.get("2026-W24")["status"] == "partly sent"
    assert store.dispatches.get("2026-W25")["status"] == "partly sent"
    assert store.deliveries.failed_by_kind(1) == {"permanent": 1, "temporary": 1}
    assert store.deliveries.failed_by_kind(2) == {"permanent": 0, "temporary": 1}
    assert store.db.execute("PRAGMA foreign_key_check").fetchall() == []
    store.close()
    again = Store.open(path)  # a second open changes nothing
    assert again.dispatches.get("2026-W24")["status"] == "partly sent"
    again.close()


def test_m013_rewrites_the_delivery_checks_keeping_rows_and_constraints(tmp_path: Path) -> None:
    """A file from before m013: its deliveries keep every row and index, and a status or a
    failure outside the state machine's words is still refused."""
    path = tmp_path / "old.db"
    db = Database(path)
    MIGRATIONS.apply(db, stop_before="m013_delivery_checks")
    now = "2026-06-15T07:00:00+00:00"
    db.execute(
        "INSERT INTO dispatches (week, issue_number, status, created_at, updated_at)"
        " VALUES ('2026-W24', 1, 'sent', ?, ?)",
        [now, now],
    )
    for n, (status, failure) in enumerate(
        [("sent", None), ("failed", "temporary"), ("queued", None), ("unknown", None)]
    ):
        db.execute(
            "INSERT INTO subscribers (email, status, created_at, updated_at)"
            " VALUES (?, 'active', ?, ?)",
            [f"r{n}@example.org", now, now],
        )
        db.execute(
            "INSERT INTO deliveries (dispatch_id, subscriber_id, status, failure, created_at,"
            " updated_at) VALUES (1, ?, ?, ?, ?, ?)",
            [n + 1, status, failure, now, now],
        )
    db.conn.commit()
    db.close()

    store = Store.open(path)
    sql = store.db.execute("SELECT sql FROM sqlite_master WHERE name = 'deliveries'").fetchone()
    assert " IN (" not in sql[0]
    assert store.deliveries.counts(1) == {
        "queued": 1,
        "sending": 0,
        "sent": 1,
        "failed": 1,
        "unknown": 1,
        "skipped": 0,
    }
    indexes = {
        row[0]
        for row in store.db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'deliveries'"
        )
    }
    assert {"deliveries_status", "deliveries_retry"} <= indexes
    for statement in (
        "UPDATE deliveries SET status = 'lost' WHERE id = 1",
        "UPDATE deliveries SET failure = 'maybe' WHERE id = 1",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="CHECK constraint failed"):
            store.db.execute(statement)
    assert store.db.execute("PRAGMA foreign_key_check").fetchall() == []
    store.close()


def test_a_transaction_that_reads_then_writes_waits_for_another_writer(tmp_path: Path) -> None:
    """A transaction takes the write lock up front. Deferred, it failed at once with "database
    is locked" when another connection committed between its first read and its first write
    (a stale snapshot, which SQLite does not wait out): a CLI command beside the web service."""
    import threading
    import time

    path = tmp_path / "n.db"
    first = Store.open(path)
    errors: list[BaseException] = []

    def other_writer() -> None:
        second = Store.open(path)  # its own connection, in its own thread
        try:
            with second.transaction():
                second.db.execute("INSERT INTO meta (key, value) VALUES ('other', '1')")
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            second.close()

    with first.transaction():
        first.db.execute("SELECT count(*) FROM meta").fetchone()
        writer = threading.Thread(target=other_writer)
        writer.start()
        time.sleep(0.3)  # the other connection commits here if it is not kept waiting
        first.db.execute("INSERT INTO meta (key, value) VALUES ('first', '1')")
    writer.join(timeout=10)
    assert not errors and not writer.is_alive()
    keys = {row[0] for row in first.db.execute("SELECT key FROM meta")}
    assert {"first", "other"} <= keys
    first.close()
