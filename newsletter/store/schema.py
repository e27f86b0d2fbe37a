"""The database schema as recorded migrations: an older file upgrades in place, never by hand.

Append new migrations at the end; never edit one that has shipped.
"""

from __future__ import annotations

import bisect
import re
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from newsletter.slugs import make_slug
from newsletter.store._rows import now_iso, references_unchecked

if TYPE_CHECKING:
    from sqlite_utils import Database
    from sqlite_utils.migrations import Migrations

M = TypeVar("M", bound=Callable[..., None])


class Registry:
    """The migrations, registered like sqlite-utils' `Migrations` (whose `apply` runs them).

    Every command opens the store; finding that every migration is applied is one query here,
    without importing sqlite_utils (70-100 ms) until a migration actually has to run.
    """

    table = "_sqlite_migrations"  # sqlite-utils' own bookkeeping table

    def __init__(self, name: str) -> None:
        self.name = name
        self._entries: list[tuple[str, Callable[..., None], bool]] = []
        self._migrations: Migrations | None = None

    def __call__(self, *, name: str, transactional: bool = True) -> Callable[[M], M]:
        def register(fn: M) -> M:
            if name in self.names:
                raise ValueError(f"migration {name!r} is registered twice")
            self._entries.append((name, fn, transactional))
            self._migrations = None
            return fn

        return register

    @property
    def names(self) -> list[str]:
        return [entry[0] for entry in self._entries]

    def applied_names(self, conn: sqlite3.Connection) -> list[str] | None:
        """Names applied to this database in order; None when it has no migrations table."""
        if not conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [self.table]
        ).fetchone():
            return None
        return [
            row[0]
            for row in conn.execute(
                f"SELECT name FROM [{self.table}] WHERE migration_set = ? ORDER BY rowid",  # noqa: S608
                [self.name],
            )
        ]

    def migrations(self) -> Migrations:
        """sqlite-utils' `Migrations` holding every registered migration."""
        if self._migrations is None:
            from sqlite_utils.migrations import Migrations

            from newsletter.store import _lean  # noqa: F401  (sqlite-utils without numpy)

            migrations = Migrations(self.name)
            for name, fn, transactional in self._entries:
                migrations(name=name, transactional=transactional)(fn)
            self._migrations = migrations
        return self._migrations

    def apply(self, db: Database, **options: Any) -> None:
        self.migrations().apply(db, **options)


