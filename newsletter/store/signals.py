"""Queries on the signals table: feed upserts that never touch the editor's fields."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from newsletter.models import EDITORIAL_FIELDS, LIST_FIELDS, FeedItem, Signal
from newsletter.slugs import make_slug
from newsletter.store._rows import now_iso, one, rows

if TYPE_CHECKING:
    from sqlite_utils import Database

# Columns an import may set; everything else is the feed's or the store's.
WRITABLE = (
    "title",
    "url",
    "guid",
    "link",
    "source_label",
    "published",
    "summary_html",
    "summary_text",
    "arxiv_id",
    "announce_type",
    *EDITORIAL_FIELDS,
)


# Feed fields an editor may rewrite; once rewritten, a re-fetch no longer changes them.
EDITABLE_FEED_FIELDS = ("title", "link", "summary_text", "summary_html")


def _encode(field: str, value: Any) -> Any:
    if field in LIST_FIELDS and value is not None:
        return json.dumps(list(value), ensure_ascii=False)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class Signals:
    def __init__(self, db: Database) -> None:
        self.db = db

    def find(
        self,
        *,
        url: str | None = None,
        guid: str | None = None,
        arxiv_id: str | None = None,
        source_id: int | None = None,
    ) -> dict[str, Any] | None:
        """The signal that is the same item: same guid, canonical URL or arXiv id.

        With source_id, a guid matches only that source's signals: feeds reuse short guids
        like "1" or "post-42", so a guid is an identity only within its own feed.
        """
        if guid:
            if source_id is None:
                row = one(self.db, "SELECT * FROM signals WHERE guid = ?", [guid])
            else:
                row = one(
                    self.db,
                    "SELECT * FROM signals WHERE guid = ? AND (source_id = ? OR source_id IS NULL)",
                    [guid, source_id],
                )
            if row:
                return row
        for column, value in (("url", url), ("arxiv_id", arxiv_id)):
            if value:
                row = one(self.db, f"SELECT * FROM signals WHERE {column} = ?", [value])  # noqa: S608
                if row:
                    return row
        return None

    def upsert_item(self, item: FeedItem, source_id: int | None, seen_at: datetime) -> str:
        """Store a feed item; return 'new', 'updated' or 'unchanged'. Editorial fields stay."""
        existing = self.find(
            url=item.url, guid=item.guid, arxiv_id=item.arxiv_id, source_id=source_id
        )
        if existing is None:
            cursor = self.db.execute(
                """
                INSERT INTO signals (source_id, guid, url, link, title, source_label, published,
                    first_seen, updated_at, summary_html, summary_text, category, arxiv_id,
                    announce_type)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    source_id,
                    item.guid,
                    item.url,
                    item.link,
                    item.title,
                    item.source_label,
                    (item.published or seen_at).isoformat(),
                    seen_at.isoformat(),
                    now_iso(),
                    item.summary_html,
                    item.summary_text,
                    item.category,
                    item.arxiv_id,
                    item.announce_type,
                ],
            )
            self.sync_slug(int(cursor.lastrowid or 0))
            return "new"
        kept = set(json.loads(existing.get("editor_fields") or "[]"))
        feed = {
            "title": item.title,
            "link": item.link,
            "summary_html": item.summary_html,
            "summary_text": item.summary_text,
        }
        changes = {
            **{k: existing[k] if k in kept else v for k, v in feed.items()},
            "announce_type": item.announce_type or existing["announce_type"],
            "guid": existing["guid"] or item.guid,
            "arxiv_id": existing["arxiv_id"] or item.arxiv_id,
            "source_label": existing["source_label"] or item.source_label,
            "category": existing["category"] or item.category,
            "source_id": existing["source_id"] or source_id,
        }
        if all(existing[k] == v for k, v in changes.items()):
            return "unchanged"
        assignments = ", ".join(f"{k} = ?" for k in changes)
        self.db.execute(
            f"UPDATE signals SET {assignments}, updated_at = ? WHERE id = ?",  # noqa: S608
            [*changes.values(), now_iso(), existing["id"]],
        )
        if changes["title"] != existing["title"]:
            self.sync_slug(existing["id"])
        return "updated"

    def create(self, values: dict[str, Any]) -> int:
        fields = [f for f in WRITABLE if f in values]
        now = now_iso()
        published = _encode("published", values.get("published")) or now
        columns = [*fields, "first_seen", "updated_at"]
        params = [_encode(f, values[f]) for f in fields] + [now, now]
        if "published" not in fields:
            columns.append("published")
            params.append(published)
        placeholders = ", ".join("?" for _ in columns)
        cursor = self.db.execute(
            f"INSERT INTO signals ({', '.join(columns)}) VALUES ({placeholders})",  # noqa: S608
            params,
        )
        signal_id = int(cursor.lastrowid or 0)
        self._mark_annotated(signal_id, values)
        self._mark_editor_fields(signal_id, values)
        self.sync_slug(signal_id)
        return signal_id

    def _mark_editor_fields(self, signal_id: int, values: dict[str, Any]) -> None:
        written = {f for f in EDITABLE_FEED_FIELDS if f in values}
        if not written:
            return
        row = self.db.execute(
            "SELECT editor_fields FROM signals WHERE id = ?", [signal_id]
        ).fetchone()
        kept = set(json.loads(row[0] or "[]")) | written
        self.db.execute(
            "UPDATE signals SET editor_fields = ? WHERE id = ?",
            [json.dumps(sorted(kept)), signal_id],
        )

    def update(self, signal_id: int, values: dict[str, Any]) -> None:
        fields = [f for f in WRITABLE if f in values]
        if not fields:
            return
        assignments = ", ".join(f"{f} = ?" for f in fields)
        self.db.execute(
            f"UPDATE signals SET {assignments}, updated_at = ? WHERE id = ?",  # noqa: S608
            [*(_encode(f, values[f]) for f in fields), now_iso(), signal_id],
        )
        self._mark_annotated(signal_id, values)
        self._mark_editor_fields(signal_id, values)
        if "title" in values or "url" in values:
            self.sync_slug(signal_id)

    def sync_slug(self, signal_id: int) -> str:
        """Give the signal the slug of its current title; the old one is kept as history, so
        links to it still find the signal. The short id grows on the rare collision."""
        title, url, current = self.db.execute(
            "SELECT title, url, slug FROM signals WHERE id = ?", [signal_id]
        ).fetchone()
        for length in range(8, 65, 4):
            wanted = make_slug(title, url, length=length)
            if wanted == current:
                return wanted
            taken = self.db.execute(
                "SELECT 1 FROM signals WHERE slug = ? AND id != ?"
                " UNION ALL SELECT 1 FROM signal_slugs WHERE slug = ? AND signal_id != ?",
                [wanted, signal_id, wanted, signal_id],
            ).fetchone()
            if not taken:
                break
        if current:
            self.db.execute(
                "INSERT OR REPLACE INTO signal_slugs (slug, signal_id, retired_at)"
                " VALUES (?, ?, ?)",
                [current, signal_id, now_iso()],
            )
        self.db.execute("DELETE FROM signal_slugs WHERE slug = ?", [wanted])
        self.db.execute("UPDATE signals SET slug = ? WHERE id = ?", [wanted, signal_id])
        return wanted

    def _mark_annotated(self, signal_id: int, values: dict[str, Any]) -> None:
        if any(f in values for f in EDITORIAL_FIELDS):
            self.db.execute(
                "UPDATE signals SET annotated_at = ? WHERE id = ?", [now_iso(), signal_id]
            )

    def get(self, signal_id: int) -> Signal | None:
        row = one(self.db, "SELECT * FROM signals WHERE id = ?", [signal_id])
        return Signal.from_row(row) if row else None

    def row(self, signal_id: int) -> dict[str, Any] | None:
        return one(self.db, "SELECT * FROM signals WHERE id = ?", [signal_id])

    def published_between(self, start: datetime, end: datetime) -> list[Signal]:
        return [
            Signal.from_row(r)
            for r in rows(
                self.db,
                "SELECT * FROM signals WHERE published >= ? AND published < ? ORDER BY id",
                [start.isoformat(), end.isoformat()],
            )
        ]

    def sent_ids(self, *, excluding_dispatch: int | None = None) -> set[int]:
        """Signals in a dispatch that has gone out (sent, or partly: some readers have it), so
        no signal goes out twice."""
        return {
            r[0]
            for r in self.db.execute(
                """
                SELECT ds.signal_id FROM dispatch_signals ds
                JOIN dispatches d ON d.id = ds.dispatch_id
                WHERE d.status IN ('sending', 'partly sent', 'sent') AND ds.included = 1
                AND d.id IS NOT ?
                """,
                [excluding_dispatch],
            )
        }

    def list(self, **filters: Any) -> list[Signal]:
        clauses, params = [], []
        if filters.get("start"):
            clauses.append("published >= ?")
            params.append(filters["start"].isoformat())
        if filters.get("end"):
            clauses.append("published < ?")
            params.append(filters["end"].isoformat())
        if filters.get("category"):
            clauses.append("lower(category) = lower(?)")
            params.append(filters["category"])
        if filters.get("unannotated"):
            clauses.append("annotated_at IS NULL")
        if filters.get("source"):
            clauses.append("source_id = (SELECT id FROM sources WHERE name = ?)")
            params.append(filters["source"])
        if filters.get("seen_since"):
            clauses.append("first_seen >= ?")
            params.append(filters["seen_since"].isoformat())
        if filters.get("pending_draft"):
            clauses.append("id IN (SELECT signal_id FROM signal_drafts WHERE status = 'pending')")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT * FROM signals {where} ORDER BY published DESC, id DESC"  # noqa: S608
        return [Signal.from_row(r) for r in rows(self.db, sql, params)]

    def count(self) -> int:
        return self.db.execute("SELECT count(*) FROM signals").fetchone()[0]
