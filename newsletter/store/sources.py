"""Queries on the sources table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from newsletter.store._rows import now_iso, one, rows

if TYPE_CHECKING:
    from sqlite_utils import Database


class Sources:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add(
        self,
        name: str,
        url: str,
        *,
        category: str | None = None,
        label: str | None = None,
        enabled: bool | None = None,
    ) -> int:
        """Add a source, or update its URL, category and label when the name exists.

        `enabled` None keeps an existing source's state (a new one starts enabled). A changed
        URL forgets the old feed's validators and fingerprint, so the next fetch is a full one.
        """
        self.db.execute(
            "INSERT INTO sources (name, url, category, label, enabled, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET url = excluded.url,"
            " category = excluded.category, label = excluded.label,"
            " enabled = CASE WHEN ? IS NULL THEN enabled ELSE excluded.enabled END,"
            " etag = CASE WHEN url = excluded.url THEN etag END,"
            " last_modified = CASE WHEN url = excluded.url THEN last_modified END,"
            " content_hash = CASE WHEN url = excluded.url THEN content_hash END",
            [name, url, category, label, int(enabled is not False), now_iso(), enabled],
        )
        return self.db.execute("SELECT id FROM sources WHERE name = ?", [name]).fetchone()[0]

    def get(self, name: str) -> dict[str, Any] | None:
        return one(self.db, "SELECT * FROM sources WHERE name = ?", [name])

    def list(self, *, enabled_only: bool = False) -> list[dict[str, Any]]:
        where = "WHERE enabled = 1" if enabled_only else ""
        return list(rows(self.db, f"SELECT * FROM sources {where} ORDER BY name"))  # noqa: S608

    def signal_counts(self) -> dict[int, int]:
        """How many stored signals came from each source."""
        return dict(
            self.db.execute(
                "SELECT source_id, count(*) FROM signals WHERE source_id IS NOT NULL"
                " GROUP BY source_id"
            ).fetchall()
        )

    def set_enabled(self, name: str, enabled: bool) -> bool:
        cursor = self.db.execute(
            "UPDATE sources SET enabled = ? WHERE name = ?", [int(enabled), name]
        )
        return cursor.rowcount > 0

    def remove(self, name: str) -> bool:
        return self.db.execute("DELETE FROM sources WHERE name = ?", [name]).rowcount > 0

    def record_fetch(
        self,
        source_id: int,
        *,
        status: str,
        error: str | None = None,
        item_count: int | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        content_hash: str | None = None,
    ) -> None:
        """Remember how the last fetch went; errors count up until a fetch succeeds.

        Validators and fingerprint are kept unless new ones are given (a failed fetch gives
        them only for a body that arrived and failed to parse: see signals/collect.py).
        """
        self.db.execute(
            """
            UPDATE sources SET
                last_fetched_at = ?, last_status = ?, last_error = ?,
                consecutive_errors = CASE WHEN ? THEN consecutive_errors + 1 ELSE 0 END,
                item_count = COALESCE(?, item_count),
                etag = COALESCE(?, etag),
                last_modified = COALESCE(?, last_modified),
                content_hash = COALESCE(?, content_hash)
            WHERE id = ?
            """,
            [
                now_iso(),
                status,
                error,
                error is not None,
                item_count,
                etag,
                last_modified,
                content_hash,
                source_id,
            ],
        )