MIGRATIONS = Registry("newsletter")


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
    with references_unchecked(conn):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # after a rebuild SQLite keeps the definition as `CREATE TABLE "name"`: either form
            conn.execute(
                re.sub(
                    rf"^\s*CREATE TABLE [\"`\[]?{name}[\"`\]]?\s*\(",
                    f"CREATE TABLE {name}__new (",
                    create_sql,
                    count=1,
                )
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


# --- m006_delivery_accounting -------------------------------------------------------------

#: a delivery's failure (m006); m013 rewrote the IN (...) of older files as comparisons
_FAILURE_CHECK = "CHECK (failure = 'permanent' OR failure = 'temporary')"
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
            ("failure", f"TEXT {_FAILURE_CHECK}"),
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


# --- m007_security: links bound to a never-reused identity; webhook replay receipts ---------


def _subscribers_columns(db: Database) -> set[str]:
    return {row[1] for row in db.execute("PRAGMA table_info(subscribers)")}


def _fresh_ids(db: Database) -> set[int]:
    """Subscribers whose id was certainly never held by anyone before them.

    Before AUTOINCREMENT, SQLite gave a new row the highest id + 1, so an id came back only
    after the highest row was erased. Then the k-th row ever inserted has id k unless some id
    was reused before it: a row whose id equals the number of rows inserted up to it (the
    ones still here created no later, plus the erasures logged no later) is fresh. Any doubt
    (same second, a reuse somewhere before) counts as not fresh.
    """
    erased = sorted(
        at for (at,) in db.execute("SELECT at FROM events WHERE kind = ?", ["subscriber.erased"])
    )
    fresh = set()
    ordered = db.execute("SELECT id, created_at FROM subscribers ORDER BY created_at, id")
    for position, (subscriber_id, created_at) in enumerate(ordered, start=1):
        if subscriber_id == position + bisect.bisect_right(erased, created_at):
            fresh.add(subscriber_id)
    return fresh


@MIGRATIONS(name="m007_security", transactional=False)
def m007_security(db: Database) -> None:
    """Token nonces, AUTOINCREMENT ids, refused encoded-word addresses, webhook receipts, and
    the time of a subscriber's latest sign-up (a sign-up writes the row whether or not it is new).

    Outside a transaction (`rebuild_table` needs foreign keys off); each step is its own
    transaction and safe to run again, so a migration killed half-way finishes next time.
    """
    with db.atomic():
        if "token_nonce" not in _subscribers_columns(db):
            _run(
                db,
                """
                ALTER TABLE subscribers ADD COLUMN token_nonce TEXT;
                ALTER TABLE subscribers ADD COLUMN legacy_links INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE subscribers ADD COLUMN last_signup_at TEXT
                """,
            )
            # Links already in inboxes keep working for the people they were sent to: only
            # where the id cannot have belonged to someone else before.
            fresh = sorted(_fresh_ids(db))
            for start in range(0, len(fresh), 500):
                chunk = fresh[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                db.execute(f"UPDATE subscribers SET legacy_links = 1 WHERE id IN ({marks})", chunk)  # noqa: S608
        db.execute(
            "UPDATE subscribers SET token_nonce = lower(hex(randomblob(16)))"
            " WHERE token_nonce IS NULL"
        )
        # An encoded word in an address is decoded by mail software into anything (CR/LF
        # included); such an address is never mailed again.
        hostile = db.execute(
            "SELECT id FROM subscribers WHERE instr(email, '=?')"
            " AND status NOT IN ('unsubscribed', 'bounced', 'complained')"
        ).fetchall()
        for (subscriber_id,) in hostile:
            db.execute(
                "UPDATE subscribers SET status = 'bounced', updated_at = ? WHERE id = ?",
                [now_iso(), subscriber_id],
            )
            db.execute(
                "INSERT INTO events (at, kind, subject_type, subject_id, actor, detail)"
                " VALUES (?, 'subscriber.bounced', 'subscriber', ?, 'migration m007_security', ?)",
                [now_iso(), subscriber_id, '{"reason": "address holds an encoded word (=?)"}'],
            )
        _run(
            db,
            """
            CREATE TABLE IF NOT EXISTS webhook_receipts (
                key TEXT PRIMARY KEY,
                expires_at REAL NOT NULL
            );
            CREATE INDEX IF NOT EXISTS webhook_receipts_expiry ON webhook_receipts(expires_at)
            """,
        )
    sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'subscribers'").fetchone()[0]
    if "AUTOINCREMENT" not in sql.upper():
        indexes = tuple(
            row[0]
            for row in db.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'subscribers'"
                " AND sql IS NOT NULL"
            )
        )
        new_sql, found = re.subn(
            r"\bid INTEGER PRIMARY KEY\b", "id INTEGER PRIMARY KEY AUTOINCREMENT", sql, count=1
        )
        # a row inserted by any other means still gets its own nonce (ALTER TABLE cannot add
        # a default that is not a constant; a new definition can)
        new_sql, nonces = re.subn(
            r"\btoken_nonce TEXT\b",
            "token_nonce TEXT NOT NULL DEFAULT (lower(hex(randomblob(16))))",
            new_sql,
            count=1,
        )
        if not (found and nonces):
            raise RuntimeError("m007_security: subscribers is not the table it expects")
        rebuild_table(db, "subscribers", new_sql, indexes)
    with db.atomic():
        # No id handed out before this migration comes back: every row ever inserted was either
        # kept or erased (and each erasure logged), so no id exceeded their sum.
        (ceiling,) = db.execute(
            "SELECT max(coalesce((SELECT max(id) FROM subscribers), 0),"
            " (SELECT count(*) FROM subscribers)"
            " + (SELECT count(*) FROM events WHERE kind = 'subscriber.erased'))"
        ).fetchone()
        current = db.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'subscribers'"
        ).fetchone()
        if current is None:
            db.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES ('subscribers', ?)", [ceiling]
            )
        elif current[0] < ceiling:
            db.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'subscribers'", [ceiling])


