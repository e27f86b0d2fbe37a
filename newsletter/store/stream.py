"""Queries of the public signal stream: which signals have a page, found by slug, paged.

A signal is public when it is annotated (the editor wrote the read: a signal score or a "why"
field) and either the editor published it or a dispatch holding it has gone out, unless the
editor unpublished it. Every public query goes through `PUBLIC`, so nothing else ever leaks.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from newsletter.models import Signal
from newsletter.store._rows import now_iso, one, rows

if TYPE_CHECKING:
    from sqlite_utils import Database

#: the statuses of a dispatch that readers have received (some of them, at least)
OUT = ("sending", "partly sent", "sent")

ANNOTATED = (
    "(s.signal_score IS NOT NULL OR NULLIF(TRIM(s.why_now), '') IS NOT NULL"
    " OR NULLIF(TRIM(s.why_important), '') IS NOT NULL"
    " OR NULLIF(TRIM(s.what_changes), '') IS NOT NULL)"
)
_OUT_LIST = ", ".join(f"'{status}'" for status in OUT)
_SENT = (
    "EXISTS (SELECT 1 FROM dispatch_signals ds JOIN dispatches d ON d.id = ds.dispatch_id"  # noqa: S608
    " WHERE ds.signal_id = s.id AND ds.included = 1 AND d.status IN (" + _OUT_LIST + "))"
)
PUBLIC = f"{ANNOTATED} AND (s.publication = 'published' OR (s.publication IS NULL AND {_SENT}))"


class Stream:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _where(
        self, category: str | None, start: datetime | None, end: datetime | None
    ) -> tuple[str, list[Any]]:
        clauses, params = [PUBLIC], []
        if category is not None:
            clauses.append("lower(COALESCE(s.category, '')) = lower(?)")
            params.append(category)
        if start is not None:
            clauses.append("s.published >= ?")
            params.append(start.isoformat())
        if end is not None:
            clauses.append("s.published < ?")
            params.append(end.isoformat())
        return " AND ".join(clauses), params

    def page(
        self,
        *,
        limit: int,
        offset: int = 0,
        category: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> builtins.list[Signal]:
        """Public signals, newest first."""
        where, params = self._where(category, start, end)
        sql = (
            f"SELECT s.* FROM signals s WHERE {where}"  # noqa: S608 - our own fragments
            " ORDER BY s.published DESC, s.id DESC LIMIT ? OFFSET ?"
        )
        return [Signal.from_row(r) for r in rows(self.db, sql, [*params, limit, offset])]

    def count(
        self,
        *,
        category: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> int:
        where, params = self._where(category, start, end)
        sql = f"SELECT count(*) FROM signals s WHERE {where}"  # noqa: S608
        return int(self.db.execute(sql, params).fetchone()[0])

    def all(self) -> builtins.list[Signal]:
        """Every public signal, newest first (the static build, the sitemap)."""
        sql = f"SELECT s.* FROM signals s WHERE {PUBLIC} ORDER BY s.published DESC, s.id DESC"  # noqa: S608
        return [Signal.from_row(r) for r in rows(self.db, sql)]

    def categories(self) -> builtins.list[tuple[str, int]]:
        """The public signals' categories with their counts, largest first."""
        sql = (
            f"SELECT s.category, count(*) FROM signals s WHERE {PUBLIC}"  # noqa: S608
            " AND NULLIF(TRIM(s.category), '') IS NOT NULL"
            " GROUP BY lower(s.category) ORDER BY count(*) DESC, lower(s.category)"
        )
        return [(r[0], int(r[1])) for r in self.db.execute(sql)]

    def published_dates(self) -> builtins.list[datetime]:
        """When each public signal was published (its week is the caller's business)."""
        sql = f"SELECT s.published FROM signals s WHERE {PUBLIC}"  # noqa: S608
        return [datetime.fromisoformat(r[0]) for r in self.db.execute(sql)]

    def by_slug(self, slug: str) -> tuple[Signal | None, bool]:
        """The public signal this slug names, and whether the slug is an old one (redirect)."""
        row = one(self.db, f"SELECT s.* FROM signals s WHERE s.slug = ? AND {PUBLIC}", [slug])  # noqa: S608
        if row:
            return Signal.from_row(row), False
        sql = (
            "SELECT s.* FROM signal_slugs h JOIN signals s ON s.id = h.signal_id"  # noqa: S608
            " WHERE h.slug = ? AND " + PUBLIC
        )
        row = one(self.db, sql, [slug])
        return (Signal.from_row(row), True) if row else (None, False)

    def old_slugs(self) -> builtins.list[tuple[str, str]]:
        """(old slug, current slug) of every public signal that was retitled."""
        sql = (
            "SELECT h.slug, s.slug FROM signal_slugs h JOIN signals s ON s.id = h.signal_id"  # noqa: S608
            " WHERE " + PUBLIC + " ORDER BY h.slug"
        )
        return [(r[0], r[1]) for r in self.db.execute(sql)]

    def is_public(self, signal_id: int) -> bool:
        sql = f"SELECT 1 FROM signals s WHERE s.id = ? AND {PUBLIC}"  # noqa: S608
        return self.db.execute(sql, [signal_id]).fetchone() is not None

    def set_publication(self, signal_ids: Iterable[int], state: str | None) -> None:
        """`published`, `unpublished`, or None: back to "public once sent in a dispatch"."""
        if state not in ("published", "unpublished", None):
            raise ValueError(f"unknown publication state {state!r}")
        for signal_id in signal_ids:
            now = now_iso()
            self.db.execute(
                "UPDATE signals SET publication = ?, publication_at = ?, updated_at = ?"
                " WHERE id = ?",
                [state, now, now, signal_id],
            )

    def issues_of(self, signal_id: int) -> builtins.list[tuple[str, int]]:
        """(week, issue number) of each dispatch that has carried the signal to readers."""
        sql = (
            "SELECT d.week, d.issue_number FROM dispatch_signals ds"  # noqa: S608
            " JOIN dispatches d ON d.id = ds.dispatch_id"
            " WHERE ds.signal_id = ? AND ds.included = 1 AND d.status IN (" + _OUT_LIST + ")"
            " ORDER BY d.week"
        )
        return [(r[0], int(r[1])) for r in self.db.execute(sql, [signal_id])]

    def version(self) -> tuple[Any, ...]:
        """Changes whenever anything a public page shows may have changed (to the second:
        `updated_at` is written in whole seconds, so callers keep nothing newer than that).
        Signals are never deleted, so the newest id stands for their count."""
        # max() over an index or a rowid is a lookup, not a scan: this runs on every request
        return tuple(
            self.db.execute(
                "SELECT (SELECT max(updated_at) FROM signals), (SELECT max(id) FROM signals),"
                " (SELECT max(updated_at) FROM dispatches), (SELECT max(id) FROM dispatches),"
                " (SELECT max(rowid) FROM signal_slugs)"
            ).fetchone()
        )
