"""Queries on a dispatch's frozen variants (one rendering per set of sections readers get), the
readers' choices they are made for, and the per-variant counts `send` and `deliveries` show."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from newsletter.store._rows import now_iso, rows

if TYPE_CHECKING:
    from sqlite_utils import Database


@dataclass(frozen=True)
class StoredVariant:
    id: int
    dispatch_id: int
    key: tuple[str, ...]
    is_full: bool
    subject: str
    preheader: str
    lead_signal_id: int | None
    html: str
    text: str
    slot_nonce: str


def _variant(row: dict[str, Any]) -> StoredVariant:
    return StoredVariant(
        row["id"],
        row["dispatch_id"],
        tuple(json.loads(row["key"])),
        bool(row["is_full"]),
        row["subject"],
        row["preheader"],
        row["lead_signal_id"],
        row["html"],
        row["text"],
        row["slot_nonce"],
    )


def _key(key: Sequence[str]) -> str:
    return json.dumps(sorted(key), ensure_ascii=False)


class Variants:
    def __init__(self, db: Database) -> None:
        self.db = db

    def of(self, dispatch_id: int) -> list[StoredVariant]:
        return [
            _variant(row)
            for row in rows(
                self.db,
                "SELECT * FROM dispatch_variants WHERE dispatch_id = ? ORDER BY id",
                [dispatch_id],
            )
        ]

    def get(self, dispatch_id: int, key: Sequence[str]) -> StoredVariant | None:
        found = list(
            rows(
                self.db,
                "SELECT * FROM dispatch_variants WHERE dispatch_id = ? AND key = ?",
                [dispatch_id, _key(key)],
            )
        )
        return _variant(found[0]) if found else None

    def freeze(
        self,
        dispatch_id: int,
        key: Sequence[str],
        *,
        is_full: bool,
        subject: str,
        preheader: str,
        lead_signal_id: int | None,
        html: str,
        text: str,
        slot_nonce: str,
    ) -> StoredVariant:
        """Keep a variant's rendering; one already kept for the key wins (a concurrent freeze)."""
        self.db.execute(
            "INSERT OR IGNORE INTO dispatch_variants (dispatch_id, key, is_full, subject,"
            " preheader, lead_signal_id, html, text, slot_nonce, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                dispatch_id,
                _key(key),
                int(is_full),
                subject,
                preheader,
                lead_signal_id,
                html,
                text,
                slot_nonce,
                now_iso(),
            ],
        )
        stored = self.get(dispatch_id, key)
        assert stored is not None
        return stored

    def reader_choices(self, *, now: float) -> list[tuple[frozenset[str], int]]:
        """The distinct sets of sections turned off among active readers not paused at `now`,
        with how many readers have each: what decides which variants a send will need."""
        found: dict[frozenset[str], int] = {}
        for off, count in self.db.execute(
            "SELECT sections_off, count(*) FROM subscribers WHERE status = 'active'"
            " AND (paused_until IS NULL OR paused_until <= ?) GROUP BY sections_off",
            [now],
        ).fetchall():
            titles = frozenset(json.loads(off)) if off else frozenset()
            found[titles] = found.get(titles, 0) + count
        return sorted(found.items(), key=lambda item: (-item[1], sorted(item[0])))

    # -- deliveries: who is skipped, and the counts per variant --------------------------------

    def unassigned_choices(self, dispatch_id: int) -> list[tuple[str, frozenset[str]]]:
        """The distinct `sections_off` values of the readers of queued deliveries that have no
        variant yet (never claimed), as stored and as titles."""
        return [
            (off, frozenset(json.loads(off)) if off else frozenset())
            for (off,) in self.db.execute(
                "SELECT DISTINCT s.sections_off FROM deliveries d JOIN subscribers s"
                " ON s.id = d.subscriber_id WHERE d.dispatch_id = ? AND d.status = 'queued'"
                " AND d.variant_id IS NULL",
                [dispatch_id],
            ).fetchall()
        ]

    def skip_choice(self, dispatch_id: int, sections_off: str, reason: str) -> int:
        """Skip the never-claimed queued deliveries of readers whose choices are `sections_off`."""
        return self.db.execute(
            "UPDATE deliveries SET status = 'skipped', last_error = ?, retry_at = NULL,"
            " updated_at = ? WHERE dispatch_id = ? AND status = 'queued' AND variant_id IS NULL"
            " AND subscriber_id IN (SELECT id FROM subscribers WHERE sections_off = ?)",
            [reason, now_iso(), dispatch_id, sections_off],
        ).rowcount

    def paused(self, dispatch_id: int, *, now: float) -> list[tuple[int, float]]:
        """(delivery id, paused until) of never-claimed queued deliveries whose reader is
        paused at `now`."""
        return [
            (row[0], row[1])
            for row in self.db.execute(
                "SELECT d.id, s.paused_until FROM deliveries d JOIN subscribers s"
                " ON s.id = d.subscriber_id WHERE d.dispatch_id = ? AND d.status = 'queued'"
                " AND d.variant_id IS NULL AND s.paused_until > ?",
                [dispatch_id, now],
            ).fetchall()
        ]

    def skip(self, skipped: Iterable[tuple[int, str]]) -> int:
        """Skip these queued, never-claimed deliveries, each with its reason."""
        now = now_iso()
        with self.db.atomic():
            cursor = self.db.conn.executemany(
                "UPDATE deliveries SET status = 'skipped', last_error = ?, retry_at = NULL,"
                " updated_at = ? WHERE id = ? AND status = 'queued' AND variant_id IS NULL",
                [(reason, now, delivery_id) for delivery_id, reason in skipped],
            )
        return cursor.rowcount

    def counts(self, dispatch_id: int) -> list[tuple[tuple[str, ...] | None, str, int]]:
        """(variant key or None when not yet assigned, status, count) of the dispatch's
        deliveries, the full variant first."""
        found = self.db.execute(
            "SELECT v.key, d.status, count(*) FROM deliveries d LEFT JOIN dispatch_variants v"
            " ON v.id = d.variant_id WHERE d.dispatch_id = ? AND d.status != 'skipped'"
            " GROUP BY v.id, d.status ORDER BY coalesce(v.is_full, 0) DESC, v.id, d.status",
            [dispatch_id],
        ).fetchall()
        return [(tuple(json.loads(key)) if key else None, status, n) for key, status, n in found]

    def skip_reasons(self, dispatch_id: int) -> list[tuple[str, int]]:
        """Why deliveries were skipped, the commonest reason first."""
        return [
            (reason or "", count)
            for reason, count in self.db.execute(
                "SELECT last_error, count(*) FROM deliveries WHERE dispatch_id = ?"
                " AND status = 'skipped' GROUP BY last_error ORDER BY count(*) DESC, last_error",
                [dispatch_id],
            ).fetchall()
        ]