@MIGRATIONS(name="m008_signal_stream")
def m008_signal_stream(db: Database) -> None:
    # The signal stream: each signal's page slug (old ones kept, so a retitled signal's old
    # links redirect), and the editor's publish / unpublish choice (NULL: public once a
    # dispatch holding it goes out).
    _run(
        db,
        """
        ALTER TABLE signals ADD COLUMN slug TEXT;
        ALTER TABLE signals ADD COLUMN publication TEXT
            CHECK (publication IN ('published', 'unpublished'));
        ALTER TABLE signals ADD COLUMN publication_at TEXT;
        CREATE TABLE signal_slugs (
            slug TEXT PRIMARY KEY,
            signal_id INTEGER NOT NULL REFERENCES signals(id) ON DELETE CASCADE,
            retired_at TEXT NOT NULL
        );
        CREATE INDEX signal_slugs_signal ON signal_slugs(signal_id);
        CREATE INDEX dispatch_signals_signal ON dispatch_signals(signal_id, dispatch_id);
        CREATE INDEX signals_updated ON signals(updated_at)
        """,
    )
    taken: set[str] = set()
    existing = db.execute("SELECT id, title, url FROM signals ORDER BY id").fetchall()
    for signal_id, title, url in existing:
        slug = next(
            s for n in range(8, 65, 4) if (s := make_slug(title, url, length=n)) not in taken
        )
        taken.add(slug)
        db.execute("UPDATE signals SET slug = ? WHERE id = ?", [slug, signal_id])
    db.execute("CREATE UNIQUE INDEX signals_slug ON signals(slug)")


@MIGRATIONS(name="m009_editorial")
def m009_editorial(db: Database) -> None:
    # Machine drafts of a signal's editorial read, kept apart from the signal until the editor
    # accepts one (then its fields are copied in and signals.draft_id says where they came
    # from). At most one pending draft a signal. The ranker's fitted models, newest last, as
    # JSON arrays (never a pickle: loading one would run whatever a tampered file holds).
    _run(
        db,
        """
        CREATE TABLE signal_drafts (
            id INTEGER PRIMARY KEY,
            signal_id INTEGER NOT NULL REFERENCES signals(id) ON DELETE CASCADE,
            status TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'accepted', 'rejected', 'replaced')),
            fields TEXT NOT NULL,
            model TEXT NOT NULL,
            prompt_version TEXT NOT NULL,
            prompt_hash TEXT NOT NULL,
            response_format TEXT NOT NULL,
            created_at TEXT NOT NULL,
            decided_at TEXT,
            decided_by TEXT CHECK (decided_by IN ('editor', 'edit', 'auto'))
        );
        CREATE INDEX signal_drafts_signal ON signal_drafts(signal_id, status);
        CREATE UNIQUE INDEX signal_drafts_one_pending ON signal_drafts(signal_id)
            WHERE status = 'pending';
        ALTER TABLE signals ADD COLUMN draft_id INTEGER REFERENCES signal_drafts(id)
            ON DELETE SET NULL;
        CREATE TABLE ranker_models (
            id INTEGER PRIMARY KEY,
            format TEXT NOT NULL,
            created_at TEXT NOT NULL,
            scored INTEGER NOT NULL,
            spearman REAL,
            model TEXT NOT NULL
        )
        """,
    )


