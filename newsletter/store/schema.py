"""The database schema as recorded migrations: an older file upgrades in place, never by hand.

Append new migrations at the end; never edit one that has shipped.
"""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("newsletter")


def _run(db: Database, script: str) -> None:
    # executescript would COMMIT the migration's transaction; run statement by statement instead.
    for statement in script.split(";\n"):
        if statement.strip():
            db.execute(statement)


@MIGRATIONS(name="m001_core_tables")
def m001_core_tables(db: Database) -> None:
    _run(
        db,
        """
        CREATE TABLE sources (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            url TEXT NOT NULL,
            category TEXT,
            label TEXT,
            enabled INTEGER NOT NULL DEFAULT 1,
            etag TEXT,
            last_modified TEXT,
            content_hash TEXT,
            last_fetched_at TEXT,
            last_status TEXT,
            last_error TEXT,
            item_count INTEGER NOT NULL DEFAULT 0,
            consecutive_errors INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );
        CREATE TABLE signals (
            id INTEGER PRIMARY KEY,
            source_id INTEGER REFERENCES sources(id) ON DELETE SET NULL,
            guid TEXT,
            url TEXT NOT NULL UNIQUE,
            link TEXT,
            title TEXT NOT NULL,
            source_label TEXT,
            published TEXT NOT NULL,
            first_seen TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            summary_html TEXT,
            summary_text TEXT,
            notes TEXT,
            category TEXT,
            signal_score INTEGER CHECK (signal_score BETWEEN 0 AND 100),
            horizon TEXT,
            why_now TEXT,
            why_important TEXT,
            what_changes TEXT,
            winners TEXT,
            losers TEXT,
            effects_direct TEXT,
            effects_second TEXT,
            effects_third TEXT,
            editorial_confidence INTEGER CHECK (editorial_confidence BETWEEN 0 AND 100),
            structural_impact INTEGER CHECK (structural_impact BETWEEN 0 AND 100),
            arxiv_id TEXT,
            announce_type TEXT,
            annotated_at TEXT
        );
        CREATE INDEX signals_guid ON signals(guid);
        CREATE INDEX signals_arxiv_id ON signals(arxiv_id);
        CREATE INDEX signals_published ON signals(published);
        CREATE TABLE dispatches (
            id INTEGER PRIMARY KEY,
            week TEXT NOT NULL UNIQUE,
            issue_number INTEGER NOT NULL UNIQUE,
            status TEXT NOT NULL DEFAULT 'draft'
                CHECK (status IN ('draft', 'approved', 'sending', 'sent')),
            subject TEXT,
            preheader TEXT,
            note TEXT,
            subject_set INTEGER NOT NULL DEFAULT 0,
            preheader_set INTEGER NOT NULL DEFAULT 0,
            html TEXT,
            text TEXT,
            slot_nonce TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            approved_at TEXT,
            sent_at TEXT
        );
        CREATE TABLE dispatch_signals (
            dispatch_id INTEGER NOT NULL REFERENCES dispatches(id) ON DELETE CASCADE,
            signal_id INTEGER NOT NULL REFERENCES signals(id) ON DELETE CASCADE,
            position INTEGER,
            section TEXT,
            included INTEGER NOT NULL DEFAULT 1,
            pinned INTEGER NOT NULL DEFAULT 0,
            dropped INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (dispatch_id, signal_id)
        );
        CREATE TABLE subscribers (
            id INTEGER PRIMARY KEY,
            email TEXT NOT NULL UNIQUE,
            name TEXT,
            status TEXT NOT NULL
                CHECK (status IN ('pending', 'active', 'unsubscribed', 'bounced', 'complained')),
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            confirmed_at TEXT,
            unsubscribed_at TEXT,
            consent_text TEXT,
            consent_ip TEXT,
            consent_form TEXT,
            signup_source TEXT
        );
        CREATE INDEX subscribers_status ON subscribers(status, id);
        CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY,
            dispatch_id INTEGER NOT NULL REFERENCES dispatches(id) ON DELETE CASCADE,
            subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
            status TEXT NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'unknown', 'skipped')),
            attempts INTEGER NOT NULL DEFAULT 0,
            message_id TEXT,
            provider_message_id TEXT,
            last_error TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            sent_at TEXT,
            UNIQUE (dispatch_id, subscriber_id)
        )
        """,
    )


