"""Queries on deliveries: a row per (dispatch, subscriber), written around each hand-off."""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from newsletter.models import Subscriber
from newsletter.store._rows import now_iso, rows

STATUSES = ("queued", "sending", "sent", "failed", "unknown", "skipped")


class Deliveries:
    def __init__(self, db: Database) -> None:
        self.db = db

    def queue(self, dispatch_id: int) -> int:
        """Queue a delivery for each active subscriber not yet queued; return how many."""
        now = now_iso()
        cursor = self.db.execute(
            "INSERT OR IGNORE INTO deliveries (dispatch_id, subscriber_id, status, created_at,"
            " updated_at) SELECT ?, id, 'queued', ?, ? FROM subscribers WHERE status = 'active'",
            [dispatch_id, now, now],
        )
        return cursor.rowcount

    def in_flight_to_unknown(self, dispatch_id: int) -> int:
        """Rows left 'sending' by a killed run: we cannot know if they went out."""
        return self.db.execute(
            "UPDATE deliveries SET status = 'unknown', updated_at = ?"
            " WHERE dispatch_id = ? AND status = 'sending'",
            [now_iso(), dispatch_id],
        ).rowcount

    def skip_inactive(self, dispatch_id: int) -> int:
        """Queued deliveries whose subscriber left (unsubscribed, bounced) are never sent."""
        return self.db.execute(
            "UPDATE deliveries SET status = 'skipped', last_error = 'subscriber no longer active',"
            " updated_at = ? WHERE dispatch_id = ? AND status = 'queued' AND subscriber_id IN"
            " (SELECT id FROM subscribers WHERE status != 'active')",
            [now_iso(), dispatch_id],
        ).rowcount

    def requeue(self, dispatch_id: int, status: str) -> int:
        return self.db.execute(
            "UPDATE deliveries SET status = 'queued', updated_at = ?"
            " WHERE dispatch_id = ? AND status = ?",
            [now_iso(), dispatch_id, status],
        ).rowcount

    def next_queued(self, dispatch_id: int, limit: int) -> list[tuple[int, Subscriber]]:
        """Queued deliveries whose subscriber is still active (an unsubscribe lands at once)."""
        return [
            (r["delivery_id"], Subscriber.from_row(r))
            for r in rows(
                self.db,
                "SELECT d.id AS delivery_id, s.id, s.email, s.name, s.status"
                " FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id"
                " WHERE d.dispatch_id = ? AND d.status = 'queued' AND s.status = 'active'"
                " ORDER BY d.id LIMIT ?",
                [dispatch_id, limit],
            )
        ]

    def mark_sending(self, delivery_id: int, message_id: str) -> bool:
        """Claim a queued delivery; False when it is no longer queued or its subscriber left."""
        cursor = self.db.execute(
            "UPDATE deliveries SET status = 'sending', attempts = attempts + 1, message_id = ?,"
            " updated_at = ? WHERE id = ? AND status = 'queued' AND subscriber_id IN"
            " (SELECT id FROM subscribers WHERE status = 'active')",
            [message_id, now_iso(), delivery_id],
        )
        return cursor.rowcount == 1

    def mark_sent(self, delivery_id: int, provider_message_id: str | None = None) -> None:
        now = now_iso()
        self.db.execute(
            "UPDATE deliveries SET status = 'sent', provider_message_id = ?, last_error = NULL,"
            " sent_at = ?, updated_at = ? WHERE id = ?",
            [provider_message_id, now, now, delivery_id],
        )

    def mark_failed(self, delivery_id: int, error: str, *, retry: bool) -> None:
        self.db.execute(
            "UPDATE deliveries SET status = ?, last_error = ?, updated_at = ? WHERE id = ?",
            ["queued" if retry else "failed", error[:1000], now_iso(), delivery_id],
        )

    def counts(self, dispatch_id: int) -> dict[str, int]:
        found = dict(
            self.db.execute(
                "SELECT status, count(*) FROM deliveries WHERE dispatch_id = ? GROUP BY status",
                [dispatch_id],
            ).fetchall()
        )
        return {status: found.get(status, 0) for status in STATUSES}

    def failures(self, dispatch_id: int) -> list[dict[str, Any]]:
        return list(
            rows(
                self.db,
                "SELECT d.*, s.email FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id"
                " WHERE d.dispatch_id = ? AND d.status IN ('failed', 'unknown') ORDER BY d.id",
                [dispatch_id],
            )
        )