@MIGRATIONS(name="m011_engagement")
def m011_engagement(db: Database) -> None:
    # Click counting. `tracked_links`: every link a dispatch's email carries as `/r/<key>`,
    # stored when the dispatch is frozen (frozen = 1; rows made for a test message or a preview
    # before that redirect but count nothing, and go at the freeze). `click_queue`: hits waiting
    # (seconds) to be told human or automated; `visitor` is a keyed hash of the client (or the
    # reader in per-reader mode) and is dropped with the row. `clicks`: the raw rows, the hour
    # only, a reader only in per-reader mode; folded into `click_totals` after the retention
    # period (and on erasure), then deleted.
    _run(
        db,
        """
        CREATE TABLE tracked_links (
            key TEXT PRIMARY KEY,
            dispatch_id INTEGER NOT NULL REFERENCES dispatches(id) ON DELETE CASCADE,
            signal_id INTEGER REFERENCES signals(id) ON DELETE SET NULL,
            kind TEXT NOT NULL CHECK (kind IN ('title', 'read', 'summary', 'view', 'open')),
            url TEXT NOT NULL,
            frozen INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );
        CREATE INDEX tracked_links_dispatch ON tracked_links(dispatch_id, frozen);
        CREATE TABLE click_queue (
            id INTEGER PRIMARY KEY,
            link_key TEXT NOT NULL REFERENCES tracked_links(key) ON DELETE CASCADE,
            at REAL NOT NULL,
            visitor TEXT NOT NULL,
            browser INTEGER NOT NULL,
            reason TEXT,
            burst INTEGER NOT NULL DEFAULT 0,
            subscriber_id INTEGER REFERENCES subscribers(id) ON DELETE SET NULL
        );
        CREATE INDEX click_queue_at ON click_queue(at);
        CREATE INDEX click_queue_visitor ON click_queue(visitor, at);
        CREATE TABLE clicks (
            id INTEGER PRIMARY KEY,
            link_key TEXT NOT NULL REFERENCES tracked_links(key) ON DELETE CASCADE,
            hour INTEGER NOT NULL,
            human INTEGER NOT NULL CHECK (human IN (0, 1)),
            reason TEXT CHECK (reason IN ('head', 'agent', 'burst')),
            subscriber_id INTEGER REFERENCES subscribers(id) ON DELETE SET NULL
        );
        CREATE INDEX clicks_link ON clicks(link_key, human);
        CREATE INDEX clicks_hour ON clicks(hour);
        CREATE INDEX clicks_subscriber ON clicks(subscriber_id) WHERE subscriber_id IS NOT NULL;
        CREATE TABLE click_totals (
            link_key TEXT PRIMARY KEY REFERENCES tracked_links(key) ON DELETE CASCADE,
            human INTEGER NOT NULL DEFAULT 0,
            automated INTEGER NOT NULL DEFAULT 0
        )
        """,
    )


# Registered after m011 although numbered before it: m006-m011 were released first, and a
# database that already ran them gets this one next (sqlite-utils applies what is missing, in
# the order registered here).
@MIGRATIONS(name="m010_preferences")
def m010_preferences(db: Database) -> None:
    # Readers' preferences. `sections_off`: a JSON array of the section titles this reader
    # turned off (every other section, one that appears later included, is on);
    # `sections_seen`: the titles they were shown on their preferences page (so the page can
    # say which are new); `paused_until`: Unix time until which they get no dispatch.
    # A change of address waits in `pending_email` (asked at `pending_email_at`, which the
    # confirmation link is dated with) until the new address confirms it. A notice's `to_email`
    # is where it goes when that is not the subscriber's address: the confirmation of a new
    # address, and the "your address changed" notice to the old one.
    _run(
        db,
        """
        ALTER TABLE subscribers ADD COLUMN sections_off TEXT NOT NULL DEFAULT '[]';
        ALTER TABLE subscribers ADD COLUMN sections_seen TEXT NOT NULL DEFAULT '[]';
        ALTER TABLE subscribers ADD COLUMN paused_until REAL;
        ALTER TABLE subscribers ADD COLUMN pending_email TEXT;
        ALTER TABLE subscribers ADD COLUMN pending_email_at REAL
        """,
    )
    # m006 (registered before this one, so always applied first) made the notices table; a
    # test database built with every migration but m006 has none
    if "notices" in db.table_names():
        db.execute("ALTER TABLE notices ADD COLUMN to_email TEXT")
        # 1 from just before a notice's hand-off until its outcome is recorded: a notice a
        # killed process had claimed but not begun to hand over goes back to the queue
        db.execute("ALTER TABLE notices ADD COLUMN handing INTEGER NOT NULL DEFAULT 0")