@MIGRATIONS(name="m002_events_meta")
def m002_events_meta(db: Database) -> None:
    _run(
        db,
        """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            kind TEXT NOT NULL,
            subject_type TEXT,
            subject_id INTEGER,
            actor TEXT,
            detail TEXT
        );
        CREATE INDEX events_subject ON events(subject_type, subject_id);
        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE INDEX deliveries_status ON deliveries(dispatch_id, status)
        """,
    )


@MIGRATIONS(name="m003_subscribers_web")
def m003_subscribers_web(db: Database) -> None:
    _run(
        db,
        """
        ALTER TABLE subscribers ADD COLUMN notice_sent_at REAL;
        CREATE TABLE rate_limits (
            key TEXT PRIMARY KEY,
            window_start INTEGER NOT NULL,
            count INTEGER NOT NULL
        );
        CREATE TABLE erased_addresses (
            email_hash TEXT PRIMARY KEY,
            erased_at TEXT NOT NULL
        )
        """,
    )


@MIGRATIONS(name="m004_deliveries_lease")
def m004_deliveries_lease(db: Database) -> None:
    # One row per dispatch being sent: two `send` processes cannot both hold it.
    _run(
        db,
        """
        CREATE TABLE delivery_leases (
            dispatch_id INTEGER PRIMARY KEY REFERENCES dispatches(id) ON DELETE CASCADE,
            holder TEXT NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            acquired_at TEXT NOT NULL,
            expires_at REAL NOT NULL
        )
        """,
    )


@MIGRATIONS(name="m005_signals_editor_fields")
def m005_signals_editor_fields(db: Database) -> None:
    # Feed fields (title, summary, link) the editor has rewritten: a re-fetch leaves them be.
    _run(db, "ALTER TABLE signals ADD COLUMN editor_fields TEXT")