@MIGRATIONS(name="m012_variants")
def m012_variants(db: Database) -> None:
    # Per-reader variants (issue 14): one rendering per distinct set of sections readers get,
    # frozen beside the dispatch when it is first needed (`key`: a JSON array of the section
    # titles, sorted; `is_full`: every section, the dispatch's own frozen copy). A delivery's
    # `variant_id` is fixed at its first claim, with its Message-ID: a retry, a repeat and a
    # lookup compose the same variant again.
    _run(
        db,
        """
        CREATE TABLE dispatch_variants (
            id INTEGER PRIMARY KEY,
            dispatch_id INTEGER NOT NULL REFERENCES dispatches(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            is_full INTEGER NOT NULL DEFAULT 0 CHECK (is_full IN (0, 1)),
            subject TEXT NOT NULL,
            preheader TEXT NOT NULL,
            lead_signal_id INTEGER REFERENCES signals(id) ON DELETE SET NULL,
            html TEXT NOT NULL,
            text TEXT NOT NULL,
            slot_nonce TEXT NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (dispatch_id, key)
        );
        ALTER TABLE deliveries ADD COLUMN variant_id INTEGER
            REFERENCES dispatch_variants(id) ON DELETE SET NULL
        """,
    )


# --- m013_delivery_checks -------------------------------------------------------------------

#: the deliveries' status CHECK as m001 wrote it, and as m013 writes it
_STATUS_CHECKS = (
    "CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'unknown', 'skipped'))",
    "CHECK (status = 'queued' OR status = 'sending' OR status = 'sent'"
    " OR status = 'failed' OR status = 'unknown' OR status = 'skipped')",
)
_OLD_FAILURE_CHECK = "CHECK (failure IN ('permanent', 'temporary'))"


@MIGRATIONS(name="m013_delivery_checks", transactional=False)
def m013_delivery_checks(db: Database) -> None:
    """The same constraints on a delivery's status and failure, written as comparisons.

    SQLite evaluates `x IN (list)` in a CHECK by building a lookup table, anew every time the
    statement runs: a send updates each delivery twice (claim, answer), one statement run per
    row, and that rebuild was most of each update's cost (~6 of ~10 µs a row on our machine).
    Outside a transaction (`rebuild_table`); a run cut short is simply run again.
    """
    current = db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'deliveries'"
    ).fetchone()[0]
    if _STATUS_CHECKS[0] not in current and _STATUS_CHECKS[1] not in current:
        raise RuntimeError(f"m013: unexpected deliveries definition: {current}")
    # (a file that has m013 before m006 has no `failure` yet: m006 adds it as rewritten)
    new = current.replace(*_STATUS_CHECKS).replace(_OLD_FAILURE_CHECK, _FAILURE_CHECK)
    if new == current:
        return
    indexes = tuple(
        row[0]
        for row in db.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'deliveries'"
            " AND sql IS NOT NULL"
        ).fetchall()
    )
    rebuild_table(db, "deliveries", new, indexes)