def rebuild_table(db: Database, name: str, create_sql: str, indexes: tuple[str, ...] = ()) -> None:
    """Replace a table's definition (a new CHECK, AUTOINCREMENT...) keeping its rows.

    SQLite cannot alter a constraint in place, and dropping a table that others reference with
    `ON DELETE CASCADE` while foreign keys are on deletes their rows too (deliveries, events).
    So: foreign keys off (only possible outside a transaction), copy into the new definition,
    swap, check every reference still resolves, all in one transaction. Register the migration
    with `transactional=False`; running it twice gives the same table.
    `create_sql` is `CREATE TABLE {name} (...)`; the columns both definitions share are copied.
    `indexes` are the table's CREATE INDEX statements (dropping a table drops its indexes).
    """
    conn = db.conn
    if conn.in_transaction:
        raise RuntimeError("rebuild_table must run outside a transaction")
    old = [row[1] for row in conn.execute(f"PRAGMA table_info([{name}])")]
    conn.execute("PRAGMA foreign_keys=OFF")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                create_sql.replace(f"CREATE TABLE {name} ", f"CREATE TABLE {name}__new ", 1)
            )
            new = [row[1] for row in conn.execute(f"PRAGMA table_info([{name}__new])")]
            shared = ", ".join(f"[{column}]" for column in old if column in new)
            # names come from our own migrations and the schema, never from input
            conn.execute(f"INSERT INTO [{name}__new] ({shared}) SELECT {shared} FROM [{name}]")  # noqa: S608
            conn.execute(f"DROP TABLE [{name}]")
            conn.execute(f"ALTER TABLE [{name}__new] RENAME TO [{name}]")
            for statement in indexes:
                conn.execute(statement)
            broken = conn.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise RuntimeError(f"rebuilding {name} broke foreign keys: {broken[:5]}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.execute("PRAGMA foreign_keys=ON")


#: the dispatches' status CHECK before and after m006 (`partly sent` added)
_STATUS_CHECK = "CHECK (status IN ('draft', 'approved', 'sending', 'sent'))"
_STATUS_CHECK_V2 = "CHECK (status IN ('draft', 'approved', 'sending', 'partly sent', 'sent'))"

#: failures recorded before m006 did not say whether they were final; these are the words of
#: the temporary ones (SMTP 4xx, HTTP 408/409/429/5xx, connections that failed or broke)
_TEMPORARY_WORDS = (
    "last_error GLOB 'SMTP *: 4[0-9][0-9] *' OR last_error GLOB '*HTTP 4[02][89]*'"
    " OR last_error GLOB '*HTTP 5[0-9][0-9]*' OR last_error GLOB '*ErrorCode 429*'"
    " OR last_error LIKE '%cannot connect%' OR last_error LIKE '%connection lost%'"
    " OR last_error LIKE '%request not sent%'"
)


@MIGRATIONS(name="m006_delivery_accounting", transactional=False)
def m006_delivery_accounting(db: Database) -> None:
    """A delivery keeps its identity and retry state and says whether a failure is final; mail
    to one reader outside the dispatch (notices) is queued durably; a dispatch with readers
    still unresolved is `partly sent`.

    Not transactional: changing the dispatches' CHECK needs `rebuild_table`, which turns
    foreign keys off, and SQLite allows that only outside a transaction. Each step is its own
    transaction and looks at what is already there, so a run cut short is simply run again.
    """
    with db.atomic():
        columns = {row[1] for row in db.execute("PRAGMA table_info(deliveries)").fetchall()}
        for name, kind in (
            ("batch_key", "TEXT"),
            ("batch_since", "REAL"),
            ("handed_at", "REAL"),
            ("retry_at", "REAL"),
            ("failure", "TEXT CHECK (failure IN ('permanent', 'temporary'))"),
        ):
            if name not in columns:
                db.execute(f"ALTER TABLE deliveries ADD COLUMN {name} {kind}")
        db.execute(
            "CREATE INDEX IF NOT EXISTS deliveries_retry ON deliveries(dispatch_id, retry_at)"
            " WHERE retry_at IS NOT NULL"
        )
        db.execute(
            "UPDATE deliveries SET failure = CASE WHEN "  # noqa: S608 - constant text
            + _TEMPORARY_WORDS
            + " THEN 'temporary' ELSE 'permanent' END WHERE status = 'failed' AND failure IS NULL"
        )
        _run(
            db,
            """
            CREATE TABLE IF NOT EXISTS notices (
                id INTEGER PRIMARY KEY,
                subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
                kind TEXT NOT NULL,
                status TEXT NOT NULL DEFAULT 'queued'
                    CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'unknown')),
                message_id TEXT UNIQUE,
                issued_at REAL NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                retry_at REAL,
                first_handed_at REAL,
                handed_at REAL,
                claimed_by TEXT,
                provider_message_id TEXT,
                last_error TEXT,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                sent_at TEXT
            );
            CREATE INDEX IF NOT EXISTS notices_owed ON notices(status, retry_at);
            CREATE INDEX IF NOT EXISTS notices_subscriber ON notices(subscriber_id)
            """,
        )
    # the table's own definition with the new CHECK: whatever columns it has now are kept
    current = db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'dispatches'"
    ).fetchone()[0]
    if "'partly sent'" not in current:
        if _STATUS_CHECK not in current:
            raise RuntimeError(f"m006: unexpected dispatches definition: {current}")
        rebuild_table(db, "dispatches", current.replace(_STATUS_CHECK, _STATUS_CHECK_V2))
    with db.atomic():
        # sent dispatches with readers never reached were reported done; say what they are
        db.execute(
            "UPDATE dispatches SET status = 'partly sent' WHERE status = 'sent' AND EXISTS"
            " (SELECT 1 FROM deliveries d WHERE d.dispatch_id = dispatches.id AND"
            " (d.status IN ('queued', 'sending', 'unknown')"
            " OR (d.status = 'failed' AND d.failure = 'temporary')))"
        )
